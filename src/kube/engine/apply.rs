//! [`apply_all`]: CRDs and Namespaces first, then (once the CRDs are Established, so their
//! kinds are served) everything else concurrently; optionally waits for readiness.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::wait::{needs_wait, wait_established, wait_ready};
use super::{ApplyOptions, EngineError, bounded, fingerprint, inventory_id, is_crd, is_namespace};
use crate::kube::{APPLIED_LABEL, KubeClient, KubeError, ObjRef};
use crate::net::{self, Backoff, PollError, Polled};

/// 100 ms doubling up to 1 s: a kind usually appears within a second.
const UNKNOWN_KIND_RETRY: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_secs(1));

/// `(group, kind)`.
type GroupKind = (String, String);

/// One manifest, addressed.
struct Item<'a> {
    object: &'a Value,
    r: ObjRef,
}

/// Applies `objects` with server-side apply and returns the sorted inventory (ids of the
/// objects as stored, so namespaces the server filled in or dropped are canonical). With
/// `wait`, then waits for Deployments to roll out and Flux objects to be Ready.
pub async fn apply_all(
    client: &KubeClient,
    objects: &[Value],
    options: &ApplyOptions,
) -> Result<Vec<String>, EngineError> {
    let items = addressed(objects)?;
    let (first, rest): (Vec<&Item<'_>>, Vec<&Item<'_>>) = items
        .iter()
        .partition(|i| is_crd(&i.r) || is_namespace(&i.r));
    let deadline = Instant::now() + options.timeout;
    let mut stored = apply_batch(client, &first, options, &BTreeSet::new(), deadline).await?;
    record_generations(client, &stored, options.concurrency).await?;
    let crds: Vec<&Value> = stored.iter().filter(|o| is_crd_object(o)).collect();
    let fresh: BTreeSet<GroupKind> = crds.iter().filter_map(|crd| defined_kind(crd)).collect();
    wait_established(client, &crds, options.timeout).await?;
    stored.extend(apply_batch(client, &rest, options, &fresh, deadline).await?);
    let mut inventory: Vec<String> = stored
        .iter()
        .zip(first.iter().chain(rest.iter()))
        .map(|(live, item)| inventory_id(live).unwrap_or_else(|| id_of(&item.r)))
        .collect();
    inventory.sort();
    inventory.dedup();
    if options.wait {
        let targets: Vec<ObjRef> = stored
            .iter()
            .filter(|o| needs_wait(o))
            .filter_map(|o| ObjRef::of(o).ok())
            .collect();
        wait_ready(client, &targets, options.timeout, options.concurrency).await?;
    }
    Ok(inventory)
}

/// The object with [`APPLIED_LABEL`] added, so refreshes find it in one list per kind (a
/// manifest that sets that label itself keeps its own value), and fingerprinted when it is
/// of a kind refreshes judge by metadata.
fn stamped(manifest: &Value, r: &ObjRef) -> Value {
    let mut object = manifest.clone();
    let (key, value) = APPLIED_LABEL;
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.entry(key).or_insert_with(|| Value::from(value));
        }
    }
    if fingerprint::fingerprinted(r) {
        fingerprint::stamp(manifest, &mut object);
    }
    object
}

/// Completes the fingerprints of the fingerprinted objects just applied.
async fn record_generations(
    client: &KubeClient,
    stored: &[Value],
    concurrency: usize,
) -> Result<(), EngineError> {
    let fingerprinted = stored
        .iter()
        .filter(|o| ObjRef::of(o).is_ok_and(|r| fingerprint::fingerprinted(&r)));
    bounded(fingerprinted, concurrency, |object| async move {
        fingerprint::record_generation(client, object)
            .await
            .map_err(EngineError::kube(inventory_id(object).unwrap_or_default()))
    })
    .await?;
    Ok(())
}

fn id_of(r: &ObjRef) -> String {
    let namespace = r.namespace.as_deref().unwrap_or("_");
    format!("{}/{}/{namespace}/{}", r.api_version, r.kind, r.name)
}

/// `(group, kind)` a CRD defines.
fn defined_kind(crd: &Value) -> Option<GroupKind> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let kind = crd.pointer("/spec/names/kind")?.as_str()?;
    Some((group.to_string(), kind.to_string()))
}

fn group_kind(r: &ObjRef) -> GroupKind {
    let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (group.to_string(), r.kind.clone())
}

fn addressed(objects: &[Value]) -> Result<Vec<Item<'_>>, EngineError> {
    objects
        .iter()
        .enumerate()
        .map(|(index, object)| {
            ObjRef::of(object)
                .map(|r| Item { object, r })
                .map_err(|e| EngineError::Manifest {
                    index,
                    message: match e {
                        KubeError::Invalid { message, .. } => message,
                        other => other.to_string(),
                    },
                })
        })
        .collect()
}

/// Applies a batch concurrently; results come back in the batch's order so they can be
/// paired with the manifests.
async fn apply_batch(
    client: &KubeClient,
    batch: &[&Item<'_>],
    options: &ApplyOptions,
    fresh: &BTreeSet<GroupKind>,
    deadline: Instant,
) -> Result<Vec<Value>, EngineError> {
    let mut results = bounded(
        batch.iter().enumerate(),
        options.concurrency,
        |(i, item)| async move {
            let stored = apply_one(client, item, options.force, fresh, deadline).await?;
            Ok((i, stored))
        },
    )
    .await?;
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, v)| v).collect())
}

/// One apply. A kind defined by a CRD of this apply may be missing from the API server's
/// discovery for a moment after the CRD is Established (real clusters publish it
/// asynchronously): such an apply is retried until the deadline rather than failed.
async fn apply_one(
    client: &KubeClient,
    item: &Item<'_>,
    force: bool,
    fresh: &BTreeSet<GroupKind>,
    deadline: Instant,
) -> Result<Value, EngineError> {
    let fresh_kind = fresh.contains(&group_kind(&item.r));
    let stamped = stamped(item.object, &item.r);
    let stamped = &stamped;
    let look = |_| async move {
        match client.apply(stamped, force).await {
            Err(e @ KubeError::UnknownKind { .. }) if fresh_kind => Ok(Polled::Waiting(Some(e))),
            other => other.map(Polled::Ready),
        }
    };
    net::poll(
        client.stop_token(),
        deadline,
        UNKNOWN_KIND_RETRY,
        None,
        look,
    )
    .await
    .map_err(|e| {
        let source = match e {
            PollError::Failed(e) => e,
            // The last answer: the kind is still not served.
            PollError::TimedOut(last) => last.unwrap_or_else(|| KubeError::Timeout {
                what: format!("kind {} to be served", item.r.kind),
            }),
            PollError::Cancelled => KubeError::Cancelled,
        };
        EngineError::kube(item.r.to_string())(source)
    })
}

fn is_crd_object(object: &Value) -> bool {
    ObjRef::of(object).is_ok_and(|r| is_crd(&r))
}
