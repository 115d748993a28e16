//! Graceful shutdown: one token that every task of a service watches.

use tokio_util::sync::CancellationToken;

/// Cancelled when the service must stop; clones share the state.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown of everything that watches this token.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&self) {
        self.0.cancelled().await;
    }

    /// A token that stops with this one and can also be stopped on its own.
    pub fn child(&self) -> Self {
        Self(self.0.child_token())
    }

    /// Triggers this token `delay` after `event` (SIGINT or SIGTERM, for a service).
    pub fn trigger_after(
        &self,
        event: impl std::future::Future<Output = ()> + Send + 'static,
        delay: std::time::Duration,
    ) {
        let token = self.clone();
        tokio::spawn(async move {
            event.await;
            if !delay.is_zero() {
                // Kubernetes removes a terminating pod from its Service while the signal
                // is on its way; a gateway that has not heard yet still sends it new
                // connections, which a closed listener would refuse (502s).
                tracing::info!(
                    ?delay,
                    "shutdown signal received; serving on until the delay ends"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutting down");
            token.trigger();
        });
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => drop(ctrl_c.await),
        }
    }
    #[cfg(not(unix))]
    drop(ctrl_c.await);
}

/// A service that had not stopped when its grace period ran out.
#[derive(Debug, thiserror::Error)]
#[error("did not stop within the {0:?} grace period")]
pub struct GraceExpired(pub std::time::Duration);

/// Runs a service until SIGINT/SIGTERM and `delay` more, then gives it `grace` to drain
/// before giving up with [`GraceExpired`].
pub async fn run_until_signal<F>(
    delay: std::time::Duration,
    grace: std::time::Duration,
    service: impl FnOnce(Shutdown) -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let shutdown = Shutdown::new();
    shutdown.trigger_after(wait_for_signal(), delay);
    run_until(shutdown, grace, service).await
}

/// Runs a service until `shutdown`, then gives it `grace` to drain.
async fn run_until<F>(
    shutdown: Shutdown,
    grace: std::time::Duration,
    service: impl FnOnce(Shutdown) -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let service = service(shutdown.clone());
    tokio::pin!(service);
    tokio::select! {
        result = &mut service => return result,
        () = shutdown.wait() => {}
    }
    match tokio::time::timeout(grace, service).await {
        Ok(result) => result,
        Err(_) => Err(GraceExpired(grace).into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_service_that_stops_in_time_returns_its_result() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let result = run_until(shutdown, Duration::from_secs(5), |stop| async move {
            stop.wait().await;
            Ok(())
        })
        .await;
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn the_shutdown_waits_out_the_delay_after_the_signal() {
        let shutdown = Shutdown::new();
        let started = std::time::Instant::now();
        shutdown.trigger_after(std::future::ready(()), Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!shutdown.is_triggered(), "triggered before the delay ended");
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("triggered once the delay ended");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_service_that_does_not_stop_is_given_up_after_its_grace_period() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        let result = run_until(shutdown, Duration::from_millis(50), |_| {
            std::future::pending::<anyhow::Result<()>>()
        })
        .await;
        let error = result.expect_err("a service that never stops");
        assert!(error.is::<GraceExpired>(), "{error:?}");
    }
}
