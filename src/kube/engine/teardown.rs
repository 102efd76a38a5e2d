//! [`teardown`]: removes an inventory without hanging on finalizers whose controllers are
//! already gone (or about to be). Custom resources lose their finalizers *before* they are
//! deleted, as `flux uninstall` does: a Kustomization deleted with its finalizer would
//! otherwise have kustomize-controller garbage-collect every workload it applied, or hang
//! forever once the controller is deleted.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::prune::delete_in_reverse_order;
use super::{DEFAULT_CONCURRENCY, EngineError, bounded, is_crd, is_namespace, parse_all};
use crate::kube::{KubeClient, KubeError, ObjRef};
use crate::net::{self, Backoff, PollError, Polled};

/// Every 200 ms (at most): each round makes requests for everything left.
const POLL: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(200));
const FINAL_CHECK_GRACE: Duration = Duration::from_secs(10);

/// `(apiVersion, kind)` of a kind an inventory CRD defines.
type CustomKind = (String, String);

impl KubeClient {
    /// Removes every finalizer of an object with a merge patch, so a pending delete completes.
    /// A missing object or a kind no longer served is success.
    pub async fn clear_finalizers(&self, r: &ObjRef) -> Result<(), KubeError> {
        let patch = json!({ "metadata": { "finalizers": null } });
        match self.merge_patch(r, patch, "patch").await {
            Ok(()) | Err(KubeError::UnknownKind { .. }) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Tears `inventory` down within `timeout`; [`EngineError::Teardown`] names what is left.
pub async fn teardown(
    client: &KubeClient,
    inventory: &[String],
    keep_namespaces: bool,
    timeout: Duration,
) -> Result<(), EngineError> {
    let targets: Vec<(String, ObjRef)> = parse_all(inventory)?
        .into_iter()
        .filter(|(_, r)| !(keep_namespaces && is_namespace(r)))
        .collect();
    let deadline = Instant::now() + timeout;
    // The final check itself makes requests, which retries may stretch: the grace bounds it
    // so a destroy never hangs on an API server that stopped answering.
    match tokio::time::timeout_at(
        deadline + FINAL_CHECK_GRACE,
        remove(client, &targets, deadline),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(EngineError::Teardown {
            remaining: targets
                .iter()
                .map(|(_, r)| format!("{r}: unknown, the API server did not answer in time"))
                .collect(),
        }),
    }
}

async fn remove(
    client: &KubeClient,
    targets: &[(String, ObjRef)],
    deadline: Instant,
) -> Result<(), EngineError> {
    let kinds = match tokio::time::timeout_at(deadline, custom_kinds(client, targets)).await {
        Ok(kinds) => kinds?,
        Err(_) => BTreeSet::new(),
    };
    // A deletion phase cut short by the deadline is reported by the final check below.
    if let Ok(result) = tokio::time::timeout_at(deadline, delete_all(client, targets, &kinds)).await
    {
        result?;
    }
    wait_gone(client, targets, &kinds, deadline).await
}

async fn delete_all(
    client: &KubeClient,
    targets: &[(String, ObjRef)],
    kinds: &BTreeSet<CustomKind>,
) -> Result<(), EngineError> {
    for kind in kinds {
        remove_custom_resources(client, kind).await?;
    }
    let (crds, rest): (Vec<_>, Vec<_>) = targets.iter().cloned().partition(|(_, r)| is_crd(r));
    let (namespaces, others): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|(_, r)| is_namespace(r));
    delete_in_reverse_order(client, others).await?;
    delete_in_reverse_order(client, crds).await?;
    delete_in_reverse_order(client, namespaces).await
}

/// The kinds the inventory's CRDs define (storage version), from the live CRDs.
async fn custom_kinds(
    client: &KubeClient,
    targets: &[(String, ObjRef)],
) -> Result<BTreeSet<CustomKind>, EngineError> {
    let crds = targets.iter().filter(|(_, r)| is_crd(r));
    let found = bounded(crds, DEFAULT_CONCURRENCY, |(id, r)| async move {
        let live = client.get(r).await.map_err(EngineError::kube(id.clone()))?;
        Ok(live.as_ref().and_then(defined_kind))
    })
    .await?;
    Ok(found.into_iter().flatten().collect())
}

fn defined_kind(crd: &Value) -> Option<CustomKind> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let kind = crd.pointer("/spec/names/kind")?.as_str()?;
    let versions = crd.pointer("/spec/versions")?.as_array()?;
    let version = versions
        .iter()
        .find(|v| v["storage"] == true)
        .or_else(|| versions.first())?["name"]
        .as_str()?;
    Some((format!("{group}/{version}"), kind.to_string()))
}

/// Every object of a custom kind, in all namespaces: finalizers cleared, then deleted.
async fn remove_custom_resources(
    client: &KubeClient,
    (api_version, kind): &CustomKind,
) -> Result<(), EngineError> {
    let objects = match client.list(api_version, kind, None, None).await {
        Ok(objects) => objects,
        Err(KubeError::UnknownKind { .. }) => return Ok(()),
        Err(e) => return Err(EngineError::kube(format!("{kind} objects"))(e)),
    };
    bounded(objects.iter(), DEFAULT_CONCURRENCY, |object| async move {
        let r = ObjRef::of(object).map_err(EngineError::kube(format!("a {kind}")))?;
        let fail = EngineError::kube(r.to_string());
        if has_finalizers(object) {
            client.clear_finalizers(&r).await.map_err(fail)?;
        }
        client
            .delete(&r)
            .await
            .map_err(EngineError::kube(r.to_string()))
    })
    .await?;
    Ok(())
}

/// Whether `r` is of a kind an inventory CRD defines, in any of its versions.
fn is_custom(r: &ObjRef, kinds: &BTreeSet<CustomKind>) -> bool {
    let group = |api_version: &str| api_version.rsplit_once('/').map(|(g, _)| g.to_string());
    kinds
        .iter()
        .any(|(api_version, kind)| *kind == r.kind && group(api_version) == group(&r.api_version))
}

fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Polls until every target is gone or the deadline passes. Each round nudges what is stuck:
/// a custom resource that got a finalizer back loses it again, and an object never deleted
/// (the deletion phase ran out of time) is deleted.
async fn wait_gone(
    client: &KubeClient,
    targets: &[(String, ObjRef)],
    kinds: &BTreeSet<CustomKind>,
    deadline: Instant,
) -> Result<(), EngineError> {
    let start: Vec<(String, ObjRef, String)> = targets
        .iter()
        .map(|(id, r)| (id.clone(), r.clone(), String::new()))
        .collect();
    let look = |pending: Vec<(String, ObjRef, String)>| async move {
        let left = bounded(
            pending.iter(),
            DEFAULT_CONCURRENCY,
            |(id, r, _)| async move {
                let why = nudge(client, r, kinds)
                    .await
                    .map_err(EngineError::kube(id.clone()))?;
                Ok(why.map(|why| (id.clone(), r.clone(), why)))
            },
        )
        .await?;
        let left: Vec<(String, ObjRef, String)> = left.into_iter().flatten().collect();
        Ok(Polled::unless_left(left))
    };
    net::poll(client.stop_token(), deadline, POLL, start, look)
        .await
        .map_err(|e| match e {
            PollError::Failed(e) => e,
            PollError::TimedOut(left) => {
                let mut remaining: Vec<String> = left
                    .iter()
                    .map(|(_, r, why)| format!("{r}: {why}"))
                    .collect();
                remaining.sort();
                EngineError::Teardown { remaining }
            }
            PollError::Cancelled => EngineError::kube("teardown")(KubeError::Cancelled),
        })
}

/// `None` when `r` is gone; otherwise why it is still there, after pushing it along.
async fn nudge(
    client: &KubeClient,
    r: &ObjRef,
    kinds: &BTreeSet<CustomKind>,
) -> Result<Option<String>, KubeError> {
    let live = match client.get(r).await {
        Ok(Some(live)) => live,
        Ok(None) | Err(KubeError::UnknownKind { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if live
        .pointer("/metadata/deletionTimestamp")
        .is_none_or(Value::is_null)
    {
        client.delete(r).await?;
        return Ok(Some("still present; deleted again".into()));
    }
    let finalizers = live
        .pointer("/metadata/finalizers")
        .cloned()
        .unwrap_or(Value::Null);
    if has_finalizers(&live) && is_custom(r, kinds) {
        client.clear_finalizers(r).await?;
    }
    Ok(Some(format!("terminating, finalizers {finalizers}")))
}
