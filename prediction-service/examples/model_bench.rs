//! Times the model on one thread: load (decode, build, self-check) and batched evaluation
//! of the wine rows. `cargo run --release -p prediction-service --example model_bench
//! [-- MODEL_PATH]`; figures go to docs/benchmarks.md.

use std::time::{Duration, Instant};

use prediction_service::model::Model;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../models/wine-forest.onnx").to_owned()
    });
    let bytes = std::fs::read(&path)?;
    let mut loads = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let model = Model::from_bytes(&bytes)?;
        loads.push(started.elapsed());
        std::hint::black_box(model);
    }
    loads.sort();
    let model = Model::from_bytes(&bytes)?;
    println!(
        "model {} v{}: {} trees, {} nodes, {} bytes; load median {:?}, max {:?}",
        model.info.name,
        model.info.version,
        model.info.trees,
        model.info.nodes,
        bytes.len(),
        loads[loads.len() / 2],
        loads[loads.len() - 1]
    );
    let row = [
        13.0f32, 2.3, 2.4, 19.5, 100.0, 2.3, 2.0, 0.36, 1.6, 5.1, 0.96, 2.6, 750.0,
    ];
    for batch in [1usize, 16, 64, 256, 1024] {
        // Varied rows, so that the walks differ as in real traffic.
        let rows: Vec<f32> = (0..batch)
            .flat_map(|i| {
                row.iter()
                    .enumerate()
                    .map(move |(j, v)| v * (0.7 + ((i * 13 + j) % 7) as f32 * 0.1))
            })
            .collect();
        let mut scores = Vec::new();
        let (mut evaluated, started) = (0usize, Instant::now());
        while started.elapsed() < Duration::from_secs(2) {
            model.scores(std::hint::black_box(&rows), &mut scores);
            evaluated += batch;
        }
        let rate = evaluated as f64 / started.elapsed().as_secs_f64();
        println!(
            "batch {batch:>5}: {rate:>12.0} rows/s on one thread ({:.2} µs/row)",
            1e6 / rate
        );
    }
    Ok(())
}
