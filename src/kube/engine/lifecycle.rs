//! [`Lifecycle`]: how a resource that owns a whole set of objects through an inventory
//! applies, refreshes and removes them. The resource renders the desired objects and keeps
//! the inventory; this holds the rest, so every such owner (the Flux bootstrap, a tenant, an
//! agent install) behaves the same on apply, drift and destroy.

use std::time::Duration;

use serde_json::Value;

use super::drift::differences;
use super::{ApplyOptions, DEFAULT_CONCURRENCY, EngineError, apply_and_prune, foreign, teardown};
use crate::kube::KubeClient;

/// How an owner's objects are applied and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub apply: ApplyOptions,
    /// Leaves the Namespaces of the inventory, and so whatever else lives in them, on
    /// teardown.
    pub keep_namespaces: bool,
    /// A first apply takes over objects something else installed (otherwise it refuses).
    pub adopt_existing: bool,
}

/// What a refresh finds of an owner's desired objects in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// None of them is left: the owner was removed behind its back.
    Gone,
    InSync,
    /// Some are missing or differ: the next apply repairs them.
    Drifted,
}

impl Observed {
    fn of(desired: usize, missing: usize, drifted: usize) -> Self {
        match drifted {
            0 => Self::InSync,
            _ if missing == desired => Self::Gone,
            _ => Self::Drifted,
        }
    }
}

impl Lifecycle {
    /// An owner's lifecycle: it takes over fields other managers hold, since the objects
    /// are its own.
    pub fn owner(wait: bool, timeout: Duration, keep_namespaces: bool) -> Self {
        Self {
            apply: ApplyOptions {
                force: true,
                wait,
                timeout,
                concurrency: DEFAULT_CONCURRENCY,
            },
            keep_namespaces,
            adopt_existing: false,
        }
    }

    /// The same, taking over what exists on a first apply when `adopt` is set.
    pub fn adopting(mut self, adopt: bool) -> Self {
        self.adopt_existing = adopt;
        self
    }

    /// Before a first apply: refuses objects that exist and that this provider did not
    /// create, unless adopting. An owner whose earlier first apply was cut short finds its
    /// own objects, and goes on.
    pub async fn claim(&self, client: &KubeClient, desired: &[Value]) -> Result<(), EngineError> {
        if self.adopt_existing {
            return Ok(());
        }
        let objects = foreign(client, desired).await?;
        if objects.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Foreign { objects })
        }
    }

    /// Applies `desired` and prunes what `previous` (the last inventory) held beyond it;
    /// returns the new inventory.
    pub async fn apply(
        &self,
        client: &KubeClient,
        desired: &[Value],
        previous: &[String],
    ) -> Result<Vec<String>, EngineError> {
        apply_and_prune(client, desired, previous, &self.apply).await
    }

    /// Removes everything `inventory` lists, within the apply timeout.
    pub async fn teardown(
        &self,
        client: &KubeClient,
        inventory: &[String],
    ) -> Result<(), EngineError> {
        teardown(client, inventory, self.keep_namespaces, self.apply.timeout).await
    }
}

/// Compares `desired` with the cluster.
pub async fn observe(client: &KubeClient, desired: &[Value]) -> Result<Observed, EngineError> {
    let drifted = differences(client, desired).await?;
    let missing = drifted.iter().filter(|d| d.missing).count();
    Ok(Observed::of(desired.len(), missing, drifted.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_only_when_nothing_is_left() {
        assert_eq!(Observed::of(3, 0, 0), Observed::InSync);
        assert_eq!(Observed::of(3, 2, 2), Observed::Drifted);
        assert_eq!(Observed::of(3, 3, 3), Observed::Gone);
        // Edited is not gone, however few objects the owner has.
        assert_eq!(Observed::of(3, 2, 3), Observed::Drifted);
        assert_eq!(Observed::of(1, 0, 1), Observed::Drifted);
        // An owner that renders nothing has nothing to lose.
        assert_eq!(Observed::of(0, 0, 0), Observed::InSync);
    }
}
