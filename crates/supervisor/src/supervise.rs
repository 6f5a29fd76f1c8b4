//! Running one actor under supervision.
//!
//! [`spawn`] is how `serve` starts each actor: it puts a supervised loop
//! on the server's `JoinSet`. [`supervise`] is that loop: run, log, count
//! and restart with backoff.

use std::future::Future;
use std::time::Duration;

use gatelog_metrics::{Component, Label, Metrics};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The first restart waits this long; each further one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts `component` on `actors`, supervised. Each run calls `run` with
/// a clone of `actor` (an `Arc` or other cheap handle) and of the shutdown
/// token, so a restarted run gets the same actor.
pub fn spawn<A, F, Fut, E>(
    actors: &mut JoinSet<()>,
    component: Component,
    shutdown: &CancellationToken,
    metrics: &Metrics,
    actor: A,
    run: F,
) where
    A: Clone + Send + 'static,
    F: Fn(A, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let token = shutdown.clone();
    actors.spawn(supervise(
        component,
        shutdown.clone(),
        metrics.clone(),
        move || run(actor.clone(), token.clone()),
    ));
}

/// Runs the actor that `start` makes until it returns `Ok`, or until
/// `shutdown` fires after a failure. A run that returns an error or panics
/// is logged, counted and started again after a backoff.
pub async fn supervise<F, Fut, E>(
    component: Component,
    shutdown: CancellationToken,
    metrics: Metrics,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let name = component.as_str();
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
        metrics.component_restarts_total.with(component).inc();
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
            Component::Demo,
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
            metrics.component_restarts_total.with(Component::Demo).get(),
            2
        );
    }
}
