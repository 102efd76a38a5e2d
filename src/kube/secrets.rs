//! Reading and writing single keys of Secrets, for tokens and keys the provider generates.
//!
//! Values travel as [`Secret`] and are scrubbed from error messages. Each key is written by
//! its own field manager: server-side apply removes fields a manager applied before and no
//! longer sends, so with one shared manager, writing key B would delete key A.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::client::{FIELD_MANAGER, KubeClient, ObjRef};
use super::error::KubeError;
use crate::secret::Secret;

/// Labels and annotations written with a Secret's key.
#[derive(Clone, Debug, Default)]
pub struct SecretMeta {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Field manager names are limited to 128 characters by the API server.
const MAX_MANAGER_LEN: usize = 128;

impl KubeClient {
    /// The value of `key` in Secret `namespace/name`; `None` when the Secret or the key is
    /// missing.
    pub async fn read_secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<Secret>, KubeError> {
        let r = ObjRef::new("v1", "Secret", Some(namespace), name);
        key_of(self.get(&r).await?, key)
    }

    /// Like [`KubeClient::read_secret_key`], from a read shared with other readers of the
    /// same Secret (see [`KubeClient::get_recent`]).
    pub async fn read_recent_secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<Option<Secret>, KubeError> {
        let r = ObjRef::new("v1", "Secret", Some(namespace), name);
        key_of(self.get_recent(&r).await?, key)
    }

    /// Sets `data.<key>` of Secret `namespace/name` (creating it if needed) by server-side
    /// apply, leaving other keys and their managers untouched. `meta`'s labels and
    /// annotations are applied in the same request, so they never describe another value.
    pub async fn write_secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &Secret,
        meta: &SecretMeta,
    ) -> Result<(), KubeError> {
        let data = BTreeMap::from([(key.to_string(), value.clone())]);
        self.write_secret_keys(namespace, name, &format!("key-{key}"), &data, meta)
            .await
    }

    /// Sets several keys of Secret `namespace/name` in one request, as the field manager
    /// named for `purpose`, so they change together (a private key and its public half never
    /// describe two keys). Keys written before for that purpose and missing from `data` are
    /// removed, unless another manager also owns them: an empty `data` and `meta` remove them
    /// all.
    pub async fn write_secret_keys(
        &self,
        namespace: &str,
        name: &str,
        purpose: &str,
        data: &BTreeMap<String, Secret>,
        meta: &SecretMeta,
    ) -> Result<(), KubeError> {
        let engine = base64::engine::general_purpose::STANDARD;
        let encoded: BTreeMap<&str, String> = data
            .iter()
            .map(|(k, v)| (k.as_str(), engine.encode(v.expose())))
            .collect();
        let object = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": meta.labels,
                "annotations": meta.annotations,
            },
            "data": encoded,
        });
        // We own the keys we write: take them over from whoever set them before.
        let result = self.apply_as(&object, &manager(purpose), true).await;
        result.map(drop).map_err(|e| {
            data.values()
                .zip(encoded.values())
                .fold(e, |e, (value, encoded)| redact_value(e, value, encoded))
        })
    }

    /// Gives up the keys written for `purpose`: the Secret is deleted when `ours` are all it
    /// holds, else just those keys leave it (with the labels and annotations written with
    /// them), and what others wrote stays.
    pub async fn release_secret_keys(
        &self,
        namespace: &str,
        name: &str,
        purpose: &str,
        ours: &[String],
    ) -> Result<(), KubeError> {
        let r = ObjRef::new("v1", "Secret", Some(namespace), name);
        let Some(secret) = self.get(&r).await? else {
            return Ok(());
        };
        let only_ours = secret["data"]
            .as_object()
            .is_none_or(|data| data.keys().all(|k| ours.contains(k)));
        if only_ours {
            return self.delete(&r).await;
        }
        let none = BTreeMap::new();
        self.write_secret_keys(namespace, name, purpose, &none, &SecretMeta::default())
            .await
    }
}

/// `key` of a Secret read, if there is one.
fn key_of(found: Option<Value>, key: &str) -> Result<Option<Secret>, KubeError> {
    found.map_or(Ok(None), |object| secret_key_value(&object, key))
}

/// The value of `key` in a Secret already read; `None` when the key is missing.
pub fn secret_key_value(secret: &Value, key: &str) -> Result<Option<Secret>, KubeError> {
    let Some(encoded) = secret.pointer(&format!("/data/{}", escape(key))) else {
        return Ok(None);
    };
    let meta = &secret["metadata"];
    let r = ObjRef::new(
        "v1",
        "Secret",
        meta["namespace"].as_str(),
        meta["name"].as_str().unwrap_or_default(),
    );
    decode(encoded, &r, key).map(Some)
}

/// `gitlabflux-<purpose>`, or a digest of the purpose when that would be too long.
fn manager(purpose: &str) -> String {
    let manager = format!("{FIELD_MANAGER}-{purpose}");
    if manager.len() <= MAX_MANAGER_LEN {
        return manager;
    }
    let digest = Sha256::digest(purpose.as_bytes());
    format!("{FIELD_MANAGER}-{}", crate::digest::hex(&digest[..16]))
}

/// Scrubs a value from an error, whole, encoded, and line by line: a message may quote one
/// line of a multi-line private key.
fn redact_value(e: KubeError, value: &Secret, encoded: &str) -> KubeError {
    let lines = value.expose().lines().filter(|l| l.len() >= 16);
    lines.fold(e.redact(value.expose()).redact(encoded), KubeError::redact)
}

/// JSON-pointer escaping. Valid Secret keys contain neither `~` nor `/`, but the key is
/// caller input and a wrong pointer would silently read another field.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn decode(encoded: &Value, r: &ObjRef, key: &str) -> Result<Secret, KubeError> {
    let invalid = |message: String| KubeError::Invalid {
        object: r.to_string(),
        message,
    };
    let text = encoded
        .as_str()
        .ok_or_else(|| invalid(format!("data.{key} is not a string")))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid(format!("data.{key} is not valid base64")))?;
    String::from_utf8(bytes)
        .map(Secret::new)
        .map_err(|_| invalid(format!("data.{key} is not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_are_per_key_and_bounded() {
        assert_eq!(manager("key-token"), "gitlabflux-key-token");
        let long = "k".repeat(200);
        assert!(manager(&long).len() <= MAX_MANAGER_LEN);
        assert_ne!(manager(&long), manager(&"j".repeat(200)));
    }

    #[test]
    fn decode_errors_never_show_the_value() {
        let r = ObjRef::new("v1", "Secret", Some("ns"), "s");
        let err = decode(&json!("%%%not-base64"), &r, "token").expect_err("bad");
        assert!(!err.detail().contains("not-base64"));
    }
}
