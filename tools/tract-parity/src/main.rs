//! Runs an ONNX model with tract on every row of the platform's parity fixture and prints
//! tract's class and probabilities per row, so the prediction-service's own evaluator can
//! be compared with a second, independent ONNX runtime.
//!
//!   tract-parity MODEL.onnx FIXTURE.json            one JSON document on stdout
//!   tract-parity MODEL.onnx FIXTURE.json --bench    tract's rows per second instead
//!
//! FIXTURE is models/wine-forest-parity.json (models/train.py): its rows' `features` are
//! the input. The output has the fixture's shape: the model file's sha256 and, one a line,
//! `{"class": .., "probabilities": [..]}` for every row in order.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

/// The wine data's features per row.
const FEATURES: usize = 13;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tract-parity: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let (model_path, fixture_path, bench) = match args.as_slice() {
        [model, fixture] => (model, fixture, false),
        [model, fixture, flag] if flag == "--bench" => (model, fixture, true),
        _ => bail!("usage: tract-parity MODEL.onnx FIXTURE.json [--bench]"),
    };
    let model_bytes = std::fs::read(model_path).with_context(|| format!("reading {model_path}"))?;
    let rows = fixture_rows(fixture_path)?;
    if bench {
        return benchmark(&model_bytes, &rows);
    }
    let plan = runnable(&model_bytes, rows.len())?;
    let (classes, probabilities) = predict(&plan, &rows)?;
    print_predictions(&model_bytes, &classes, &probabilities);
    Ok(())
}

/// The `features` of every fixture row, as the f32 the model takes.
fn fixture_rows(path: &str) -> Result<Vec<[f32; FEATURES]>> {
    let text = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let fixture: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{path} is not JSON"))?;
    let rows = fixture["rows"]
        .as_array()
        .context("the fixture has no rows")?;
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let values: Vec<f64> = serde_json::from_value(row["features"].clone())
                .with_context(|| format!("row {i}: features"))?;
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            values
                .try_into()
                .map_err(|v: Vec<f32>| anyhow!("row {i}: {} features, not {FEATURES}", v.len()))
        })
        .collect()
}

type Plan = TypedRunnableModel<TypedModel>;

/// The model optimised by tract for a batch of `batch` rows.
fn runnable(model_bytes: &[u8], batch: usize) -> Result<Plan> {
    tract_onnx::onnx()
        .model_for_read(&mut &model_bytes[..])?
        .with_input_fact(0, f32::fact([batch, FEATURES]).into())?
        .into_optimized()?
        .into_runnable()
}

/// tract's label and class probabilities for each row: the model's two outputs.
fn predict(plan: &Plan, rows: &[[f32; FEATURES]]) -> Result<(Vec<i64>, Vec<Vec<f32>>)> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let input = tract_ndarray::Array2::from_shape_vec((rows.len(), FEATURES), flat)?;
    let outputs = plan.run(tvec!(Tensor::from(input).into()))?;
    let [labels, probabilities] = outputs.as_slice() else {
        bail!(
            "expected 2 outputs (label, probabilities), tract gave {}",
            outputs.len()
        );
    };
    let labels = labels.cast_to::<i64>()?.as_slice::<i64>()?.to_vec();
    let probabilities = probabilities.to_array_view::<f32>()?;
    let probabilities = probabilities
        .outer_iter()
        .map(|row| row.iter().copied().collect())
        .collect();
    Ok((labels, probabilities))
}

fn print_predictions(model_bytes: &[u8], classes: &[i64], probabilities: &[Vec<f32>]) {
    let sha256: String = Sha256::digest(model_bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("{{\"model_sha256\":\"{sha256}\",\"rows\":[");
    for (i, (class, probabilities)) in classes.iter().zip(probabilities).enumerate() {
        let row = serde_json::json!({"class": class, "probabilities": probabilities});
        let comma = if i + 1 < classes.len() { "," } else { "" };
        println!("{row}{comma}");
    }
    println!("]}}");
}

/// How long each measurement runs: long enough to smooth out scheduling noise.
const BENCH_TIME: Duration = Duration::from_secs(3);

/// tract's throughput on the fixture: every row in one batch, then one row per call.
fn benchmark(model_bytes: &[u8], rows: &[[f32; FEATURES]]) -> Result<()> {
    let batch = runnable(model_bytes, rows.len())?;
    let single = runnable(model_bytes, 1)?;
    let batched = rows_per_second(|| predict(&batch, rows).map(|_| rows.len()))?;
    let one_by_one = rows_per_second(|| {
        for row in rows {
            predict(&single, std::slice::from_ref(row))?;
        }
        Ok(rows.len())
    })?;
    println!(
        "tract: {batched:.0} rows/s in batches of {}, {one_by_one:.0} rows/s one row per call",
        rows.len()
    );
    Ok(())
}

/// Repeats `pass` (which returns the rows it evaluated) for [`BENCH_TIME`].
fn rows_per_second(mut pass: impl FnMut() -> Result<usize>) -> Result<f64> {
    let start = Instant::now();
    let mut rows = 0;
    while start.elapsed() < BENCH_TIME {
        rows += pass()?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}
