//! [`drift`]: which desired objects are missing from the cluster or differ from it on the
//! fields the manifest sets. Fields the manifest leaves out (defaults, server-set metadata,
//! status, other managers' fields) are not drift: re-applying would not change them.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Value, json};

use super::fingerprint::{Verdict, fingerprinted, judge};
use super::ownership::shows_another_owner;
use super::{EngineError, bounded, inventory_id};
use crate::kube::{KubeClient, KubeError, ObjRef, Seen, Shape};

/// Metadata the server owns; a manifest should not set these, and if it does they still
/// differ on every cluster.
const SERVER_METADATA: [&str; 7] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// The inventory ids of drifted objects, sorted.
pub async fn drift(client: &KubeClient, desired: &[Value]) -> Result<Vec<String>, EngineError> {
    let mut ids: Vec<String> = differences(client, desired)
        .await?
        .into_iter()
        .map(|found| found.id)
        .collect();
    ids.sort();
    Ok(ids)
}

/// A desired object that the cluster lacks or holds otherwise.
pub(super) struct Difference {
    pub id: String,
    /// Absent, or present as another owner's object.
    pub missing: bool,
}

/// Each drifted object of `desired`, in no particular order.
pub(super) async fn differences(
    client: &KubeClient,
    desired: &[Value],
) -> Result<Vec<Difference>, EngineError> {
    let checked = bounded(
        desired.iter().enumerate(),
        super::DEFAULT_CONCURRENCY,
        |(index, want)| async move {
            let manifest = |message: String| EngineError::Manifest { index, message };
            let r = ObjRef::of(want).map_err(|e| manifest(e.to_string()))?;
            let (live, drifted) = compare(client, &r, want)
                .await
                .map_err(EngineError::kube(r.to_string()))?;
            let id = live
                .as_ref()
                .and_then(inventory_id)
                .or_else(|| inventory_id(want))
                .ok_or_else(|| manifest("apiVersion, kind or metadata.name is missing".into()))?;
            // An object of the same name that something else made is not ours to update:
            // to the owner it is as missing as a deleted one.
            let missing = live.as_ref().is_none_or(shows_another_owner);
            Ok(drifted.then_some(Difference { id, missing }))
        },
    )
    .await?;
    Ok(checked.into_iter().flatten().collect())
}

/// Lists the kinds of `objects` as [`drift`] will read them, without reading any object.
/// An owner that renders what it compares reads ahead with what it applied last (its
/// inventory), then renders and compares with no network wait in between: a fleet's refresh
/// otherwise holds one render per bootstrap waiting on its lists.
pub async fn read_ahead(
    client: &KubeClient,
    objects: impl IntoIterator<Item = ObjRef>,
) -> Result<(), EngineError> {
    let kinds: HashSet<(String, String, Shape)> = objects
        .into_iter()
        .map(|r| {
            let shape = shape_of(&r);
            (r.api_version, r.kind, shape)
        })
        .collect();
    bounded(
        kinds,
        super::DEFAULT_CONCURRENCY,
        |(api_version, kind, shape)| async move {
            client
                .list_for_refresh(&api_version, &kind, shape)
                .await
                .map_err(EngineError::kube(format!("{kind} objects")))
        },
    )
    .await?;
    Ok(())
}

/// How a refresh lists objects like `r`.
fn shape_of(r: &ObjRef) -> Shape {
    if fingerprinted(r) {
        Shape::Metadata
    } else {
        Shape::Whole
    }
}

/// What the cluster holds of `want` (at least its metadata), and whether it drifted.
async fn compare(
    client: &KubeClient,
    r: &ObjRef,
    want: &Value,
) -> Result<(Option<Value>, bool), KubeError> {
    let shape = shape_of(r);
    let Some(seen) = client.seen_for_refresh(r, shape).await? else {
        return Ok((None, true));
    };
    if shape == Shape::Whole {
        let live = seen.into_object();
        let drifted = !matches(&comparable(want), &live);
        return Ok((Some(live), drifted));
    }
    let metadata_matches = matches(&comparable(&metadata_of(want)), &metadata_of(seen.object()));
    match (judge(want, seen.object(), metadata_matches), seen) {
        (Verdict::InSync, seen) => Ok((Some(seen.into_object()), false)),
        (Verdict::Drifted, seen) => Ok((Some(seen.into_object()), true)),
        (Verdict::Unknown, Seen::Whole(live)) => {
            let drifted = !matches(&comparable(want), &live);
            Ok((Some(live), drifted))
        }
        // From the kind's whole list (read once, for every such object of the cluster): a
        // cluster applied before fingerprints costs what it did before them.
        (Verdict::Unknown, Seen::Metadata(_)) => {
            let whole = client
                .seen_for_refresh(r, Shape::Whole)
                .await?
                .map(Seen::into_object);
            let drifted = whole
                .as_ref()
                .is_none_or(|whole| !matches(&comparable(want), whole));
            Ok((whole, drifted))
        }
    }
}

/// Just the metadata of `object`, as an object of its own.
fn metadata_of(object: &Value) -> Value {
    json!({ "metadata": object.get("metadata").cloned().unwrap_or(Value::Null) })
}

/// The manifest as the server would store it, minus what is not ours to compare.
fn comparable(want: &Value) -> Value {
    let mut want = want.clone();
    let Some(top) = want.as_object_mut() else {
        return want;
    };
    top.remove("status");
    if let Some(meta) = top.get_mut("metadata").and_then(Value::as_object_mut) {
        SERVER_METADATA.iter().for_each(|k| {
            meta.remove(*k);
        });
    }
    // The API server folds a Secret's `stringData` into `data`.
    if want["kind"] == "Secret"
        && let Some(Value::Object(plain)) =
            want.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        for (k, v) in plain {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            want["data"][k] = Value::from(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    want
}

/// Whether `live` has every field `want` sets, with the same value. Lists must match item by
/// item (the server keeps their order); numbers compare by value (`1` equals `1.0`); a null
/// in the manifest means "absent".
fn matches(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w
            .iter()
            .all(|(k, wv)| l.get(k).map_or(wv.is_null(), |lv| matches(wv, lv))),
        (Value::Array(w), Value::Array(l)) => {
            w.len() == l.len() && w.iter().zip(l).all(|(wv, lv)| matches(wv, lv))
        }
        (Value::Number(w), Value::Number(l)) => w == l || w.as_f64() == l.as_f64(),
        (Value::Null, _) => live.is_null(),
        // An empty object or list in the manifest is stored as absent by some servers.
        (Value::Object(w), Value::Null) => w.is_empty(),
        (Value::Array(w), Value::Null) => w.is_empty(),
        _ => want == live,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_comparison_ignores_defaults_and_server_fields() {
        let want = json!({ "kind": "Deployment", "metadata": { "name": "a", "resourceVersion": "1" },
            "spec": { "replicas": 1, "template": { "spec": { "containers": [{ "name": "c", "args": ["--x"] }] } } } });
        let live = json!({ "kind": "Deployment", "metadata": { "name": "a", "resourceVersion": "9", "uid": "u" },
            "spec": { "replicas": 1.0, "template": { "spec": { "containers": [
                { "name": "c", "args": ["--x"], "imagePullPolicy": "IfNotPresent" }] } } },
            "status": { "replicas": 1 } });
        assert!(matches(&comparable(&want), &live));
        let mut edited = live.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--y"]);
        assert!(!matches(&comparable(&want), &edited));
    }

    #[test]
    fn secret_string_data_compares_with_data() {
        let want = json!({ "kind": "Secret", "stringData": { "token": "abc" } });
        let live = json!({ "kind": "Secret", "data": { "token": "YWJj" } });
        assert!(matches(&comparable(&want), &live));
    }
}
