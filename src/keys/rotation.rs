//! The rotation engine every credential uses (agent tokens now; deploy keys and signing keys
//! next): it converges an issuer's live credentials and the consumer's copy onto one current
//! credential, and it is crash-consistent by construction, because every run starts from what
//! it observes, not from what the last run meant to do.
//!
//! # The invariant
//!
//! 1. **The credential in use is the one the consumer holds.** [`Credentials::observe`] reads
//!    it from where it is used (an agent token's Secret, by the id label and value hash written
//!    with it), never from Terraform state alone. That is [`View::current`].
//! 2. **The current credential is never revoked.** Another credential this resource owns is
//!    revoked only when it was never used and is not the one state names (an orphan: a create
//!    whose answer was lost, a run killed before delivery), or once the current one is
//!    confirmed in use by its consumers.
//! 3. **Only owned credentials are revoked**, unless the user opted in to displacing foreign
//!    ones ([`Policy::displace_foreign`]); then each displacement is reported.
//! 4. **A fresh credential is created only when no delivered successor exists.** When the
//!    consumer already holds a credential newer than the one being replaced (a rotation cut
//!    short after delivery), the run finishes that rotation instead of starting another.
//! 5. **Every step is idempotent**: delivery writes the same value again, roll-out skips
//!    consumers already running the current credential, revoking a gone credential is done.
//!
//! So a retry after a failure, a lost answer or a kill at any step converges: the consumer
//! always holds a live credential, no credential is revoked while it is current or while its
//! successor is unconfirmed, and no orphan outlives the next run. A failed run reports what
//! the consumer holds now ([`Failure::current`]) so the caller can save it as partial progress.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::net::{self, Backoff, PollError, Polled};

/// 100 ms doubling up to 5 s: consumers restart before they confirm.
const CONFIRM_POLL: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// One live credential of the issuer, as the engine judges it.
#[derive(Clone, Debug, PartialEq)]
pub struct Live<Id> {
    pub id: Id,
    /// Created by this resource: named by its state, held by its consumer, or carrying its
    /// marker.
    pub owned: bool,
    /// Whether any consumer ever used it (`None` when the issuer was not asked).
    pub used: Option<bool>,
    /// When it was last used, for choosing the least recently used; sorts never-used first.
    pub last_used: Option<String>,
    /// How to name it in a diagnostic (never its value).
    pub label: String,
}

/// What one look at the issuer and the consumer found.
#[derive(Clone, Debug)]
pub struct View<Id> {
    pub live: Vec<Live<Id>>,
    /// The live, owned credential the consumer holds.
    pub current: Option<Id>,
    /// The credential Terraform state names, never treated as an orphan.
    pub recorded: Option<Id>,
}

impl<Id: PartialEq> View<Id> {
    /// Owned, never used, neither current nor recorded: nothing can be running it.
    fn is_orphan(&self, c: &Live<Id>) -> bool {
        c.owned
            && c.used == Some(false)
            && Some(&c.id) != self.current.as_ref()
            && Some(&c.id) != self.recorded.as_ref()
    }
}

/// What a run is asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Goal<Id> {
    /// Bring what is there to rest: roll out and confirm the current credential, retire the
    /// rest. A fresh one is created only when the consumer holds none.
    Finish,
    /// A new credential replacing `replacing` (unless the consumer already holds one newer).
    Fresh { replacing: Option<Id> },
}

/// How to wait for consumers, and what the user allowed.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub confirm: ConfirmPolicy,
    /// The issuer's limit on live credentials (GitLab: two agent tokens).
    pub capacity: Option<usize>,
    /// Revoke a credential this resource did not create when the limit is reached.
    pub displace_foreign: bool,
}

/// How long to wait for confirmation, and whether to wait at all (nothing to confirm when no
/// consumer is restarted).
#[derive(Clone, Copy, Debug)]
pub struct ConfirmPolicy {
    pub timeout: Duration,
    pub required: bool,
}

/// One credential family's steps. Each must be idempotent; errors are the implementor's.
#[async_trait]
pub trait Credentials: Send + Sync {
    type Id: Clone + Debug + PartialEq + Send + Sync;
    /// A credential just created, with its value.
    type New: Send + Sync;
    type Error: Send;

    /// The issuer's live credentials and the one the consumer holds.
    async fn observe(&self) -> Result<View<Self::Id>, Self::Error>;
    async fn create(&self) -> Result<Self::New, Self::Error>;
    /// Whether a failed create may have happened all the same (its answer was lost).
    fn outcome_unknown(&self, error: &Self::Error) -> bool;
    /// Whether a failed look means the issuer itself is gone (an agent or project deleted),
    /// and every credential with it.
    fn issuer_gone(&self, _error: &Self::Error) -> bool {
        false
    }
    fn id_of(&self, new: &Self::New) -> Self::Id;
    /// Hands the new credential to the consumer (write the Secret); afterwards it is current.
    async fn deliver(&self, new: &Self::New) -> Result<(), Self::Error>;
    /// Makes the consumers pick up the current credential (restart workloads not yet running
    /// it).
    async fn roll_out(&self, current: &Self::Id) -> Result<(), Self::Error>;
    /// Whether the consumers use `id`.
    async fn in_use(&self, id: &Self::Id) -> Result<bool, Self::Error>;
    async fn revoke(&self, id: &Self::Id) -> Result<(), Self::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError<Id: Debug, E> {
    #[error("a rotation step failed")]
    Step(E),
    #[error("the new credential was not confirmed in use within {0:?}; the old one was kept")]
    NotConfirmed(Duration),
    #[error("rotation cancelled; the old credential was kept")]
    Cancelled,
    /// The issuer's limit is reached by credentials this resource may not revoke.
    #[error("no room for a new credential")]
    NoRoom { in_the_way: Vec<Live<Id>> },
}

/// A run that stopped, with what the consumer holds now.
#[derive(Debug)]
pub struct Failure<Id: Debug, E> {
    pub current: Option<Id>,
    pub error: RotationError<Id, E>,
}

/// A run that converged.
#[derive(Debug)]
pub struct Converged<Id, New> {
    pub current: Id,
    /// The credential this run created, when it created one.
    pub created: Option<New>,
    /// Foreign credentials revoked under [`Policy::displace_foreign`], to report.
    pub displaced: Vec<Live<Id>>,
}

type Outcome<C> = Result<
    Converged<<C as Credentials>::Id, <C as Credentials>::New>,
    Failure<<C as Credentials>::Id, <C as Credentials>::Error>,
>;

/// Runs one convergence; see the module doc for what it guarantees.
pub async fn converge<C: Credentials>(
    c: &C,
    goal: Goal<C::Id>,
    policy: Policy,
    stop: &CancellationToken,
) -> Outcome<C> {
    let mut run = Run {
        c,
        policy,
        stop,
        current: None,
        displaced: Vec::new(),
    };
    let created = run.steps(goal).await.map_err(|error| Failure {
        current: run.current.clone(),
        error,
    })?;
    let Some(current) = run.current else {
        // Unreachable by construction: every path that succeeds sets the current credential.
        return Err(Failure {
            current: None,
            error: RotationError::Cancelled,
        });
    };
    Ok(Converged {
        current,
        created,
        displaced: run.displaced,
    })
}

struct Run<'a, C: Credentials> {
    c: &'a C,
    policy: Policy,
    stop: &'a CancellationToken,
    current: Option<C::Id>,
    displaced: Vec<Live<C::Id>>,
}

type StepResult<C, T> = Result<T, RotationError<<C as Credentials>::Id, <C as Credentials>::Error>>;

impl<C: Credentials> Run<'_, C> {
    async fn steps(&mut self, goal: Goal<C::Id>) -> StepResult<C, Option<C::New>> {
        let view = self.observe().await?;
        self.current = view.current.clone();
        let fresh = match (&goal, &view.current) {
            (_, None) => true,
            (Goal::Finish, Some(_)) => false,
            // A successor of the replaced credential was delivered: finish that rotation.
            (Goal::Fresh { replacing }, Some(held)) => replacing.as_ref() == Some(held),
        };
        let created = if fresh {
            let new = self.create_with_room(view).await?;
            self.c.deliver(&new).await.map_err(RotationError::Step)?;
            self.current = Some(self.c.id_of(&new));
            Some(new)
        } else {
            None
        };
        let current = self.current.clone().ok_or(RotationError::Cancelled)?;
        self.c
            .roll_out(&current)
            .await
            .map_err(RotationError::Step)?;
        self.confirm(&current).await?;
        self.retire_all_but(&current).await?;
        Ok(created)
    }

    async fn observe(&self) -> StepResult<C, View<C::Id>> {
        self.c.observe().await.map_err(RotationError::Step)
    }

    /// Sweeps orphans, frees a slot under the issuer's limit and creates. A create whose
    /// answer was lost is swept as the orphan it is and tried once more.
    async fn create_with_room(&mut self, view: View<C::Id>) -> StepResult<C, C::New> {
        let view = self.sweep_orphans(view).await?;
        self.make_room(view).await?;
        match self.c.create().await {
            Ok(new) => Ok(new),
            Err(e) if self.c.outcome_unknown(&e) => {
                let view = self.observe().await?;
                let view = self.sweep_orphans(view).await?;
                self.make_room(view).await?;
                self.c.create().await.map_err(RotationError::Step)
            }
            Err(e) => Err(RotationError::Step(e)),
        }
    }

    /// Revokes the orphans; returns the view without them (no second look needed).
    async fn sweep_orphans(&self, mut view: View<C::Id>) -> StepResult<C, View<C::Id>> {
        let (orphans, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut view.live)
            .into_iter()
            .partition(|l| view.is_orphan(l));
        for orphan in &orphans {
            self.c
                .revoke(&orphan.id)
                .await
                .map_err(RotationError::Step)?;
        }
        view.live = kept;
        Ok(view)
    }

    /// Frees one slot when the issuer is at its limit: an owned credential other than the
    /// current one (once the current one is confirmed), else, with the user's opt-in, the
    /// least recently used foreign one.
    async fn make_room(&mut self, view: View<C::Id>) -> StepResult<C, ()> {
        let Some(capacity) = self.policy.capacity else {
            return Ok(());
        };
        if view.live.len() < capacity {
            return Ok(());
        }
        let mut others: Vec<&Live<C::Id>> = view
            .live
            .iter()
            .filter(|l| Some(&l.id) != view.current.as_ref())
            .collect();
        others.sort_by(|a, b| a.last_used.cmp(&b.last_used));
        if let Some(current) = &view.current
            && let Some(owned) = others.iter().find(|l| l.owned)
        {
            // It may be what the consumers still run: only after the current one is used.
            self.confirm(current).await?;
            return self.c.revoke(&owned.id).await.map_err(RotationError::Step);
        }
        let foreign: Vec<Live<C::Id>> = others
            .iter()
            .filter(|l| !l.owned)
            .map(|l| (*l).clone())
            .collect();
        match foreign.first() {
            Some(lru) if self.policy.displace_foreign => {
                self.c.revoke(&lru.id).await.map_err(RotationError::Step)?;
                self.displaced.push(lru.clone());
                Ok(())
            }
            _ => Err(RotationError::NoRoom {
                in_the_way: foreign,
            }),
        }
    }

    async fn confirm(&self, current: &C::Id) -> StepResult<C, ()> {
        if !self.policy.confirm.required {
            return Ok(());
        }
        let timeout = self.policy.confirm.timeout;
        let deadline = Instant::now() + timeout;
        let look = |()| async move {
            Ok(if self.c.in_use(current).await? {
                Polled::Ready(())
            } else {
                Polled::Waiting(())
            })
        };
        net::poll(self.stop, deadline, CONFIRM_POLL, (), look)
            .await
            .map_err(|e| match e {
                PollError::Failed(e) => RotationError::Step(e),
                PollError::TimedOut(()) => RotationError::NotConfirmed(timeout),
                PollError::Cancelled => RotationError::Cancelled,
            })
    }

    /// Revokes every owned credential but the current one, which is confirmed by now.
    async fn retire_all_but(&self, current: &C::Id) -> StepResult<C, ()> {
        let view = self.observe().await?;
        for old in view.live.iter().filter(|l| l.owned && &l.id != current) {
            self.c.revoke(&old.id).await.map_err(RotationError::Step)?;
        }
        Ok(())
    }
}

/// Revokes every credential the resource owns (on destroy): state's, the consumer's and
/// orphans. An issuer that is gone took its credentials with it.
pub async fn revoke_owned<C: Credentials>(c: &C) -> Result<(), C::Error> {
    match c.observe().await {
        Ok(view) => {
            for owned in view.live.iter().filter(|l| l.owned) {
                c.revoke(&owned.id).await?;
            }
            Ok(())
        }
        Err(e) if c.issuer_gone(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
