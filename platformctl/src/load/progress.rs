//! Live progress on stderr: one rewritten line on a terminal; otherwise a plain line every
//! five seconds (CI logs), except with `--json`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Counters {
    done: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    pub fn record(&self, ok: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn line(counters: &Counters, total: u64, start: Instant) -> String {
    let done = counters.done.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let of = if total == u64::MAX {
        String::new()
    } else {
        format!("/{total}")
    };
    format!(
        "{done}{of} requests, {errors} errors, {:.0} req/s, {secs:.1} s",
        done as f64 / secs
    )
}

/// Reports progress until aborted. Plain lines only when `verbose` (not `--json`).
pub fn spawn(counters: Arc<Counters>, total: u64, verbose: bool) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    tokio::spawn(async move {
        let every = if tty { 200 } else { 5000 };
        let mut interval = tokio::time::interval(Duration::from_millis(every));
        interval.tick().await;
        loop {
            interval.tick().await;
            let text = line(&counters, total, start);
            let mut err = std::io::stderr().lock();
            if tty {
                let _ = write!(err, "\r\x1b[2K{text}");
            } else if verbose {
                let _ = writeln!(err, "{text}");
            }
        }
    })
}

/// Erases the rewritten progress line on a terminal, so the report starts on a clean line.
pub fn clear_terminal_line() {
    if std::io::stderr().is_terminal() {
        let _ = writeln!(std::io::stderr(), "\r\x1b[2K");
    }
}
