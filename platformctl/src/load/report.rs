//! The report of a load run, as text or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::args::LoadArgs;
use super::latency::Summary;
use super::outcome::SUCCESS;
use super::tally::Tally;
use super::verify::Verification;

#[derive(Debug, Serialize)]
pub struct Report {
    pub run_id: String,
    /// `http` (POST /register/), `store` (the transaction alone), `predict-http` or
    /// `predict-kafka`.
    pub target: &'static str,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub requests: u64,
    /// Users created, or predictions answered with the expected class.
    pub created: u64,
    pub errors: u64,
    /// Answers other than 201 by status; `transport` when there was none.
    pub errors_by_status: BTreeMap<String, u64>,
    pub elapsed_seconds: f64,
    pub throughput_per_second: f64,
    pub latency_ms: Summary,
    pub verify: Option<Verification>,
}

impl Report {
    pub fn new(
        args: &LoadArgs,
        run_id: &str,
        target: &'static str,
        elapsed: Duration,
        tally: &Tally,
    ) -> Self {
        let requests = tally.latency.len();
        let created = SUCCESS
            .iter()
            .filter_map(|label| tally.statuses.get(*label))
            .sum();
        let errors_by_status: BTreeMap<String, u64> = tally
            .statuses
            .iter()
            .filter(|(status, _)| !SUCCESS.contains(&status.as_str()))
            .map(|(status, n)| (status.clone(), *n))
            .collect();
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            run_id: run_id.to_owned(),
            target,
            concurrency: args.concurrency,
            rate: args.rate,
            requests,
            created,
            errors: requests - created,
            errors_by_status,
            elapsed_seconds: secs,
            throughput_per_second: created as f64 / secs,
            latency_ms: Summary::of(&tally.latency),
            verify: None,
        }
    }

    /// No errors and, when verified, every user notified exactly once.
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.verify.as_ref().is_none_or(|v| v.exactly_once)
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            println!("{}", self.text());
        }
        Ok(())
    }

    fn text(&self) -> String {
        let rate = self
            .rate
            .map_or_else(|| "max".to_owned(), |r| format!("{r}/s"));
        let (done, unit) = if self.target.starts_with("predict") {
            ("answered", "predictions")
        } else {
            ("created", "registrations")
        };
        let mut out = format!(
            "run {} against {}: concurrency {}, rate {rate}\n\
             requests   {} in {:.2} s: {} {done}, {} errors\n\
             throughput {:.1} {unit}/s\n\
             latency    {}\n",
            self.run_id,
            self.target,
            self.concurrency,
            self.requests,
            self.elapsed_seconds,
            self.created,
            self.errors,
            self.throughput_per_second,
            self.latency_ms.line(),
        );
        for (status, n) in &self.errors_by_status {
            out.push_str(&format!("  {status}: {n}\n"));
        }
        if let Some(v) = &self.verify {
            out.push_str(&format!(
                "verify     {} of {} delivered, {} missing, {} duplicated, {} unexpected: {}\n\
                 end-to-end {}\n",
                v.delivered,
                v.created,
                v.missing,
                v.duplicated,
                v.unexpected,
                if v.exactly_once {
                    "exactly once"
                } else {
                    "FAILED"
                },
                v.end_to_end_latency_ms.line(),
            ));
        }
        out
    }
}
