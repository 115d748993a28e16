//! `platformctl load`: drives `POST /register/` (or, with `--database-url`, the same
//! registration transaction directly through the store), or the prediction-service
//! (`--target predict-http|predict-kafka`), at a fixed concurrency or rate, and reports
//! throughput and latency percentiles from an HDR histogram. `--verify` then waits until
//! every created user was notified and checks each exactly once.

mod args;
mod http;
mod latency;
mod outcome;
mod predict;
mod progress;
mod report;
mod tally;
mod target;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use args::LoadArgs;
use args::TargetKind;
use outcome::Outcome;
use report::Report;
use tally::Tally;
use target::Target;

/// Shared by the workers: which request is next, when the run ends, live counters.
struct Plan {
    next: AtomicU64,
    count: u64,
    start: Instant,
    deadline: Option<Instant>,
    rate: Option<f64>,
    progress: Arc<progress::Counters>,
}

impl Plan {
    /// The next request number and, with a rate, when it is due; `None` when done.
    fn ticket(&self) -> Option<(u64, Option<Instant>)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self
            .rate
            .map(|rate| self.start + Duration::from_secs_f64(n as f64 / rate));
        let late = |at: Instant| self.deadline.is_some_and(|d| at >= d);
        if n >= self.count || late(due.unwrap_or_else(Instant::now)) {
            return None;
        }
        Some((n, due))
    }
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.rate.is_none_or(|r| r > 0.0), "--rate must be positive");
    anyhow::ensure!(
        args.target == TargetKind::Register || (!args.verify && args.database_url.is_none()),
        "--verify and --database-url are for registrations only"
    );
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    // It becomes part of every email (and of the JSON bodies, written unescaped).
    anyhow::ensure!(
        !run_id.is_empty()
            && run_id.len() <= 40
            && run_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "--run-id must be 1-40 letters, digits or '-'"
    );
    let target = Arc::new(Target::connect(&args, &run_id).await?);
    let plan = Arc::new(plan(&args));
    let ticker = progress::spawn(plan.progress.clone(), plan.count, !args.json);
    let tally = drive(&target, &plan).await;
    let elapsed = plan.start.elapsed();
    ticker.abort();
    progress::clear_terminal_line();

    let mut report = Report::new(&args, &run_id, target.name(), elapsed, &tally);
    if args.verify {
        report.verify = Some(verify::check(&args.verify_args, &run_id, &tally.created).await?);
    }
    report.print(args.json)?;
    anyhow::ensure!(report.passed(), "load run failed: see the report");
    Ok(())
}

fn plan(args: &LoadArgs) -> Plan {
    let count = match (args.count, args.duration) {
        (Some(count), _) => count,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1000,
    };
    let start = Instant::now();
    Plan {
        next: AtomicU64::new(0),
        count,
        start,
        deadline: args
            .duration
            .map(|secs| start + Duration::from_secs_f64(secs)),
        rate: args.rate,
        progress: Arc::default(),
    }
}

async fn drive(target: &Arc<Target>, plan: &Arc<Plan>) -> Tally {
    let workers: Vec<_> = (0..target.concurrency())
        .map(|_| tokio::spawn(worker(target.clone(), plan.clone())))
        .collect();
    let mut tally = Tally::new();
    for worker in futures::future::join_all(workers).await {
        tally.merge(worker.expect("load worker panicked"));
    }
    tally
}

async fn worker(target: Arc<Target>, plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::new();
    while let Some((n, due)) = plan.ticket() {
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = due.unwrap_or_else(Instant::now);
        let sent_at = chrono::Utc::now();
        let outcome = target.send(n).await;
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally.latency.saturating_record(micros.max(1));
        plan.progress.record(outcome.succeeded());
        *tally.statuses.entry(outcome.label()).or_default() += 1;
        if let Outcome::Created(user_id) = outcome {
            tally.created.push(verify::Created { user_id, sent_at });
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn args(extra: &[&str]) -> LoadArgs {
        LoadArgs::parse_from(std::iter::once("load").chain(extra.iter().copied()))
    }

    #[test]
    fn a_count_hands_out_exactly_that_many_tickets() {
        let plan = plan(&args(&["--count", "3"]));
        let numbers: Vec<u64> = std::iter::from_fn(|| plan.ticket().map(|(n, _)| n)).collect();
        assert_eq!(numbers, [0, 1, 2]);
        assert!(plan.ticket().is_none(), "a finished plan stays finished");
    }

    #[test]
    fn a_rate_spaces_the_due_times_evenly() {
        let plan = plan(&args(&["--count", "3", "--rate", "4"]));
        let due: Vec<Duration> = std::iter::from_fn(|| plan.ticket())
            .map(|(_, due)| due.expect("a rate gives due times") - plan.start)
            .collect();
        assert_eq!(due, [0, 250, 500].map(Duration::from_millis));
    }

    #[test]
    fn a_duration_ends_the_run_at_the_first_request_due_after_it() {
        // 10 requests a second for 0.25 s: the requests due at 0, 0.1 and 0.2 s.
        let plan = plan(&args(&["--rate", "10", "--duration", "0.25"]));
        assert_eq!(std::iter::from_fn(|| plan.ticket()).count(), 3);
    }

    #[test]
    fn the_report_counts_every_answer_but_201_as_an_error_by_status() {
        let mut tally = Tally::new();
        for (status, micros) in [
            ("201", 1_000),
            ("201", 3_000),
            ("409", 2_000),
            ("transport", 9_000),
        ] {
            tally.latency.record(micros).expect("in range");
            *tally.statuses.entry(status.to_owned()).or_default() += 1;
        }
        for _ in 0..2 {
            let user_id = uuid::Uuid::new_v4();
            let sent_at = chrono::Utc::now();
            tally.created.push(verify::Created { user_id, sent_at });
        }

        let report = Report::new(&args(&[]), "r", "http", Duration::from_secs(2), &tally);

        assert_eq!((report.requests, report.created, report.errors), (4, 2, 2));
        let by_status: Vec<(&str, u64)> = report
            .errors_by_status
            .iter()
            .map(|(s, n)| (s.as_str(), *n))
            .collect();
        assert_eq!(by_status, [("409", 1), ("transport", 1)]);
        assert!((report.throughput_per_second - 1.0).abs() < 1e-9);
        assert!((report.latency_ms.max - 9.0).abs() < 0.01);
        assert!(!report.passed(), "errors fail the run");
    }
}
