//! The overlap rotation every credential follows (agent tokens now; deploy keys and signing
//! keys later): make room, create the new credential, deliver it to its consumers, confirm
//! they use it, and only then retire the old one. If confirmation fails the old credential
//! stays valid, so consumers are never left without a working credential.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::net::{self, Backoff, PollError, Polled};

/// 100 ms doubling up to 5 s: consumers restart before they confirm.
const CONFIRM_POLL: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// One credential's rotation steps. Errors are the implementor's; the engine adds timing.
#[async_trait]
pub trait OverlapRotation: Send + Sync {
    type New: Send + Sync;
    type Error: Send;

    /// Frees capacity for the new credential (e.g. GitLab's two-active-tokens limit).
    async fn make_room(&self) -> Result<(), Self::Error>;
    async fn create(&self) -> Result<Self::New, Self::Error>;
    /// Hands the new credential to its consumers (write a Secret, restart workloads).
    async fn deliver(&self, new: &Self::New) -> Result<(), Self::Error>;
    /// Whether the consumers are using the new credential yet.
    async fn confirmed(&self, new: &Self::New) -> Result<bool, Self::Error>;
    /// Retires the credential being replaced.
    async fn retire_old(&self) -> Result<(), Self::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError<E> {
    #[error(transparent)]
    Step(E),
    #[error("the new credential was not confirmed in use within {0:?}; the old one was kept")]
    NotConfirmed(Duration),
    #[error("rotation cancelled; the old credential was kept")]
    Cancelled,
}

/// How long to wait for confirmation, and whether to wait at all (nothing to confirm when no
/// consumer is restarted).
#[derive(Clone, Copy, Debug)]
pub struct ConfirmPolicy {
    pub timeout: Duration,
    pub required: bool,
}

/// Runs a rotation; returns the new credential once the old one is retired.
pub async fn rotate<R: OverlapRotation>(
    r: &R,
    confirm: ConfirmPolicy,
    stop: &CancellationToken,
) -> Result<R::New, RotationError<R::Error>> {
    r.make_room().await.map_err(RotationError::Step)?;
    let new = r.create().await.map_err(RotationError::Step)?;
    r.deliver(&new).await.map_err(RotationError::Step)?;
    if confirm.required {
        wait_confirmed(r, &new, confirm.timeout, stop).await?;
    }
    r.retire_old().await.map_err(RotationError::Step)?;
    Ok(new)
}

async fn wait_confirmed<R: OverlapRotation>(
    r: &R,
    new: &R::New,
    timeout: Duration,
    stop: &CancellationToken,
) -> Result<(), RotationError<R::Error>> {
    let deadline = Instant::now() + timeout;
    let look = |()| async move {
        let confirmed = r.confirmed(new).await?;
        Ok(if confirmed {
            Polled::Ready(())
        } else {
            Polled::Waiting(())
        })
    };
    net::poll(stop, deadline, CONFIRM_POLL, (), look)
        .await
        .map_err(|e| match e {
            PollError::Failed(e) => RotationError::Step(e),
            PollError::TimedOut(()) => RotationError::NotConfirmed(timeout),
            PollError::Cancelled => RotationError::Cancelled,
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the steps; confirms after `confirm_after` polls (never when `None`).
    struct Fake {
        steps: Mutex<Vec<&'static str>>,
        polls: Mutex<u32>,
        confirm_after: Option<u32>,
    }

    impl Fake {
        fn new(confirm_after: Option<u32>) -> Self {
            Self {
                steps: Mutex::new(Vec::new()),
                polls: Mutex::new(0),
                confirm_after,
            }
        }
        fn step(&self, s: &'static str) {
            self.steps.lock().expect("lock").push(s);
        }
    }

    #[async_trait]
    impl OverlapRotation for Fake {
        type New = u32;
        type Error = String;
        async fn make_room(&self) -> Result<(), String> {
            self.step("make_room");
            Ok(())
        }
        async fn create(&self) -> Result<u32, String> {
            self.step("create");
            Ok(7)
        }
        async fn deliver(&self, _: &u32) -> Result<(), String> {
            self.step("deliver");
            Ok(())
        }
        async fn confirmed(&self, _: &u32) -> Result<bool, String> {
            let mut polls = self.polls.lock().expect("lock");
            *polls += 1;
            Ok(self.confirm_after.is_some_and(|n| *polls >= n))
        }
        async fn retire_old(&self) -> Result<(), String> {
            self.step("retire_old");
            Ok(())
        }
    }

    #[tokio::test]
    async fn retires_only_after_confirmation() {
        let fake = Fake::new(Some(3));
        let policy = ConfirmPolicy {
            timeout: Duration::from_secs(5),
            required: true,
        };
        let new = rotate(&fake, policy, &CancellationToken::new())
            .await
            .expect("rotates");
        assert_eq!(new, 7);
        assert_eq!(
            *fake.steps.lock().expect("lock"),
            ["make_room", "create", "deliver", "retire_old"]
        );
        assert_eq!(*fake.polls.lock().expect("lock"), 3);
    }

    #[tokio::test]
    async fn keeps_the_old_credential_when_unconfirmed() {
        let fake = Fake::new(None);
        let policy = ConfirmPolicy {
            timeout: Duration::from_millis(300),
            required: true,
        };
        let err = rotate(&fake, policy, &CancellationToken::new())
            .await
            .expect_err("times out");
        assert!(matches!(err, RotationError::NotConfirmed(_)));
        assert!(!fake.steps.lock().expect("lock").contains(&"retire_old"));
    }

    #[tokio::test]
    async fn cancellation_stops_waiting() {
        let fake = Fake::new(None);
        let stop = CancellationToken::new();
        stop.cancel();
        let policy = ConfirmPolicy {
            timeout: Duration::from_secs(60),
            required: true,
        };
        let err = rotate(&fake, policy, &stop).await.expect_err("cancelled");
        assert!(matches!(err, RotationError::Cancelled));
    }
}
