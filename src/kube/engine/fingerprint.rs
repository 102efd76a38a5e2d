//! Fingerprints: how a refresh judges objects too large to read whole by their metadata
//! alone. CustomResourceDefinitions repeat their whole schema (nine tenths of a Flux
//! install's bytes); reading them in full on every plan of a fleet made the refresh cost
//! megabytes per cluster.
//!
//! At apply, the engine stamps such an object with the SHA-256 of its manifest
//! ([`DIGEST_ANNOTATION`]) and, once the server has answered, records the object's
//! `metadata.generation` beside it ([`GENERATION_ANNOTATION`]). The API server bumps a CRD's
//! generation on every change to anything but its metadata and status, so a refresh that
//! finds the digest of the desired manifest, the generation it recorded, and the manifest's
//! own labels and annotations knows the object is as applied. Another digest means another
//! manifest is wanted: drift. Another generation means someone changed the object since;
//! whether that is drift (a field the manifest sets) or not (a field only they set, such as
//! a CA bundle injected into a conversion webhook) takes reading it whole and comparing
//! field by field, as every other object is, and so does an object without the two
//! annotations (applied before they existed, or stripped since).

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::is_crd;
use crate::kube::{KubeClient, KubeError, ObjRef};

/// The SHA-256 of the manifest the engine last applied to the object.
pub const DIGEST_ANNOTATION: &str = "gitlabflux.io/manifest-sha256";
/// The object's `metadata.generation` right after that apply.
pub const GENERATION_ANNOTATION: &str = "gitlabflux.io/applied-generation";

/// Whether objects like `r` are fingerprinted, and so listed by metadata on refresh.
pub fn fingerprinted(r: &ObjRef) -> bool {
    is_crd(r)
}

/// The hex SHA-256 of a manifest as its owner rendered it (serde_json writes object keys
/// sorted, so equal manifests hash alike).
pub fn digest(manifest: &Value) -> String {
    crate::digest::hex(&Sha256::digest(manifest.to_string().as_bytes()))
}

/// Adds the digest of `manifest` to `object` (the manifest as it will be applied).
pub fn stamp(manifest: &Value, object: &mut Value) {
    let digest = digest(manifest);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(DIGEST_ANNOTATION.into(), Value::from(digest));
        }
    }
}

/// Records the generation of a just-applied object, unless it is recorded already (an apply
/// that changed nothing). The patch is our field manager's "Update", so later applies of the
/// manifest leave it in place; it touches metadata only, so the generation stays.
pub async fn record_generation(client: &KubeClient, stored: &Value) -> Result<(), KubeError> {
    let Some(generation) = stored
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
    else {
        return Ok(());
    };
    let recorded = annotation(stored, GENERATION_ANNOTATION);
    if recorded == Some(generation.to_string().as_str()) {
        return Ok(());
    }
    let r = ObjRef::of(stored)?;
    let annotations = BTreeMap::from([(GENERATION_ANNOTATION.to_string(), generation.to_string())]);
    client.annotate(&r, &annotations).await
}

/// What an object's metadata says about it against the desired manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InSync,
    Drifted,
    /// No fingerprint, or changed since it was taken: compare the whole object.
    Unknown,
}

/// Judges `live` (at least its metadata) against `want` (the manifest as rendered), given
/// whether `want`'s own metadata is in place (the caller's field-by-field comparison).
pub fn judge(want: &Value, live: &Value, metadata_matches: bool) -> Verdict {
    let (Some(digest_seen), Some(generation_seen)) = (
        annotation(live, DIGEST_ANNOTATION),
        annotation(live, GENERATION_ANNOTATION),
    ) else {
        return Verdict::Unknown;
    };
    if digest_seen != digest(want) || !metadata_matches {
        return Verdict::Drifted;
    }
    let generation = live.pointer("/metadata/generation").and_then(Value::as_i64);
    if generation.is_some_and(|g| g.to_string() == generation_seen) {
        Verdict::InSync
    } else {
        Verdict::Unknown
    }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(generation: i64, annotations: Value) -> Value {
        json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": { "name": "a.b", "generation": generation, "annotations": annotations } })
    }

    #[test]
    fn in_sync_with_the_same_digest_and_generation_drifted_with_another_digest() {
        let want = json!({ "kind": "CustomResourceDefinition", "spec": { "group": "b" } });
        let stamped = json!({ DIGEST_ANNOTATION: digest(&want), GENERATION_ANNOTATION: "3" });
        assert_eq!(
            judge(&want, &crd(3, stamped.clone()), true),
            Verdict::InSync
        );
        // Changed since: the server bumped the generation; only the whole object tells how.
        assert_eq!(
            judge(&want, &crd(4, stamped.clone()), true),
            Verdict::Unknown
        );
        // Another manifest is wanted now.
        let other = json!({ "kind": "CustomResourceDefinition", "spec": { "group": "c" } });
        assert_eq!(
            judge(&other, &crd(3, stamped.clone()), true),
            Verdict::Drifted
        );
        // The manifest's own labels or annotations were changed.
        assert_eq!(judge(&want, &crd(3, stamped), false), Verdict::Drifted);
        // No fingerprint (applied before fingerprints, or stripped): read it whole.
        let half = json!({ DIGEST_ANNOTATION: digest(&want) });
        assert_eq!(judge(&want, &crd(3, half), true), Verdict::Unknown);
        assert_eq!(judge(&want, &crd(3, json!({})), true), Verdict::Unknown);
    }

    #[test]
    fn stamping_adds_the_digest_of_the_manifest_as_rendered() {
        let want = json!({ "kind": "CustomResourceDefinition", "metadata": { "name": "a.b" } });
        let mut applied = want.clone();
        applied["metadata"]["labels"] = json!({ "x": "y" });
        stamp(&want, &mut applied);
        assert_eq!(
            applied["metadata"]["annotations"][DIGEST_ANNOTATION],
            json!(digest(&want))
        );
    }
}
