//! The registry's content: blobs by digest, and per repository the blobs linked into it, its
//! manifests and its tags. Pure data with the distribution spec's rules; no HTTP.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;

/// A refusal with the distribution spec's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl RegistryError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Manifest media types a push may use.
pub const MANIFEST_MEDIA_TYPES: [&str; 3] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Store {
    /// Hex digest to content.
    blobs: BTreeMap<String, Stored>,
    repositories: BTreeMap<String, Repository>,
    /// Whether the token endpoint grants pulls without credentials (like a public project).
    pub anonymous_pull: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Repository {
    blobs: BTreeSet<String>,
    manifests: BTreeMap<String, Manifest>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub media_type: String,
    /// The exact bytes pushed: the digest is over them.
    content: Stored,
}

impl Manifest {
    pub fn bytes(&self) -> &[u8] {
        &self.content.0
    }
}

/// Bytes kept raw in memory and written as base64, so reads decode nothing and the
/// persisted file stays JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stored(Vec<u8>);

impl Serialize for Stored {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Stored)
            .map_err(serde::de::Error::custom)
    }
}

/// `sha256:<hex>` to `<hex>`, for digests in URLs and manifests.
pub fn parse_digest(digest: &str) -> Result<String, RegistryError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| crate::flux::source::cache::is_hex_digest(hex))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            RegistryError::new(400, "DIGEST_INVALID", format!("invalid digest {digest:?}"))
        })
}

impl Store {
    pub fn new() -> Self {
        Self {
            anonymous_pull: true,
            ..Self::default()
        }
    }

    /// A blob linked into `name`.
    pub fn blob(&self, name: &str, digest: &str) -> Result<&[u8], RegistryError> {
        let linked = self
            .repositories
            .get(name)
            .is_some_and(|r| r.blobs.contains(digest));
        match self.blobs.get(digest).filter(|_| linked) {
            Some(content) => Ok(&content.0),
            None => Err(RegistryError::new(
                404,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
            )),
        }
    }

    /// Stores `bytes` as the blob `expected` and links it into `name`.
    pub fn put_blob(
        &mut self,
        name: &str,
        expected: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let actual = sha256_hex(bytes);
        if actual != expected {
            return Err(RegistryError::new(
                400,
                "DIGEST_INVALID",
                format!(
                    "provided digest sha256:{expected} did not match uploaded content sha256:{actual}"
                ),
            ));
        }
        self.blobs
            .entry(actual.clone())
            .or_insert_with(|| Stored(bytes.to_vec()));
        self.repositories
            .entry(name.to_string())
            .or_default()
            .blobs
            .insert(actual);
        Ok(())
    }

    /// A manifest by tag or `sha256:<hex>` digest, with its digest.
    pub fn manifest(
        &self,
        name: &str,
        reference: &str,
    ) -> Result<(String, Manifest), RegistryError> {
        let unknown = || RegistryError::new(404, "MANIFEST_UNKNOWN", "manifest unknown");
        let repository = self.repositories.get(name).ok_or_else(|| {
            RegistryError::new(404, "NAME_UNKNOWN", "repository name not known to registry")
        })?;
        let digest = if reference.starts_with("sha256:") {
            parse_digest(reference)?
        } else {
            repository
                .tags
                .get(reference)
                .cloned()
                .ok_or_else(unknown)?
        };
        let manifest = repository.manifests.get(&digest).ok_or_else(unknown)?;
        Ok((digest, manifest.clone()))
    }

    /// Stores a manifest under its digest (and `reference` when it is a tag); every blob it
    /// names must already be in the repository. Returns the digest.
    pub fn put_manifest(
        &mut self,
        name: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        if !MANIFEST_MEDIA_TYPES.contains(&media_type) {
            return Err(RegistryError::new(
                400,
                "MANIFEST_INVALID",
                format!("unsupported manifest media type {media_type:?}"),
            ));
        }
        let document: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            RegistryError::new(400, "MANIFEST_INVALID", format!("manifest invalid: {e}"))
        })?;
        let digest = sha256_hex(bytes);
        if reference.starts_with("sha256:") && parse_digest(reference)? != digest {
            return Err(RegistryError::new(
                400,
                "DIGEST_INVALID",
                "the manifest's digest does not match the reference",
            ));
        }
        let linked = self
            .repositories
            .get(name)
            .map(|r| r.blobs.clone())
            .unwrap_or_default();
        for descriptor in referenced_blobs(&document) {
            let hex = parse_digest(&descriptor)?;
            if !linked.contains(&hex) {
                return Err(RegistryError::new(
                    400,
                    "MANIFEST_BLOB_UNKNOWN",
                    format!("blob unknown to registry: {descriptor}"),
                ));
            }
        }
        let repository = self.repositories.entry(name.to_string()).or_default();
        repository.manifests.insert(
            digest.clone(),
            Manifest {
                media_type: media_type.to_string(),
                content: Stored(bytes.to_vec()),
            },
        );
        if !reference.starts_with("sha256:") {
            repository
                .tags
                .insert(reference.to_string(), digest.clone());
        }
        Ok(digest)
    }

    pub fn tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        self.repositories
            .get(name)
            .map(|r| r.tags.keys().cloned().collect())
            .ok_or_else(|| {
                RegistryError::new(404, "NAME_UNKNOWN", "repository name not known to registry")
            })
    }

    /// `{"<repository>": {"<tag>": "sha256:<hex>"}}`, for assertions.
    pub fn summary(&self) -> serde_json::Value {
        self.repositories
            .iter()
            .map(|(name, r)| {
                let tags: serde_json::Map<String, serde_json::Value> = r
                    .tags
                    .iter()
                    .map(|(tag, digest)| (tag.clone(), format!("sha256:{digest}").into()))
                    .collect();
                (name.clone(), tags.into())
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// The config and layer digests of an image manifest (the manifests an index names are not
/// checked).
fn referenced_blobs(document: &serde_json::Value) -> Vec<String> {
    let digest =
        |d: &serde_json::Value| d.get("digest").and_then(|v| v.as_str()).map(str::to_string);
    let mut out: Vec<String> = document
        .get("config")
        .and_then(digest)
        .into_iter()
        .collect();
    for key in ["layers", "blobs"] {
        if let Some(list) = document.get(key).and_then(|l| l.as_array()) {
            out.extend(list.iter().filter_map(digest));
        }
    }
    out
}
