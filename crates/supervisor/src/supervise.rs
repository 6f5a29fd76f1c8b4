//! Running one actor under supervision.

use std::future::Future;
use std::time::Duration;

use gatelog_metrics::Metrics;
use tokio_util::sync::CancellationToken;

/// The first restart waits this long; each further one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs the actor that `start` makes until it returns `Ok`, or until
/// `shutdown` fires after a failure. A run that returns an error or panics
/// is logged, counted and started again after a backoff.
pub async fn supervise<F, Fut, E>(
    name: &'static str,
    shutdown: CancellationToken,
    metrics: Metrics,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match tokio::spawn(start()).await {
            Ok(Ok(())) => {
                tracing::info!(component = name, "component stopped");
                return;
            }
            Ok(Err(e)) => tracing::error!(component = name, error = %e, "component failed"),
            Err(join) if join.is_panic() => tracing::error!(component = name, "component panicked"),
            Err(_) => {
                tracing::info!(component = name, "component cancelled");
                return;
            }
        }
        if shutdown.is_cancelled() {
            tracing::info!(component = name, "not restarting during shutdown");
            return;
        }
        metrics
            .component_restarts_total
            .with_label_values(&[name])
            .inc();
        tracing::warn!(
            component = name,
            backoff_ms = backoff.as_millis() as u64,
            "restarting component"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn restarts_a_failing_actor_until_it_succeeds() {
        let runs = Arc::new(AtomicUsize::new(0));
        let metrics = Metrics::new();
        let r = runs.clone();
        supervise(
            "flaky",
            CancellationToken::new(),
            metrics.clone(),
            move || {
                let r = r.clone();
                async move {
                    match r.fetch_add(1, Ordering::SeqCst) {
                        0 => Err("first run fails".to_string()),
                        1 => panic!("second run panics"),
                        _ => Ok(()),
                    }
                }
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(
            metrics
                .component_restarts_total
                .with_label_values(&["flaky"])
                .get(),
            2
        );
    }
}
