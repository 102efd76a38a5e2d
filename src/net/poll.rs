//! Waiting that the provider's stop token can end: [`cancellable`], [`sleep`], and [`poll`],
//! the one loop behind every wait for something to become true (objects ready, objects gone,
//! a kind served, a credential confirmed in use).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Backoff;

/// The provider was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// `fut`, unless `stop` is cancelled first.
pub async fn cancellable<T>(
    stop: &CancellationToken,
    fut: impl Future<Output = T>,
) -> Result<T, Cancelled> {
    tokio::select! {
        // A stop that already happened wins over an answer that happens to be ready.
        biased;
        () = stop.cancelled() => Err(Cancelled),
        value = fut => Ok(value),
    }
}

/// Sleeps for `delay`, unless `stop` is cancelled first.
pub async fn sleep(stop: &CancellationToken, delay: Duration) -> Result<(), Cancelled> {
    cancellable(stop, tokio::time::sleep(delay)).await
}

/// What one look found: the answer, or what is still awaited (the next look starts from it).
#[derive(Debug)]
pub enum Polled<T, S> {
    Ready(T),
    Waiting(S),
}

impl<T> Polled<(), Vec<T>> {
    /// Ready when nothing is left to wait for.
    pub fn unless_left(left: Vec<T>) -> Self {
        if left.is_empty() {
            Self::Ready(())
        } else {
            Self::Waiting(left)
        }
    }
}

/// How a [`poll`] ended without an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum PollError<S, E> {
    /// A look failed.
    Failed(E),
    /// The deadline passed; what was still awaited at the last look.
    TimedOut(S),
    Cancelled,
}

/// Looks with `look` until it is ready, a look fails, the deadline passes or `stop` is
/// cancelled, pausing by `backoff` between looks (never past the deadline). There is always
/// one look, and one at the deadline. Each look gets what the last one still awaited
/// (`start` for the first), so a wait can narrow to the objects not ready yet.
pub async fn poll<T, S, E, F, Fut>(
    stop: &CancellationToken,
    deadline: Instant,
    backoff: Backoff,
    start: S,
    mut look: F,
) -> Result<T, PollError<S, E>>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<Polled<T, S>, E>>,
{
    let mut state = start;
    let mut attempt = 0;
    loop {
        state = match look(state).await.map_err(PollError::Failed)? {
            Polled::Ready(value) => return Ok(value),
            Polled::Waiting(state) => state,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PollError::TimedOut(state));
        }
        sleep(stop, backoff.delay(attempt).min(left))
            .await
            .map_err(|Cancelled| PollError::Cancelled)?;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));

    #[tokio::test]
    async fn cancellation_wins() {
        let stop = CancellationToken::new();
        stop.cancel();
        let r = sleep(&stop, Duration::from_secs(60)).await;
        assert_eq!(r, Err(Cancelled));
        assert_eq!(cancellable(&stop, async { 1 }).await, Err(Cancelled));
    }

    #[tokio::test]
    async fn polls_until_ready_and_narrows_what_it_waits_for() {
        let stop = CancellationToken::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut looks = Vec::new();
        let answer = poll(&stop, deadline, QUICK, 3u32, |left| {
            looks.push(left);
            async move {
                Ok::<_, ()>(match left {
                    1 => Polled::Ready("done"),
                    n => Polled::Waiting(n - 1),
                })
            }
        })
        .await;
        assert_eq!(answer, Ok("done"));
        assert_eq!(looks, [3, 2, 1]);
        assert!(matches!(
            Polled::unless_left(Vec::<u8>::new()),
            Polled::Ready(())
        ));
        assert!(matches!(Polled::unless_left(vec![1]), Polled::Waiting(left) if left == [1]));
    }

    #[tokio::test]
    async fn ends_at_the_deadline_on_failure_or_on_stop() {
        let stop = CancellationToken::new();
        let never = |n: u32| async move { Ok::<Polled<(), u32>, ()>(Polled::Waiting(n + 1)) };
        let started = Instant::now();
        let timed_out = poll(&stop, started + Duration::from_millis(100), QUICK, 0, never).await;
        let Err(PollError::TimedOut(looks)) = timed_out else {
            panic!("{timed_out:?}");
        };
        assert!(looks >= 3, "looked {looks} times");
        assert!(started.elapsed() < Duration::from_secs(2));

        let failing = |()| async { Err::<Polled<(), ()>, _>("broken") };
        let far = Instant::now() + Duration::from_secs(60);
        assert_eq!(
            poll(&stop, far, QUICK, (), failing).await,
            Err(PollError::Failed("broken"))
        );

        stop.cancel();
        assert_eq!(
            poll(&stop, far, QUICK, 0, never).await,
            Err(PollError::Cancelled)
        );
    }
}
