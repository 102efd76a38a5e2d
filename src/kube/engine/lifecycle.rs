//! [`Lifecycle`]: how a resource that owns a whole set of objects through an inventory
//! applies, refreshes and removes them. The resource renders the desired objects and keeps
//! the inventory; this holds the rest, so every such owner (the Flux bootstrap, a tenant, an
//! agent install) behaves the same on apply, drift and destroy.

use std::time::Duration;

use serde_json::Value;

use super::{ApplyOptions, DEFAULT_CONCURRENCY, EngineError, apply_and_prune, drift, teardown};
use crate::kube::KubeClient;

/// How an owner's objects are applied and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub apply: ApplyOptions,
    /// Leaves the Namespaces of the inventory, and so whatever else lives in them, on
    /// teardown.
    pub keep_namespaces: bool,
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
    fn of(desired: usize, drifted: usize) -> Self {
        match drifted {
            0 => Self::InSync,
            n if n == desired => Self::Gone,
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
    let drifted = drift(client, desired).await?;
    Ok(Observed::of(desired.len(), drifted.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_only_when_nothing_is_left() {
        assert_eq!(Observed::of(3, 0), Observed::InSync);
        assert_eq!(Observed::of(3, 2), Observed::Drifted);
        assert_eq!(Observed::of(3, 3), Observed::Gone);
        // An owner that renders nothing has nothing to lose.
        assert_eq!(Observed::of(0, 0), Observed::InSync);
    }
}
