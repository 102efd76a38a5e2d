//! [`prune`]: deletes the objects that left the desired set, in reverse apply order, so
//! custom resources go before the controllers that reconcile them and namespaces go last.

use std::collections::BTreeSet;

use super::{DEFAULT_CONCURRENCY, EngineError, bounded, parse_all, rank};
use crate::kube::{KubeClient, ObjRef};

/// Deletes what is in `previous` but not in `current`; returns the ids deleted, sorted.
pub async fn prune(
    client: &KubeClient,
    previous: &[String],
    current: &[String],
) -> Result<Vec<String>, EngineError> {
    let keep: BTreeSet<&String> = current.iter().collect();
    let gone: Vec<String> = previous
        .iter()
        .filter(|id| !keep.contains(id))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    delete_in_reverse_order(client, parse_all(&gone)?).await?;
    Ok(gone)
}

/// Deletes rank by rank, highest first; concurrently within a rank.
pub(super) async fn delete_in_reverse_order(
    client: &KubeClient,
    mut doomed: Vec<(String, ObjRef)>,
) -> Result<(), EngineError> {
    doomed.sort_by_key(|(_, r)| std::cmp::Reverse(rank(r)));
    for group in doomed.chunk_by(|(_, a), (_, b)| rank(a) == rank(b)) {
        bounded(group.iter(), DEFAULT_CONCURRENCY, |(id, r)| async move {
            client
                .delete(r)
                .await
                .map_err(EngineError::kube(id.clone()))
        })
        .await?;
    }
    Ok(())
}
