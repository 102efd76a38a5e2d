//! Retries of idempotent requests (get, list, server-side apply, delete, discovery) on
//! connection errors, 429 and 5xx, with exponential backoff and jitter, honouring the
//! server's `Retry-After` and the provider's stop token.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::{Ctx, KubeError, classify, is_retryable, retry_after};

/// Attempts in all, the first included.
const ATTEMPTS: u32 = 4;
const BASE_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds, fails for good, runs out of attempts or the token is cancelled.
pub(crate) async fn with_retries<T, F, Fut>(
    stop: &CancellationToken,
    ctx: &Ctx<'_>,
    mut op: F,
) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ::kube::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match cancellable(stop, op()).await? {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if attempt >= ATTEMPTS || !is_retryable(&err) {
            return Err(classify(err, ctx));
        }
        let delay = retry_after(&err)
            .map(|d| d.min(MAX_DELAY))
            .unwrap_or_else(|| backoff(attempt));
        tracing::debug!(
            object = %ctx.object,
            verb = ctx.verb,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "retrying Kubernetes request"
        );
        sleep(stop, delay).await?;
    }
}

/// `fut`, unless the provider is asked to stop first.
pub(crate) async fn cancellable<T>(
    stop: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Result<T, KubeError> {
    tokio::select! {
        // A stop that already happened wins over an answer that happens to be ready.
        biased;
        () = stop.cancelled() => Err(KubeError::Cancelled),
        value = fut => Ok(value),
    }
}

pub(crate) async fn sleep(stop: &CancellationToken, delay: Duration) -> Result<(), KubeError> {
    cancellable(stop, tokio::time::sleep(delay)).await
}

/// Exponential backoff with jitter: uniform in `[BASE/4, BASE/4 + min(MAX, BASE * 2^(attempt-1)))`,
/// so many clients retrying against the same API server spread out.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap = BASE_DELAY
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    let cap_ms = cap.as_millis().max(1) as u64;
    Duration::from_millis(BASE_DELAY.as_millis() as u64 / 4 + jitter() % cap_ms)
}

/// A cheap random number: `RandomState` is randomly seeded per instance.
fn jitter() -> u64 {
    RandomState::new().hash_one(std::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..10 {
            let d = backoff(attempt);
            assert!(d <= MAX_DELAY + BASE_DELAY, "{d:?}");
        }
        assert!(backoff(1) <= BASE_DELAY + BASE_DELAY / 4);
    }

    #[tokio::test]
    async fn cancellation_wins() {
        let stop = CancellationToken::new();
        stop.cancel();
        let r = sleep(&stop, Duration::from_secs(60)).await;
        assert_eq!(r, Err(KubeError::Cancelled));
    }
}
