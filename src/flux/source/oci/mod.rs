//! Flux distributions from OCI registries: `oci://ghcr.io/fluxcd/flux-manifests:v<version>`
//! (what the Flux release pushes) or a mirror of it in a private registry.
//!
//! A pull resolves the reference to a manifest digest, reads the manifest's content layer and
//! unpacks the distribution file from it. Every part is content-addressed: the manifest is
//! checked against the pin (`distribution.sha256`, or `@sha256:` in the reference) and the
//! layer against the digest the manifest names, so a pinned pull trusts neither the registry
//! nor the cache, and is fetched by digest (so a tag moved by a re-push does not matter). Both
//! parts are cached by digest; an unpinned tag is remembered like a release URL (pin the
//! digest, or change the tag, to pick up new content).

mod artifact;
mod auth;
mod client;
mod reference;
#[cfg(test)]
mod tests;

pub use artifact::{FLUX_CONTENT_MEDIA_TYPE, ImageManifest, distribution_file};
pub use auth::{Challenge, Credentials, DockerConfigAuth};
pub use client::{MANIFEST_ACCEPT, PullError, Puller};
pub use reference::{Reference, is_repository_name};

use super::cache::BlobCache;
use crate::digest::sha256_hex;
use crate::flux::error::FluxError;
use crate::net;

/// The largest manifest accepted; Flux artifact manifests are well under a kilobyte.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The largest content layer accepted.
const MAX_LAYER_BYTES: usize = 256 << 20;

/// The distribution file of the artifact at `url` (an `oci://` reference), checked against
/// `pin` (a manifest digest in lowercase hex) when given.
pub async fn pull_distribution(
    url: &str,
    pin: Option<&str>,
    cache: &BlobCache,
) -> Result<Vec<u8>, FluxError> {
    let reference = Reference::parse(url).map_err(|message| FluxError::InvalidSource {
        url: url.to_string(),
        message,
    })?;
    let source = reference.to_string();
    let unreachable = |e: PullError| FluxError::Unreachable {
        url: source.clone(),
        message: e.to_string(),
    };
    let invalid = |message: String| FluxError::InvalidArtifact {
        url: source.clone(),
        message,
    };
    let pinned = match (pin, reference.digest.as_deref()) {
        (Some(pin), Some(in_url)) if pin != in_url => {
            return Err(FluxError::Sha256Mismatch {
                expected: pin.to_string(),
                actual: in_url.to_string(),
            });
        }
        (pin, in_url) => pin.or(in_url).map(str::to_string),
    };
    let mut puller = None;

    let manifest_bytes = match cache.cached(&source, pinned.as_deref()).await {
        Some(bytes) => bytes,
        None => {
            // A pin is fetched by digest, as container tools do: the pinned content whether
            // the tag has moved or not, and the same answer with a warm or a cold cache.
            let wanted = pinned
                .as_ref()
                .map_or_else(|| reference.manifest_reference(), |d| format!("sha256:{d}"));
            connect(&mut puller, &reference)
                .map_err(&unreachable)?
                .manifest(&wanted, MAX_MANIFEST_BYTES)
                .await
                .map_err(|e| {
                    unreachable(PullError::Unreachable(format!("manifest {wanted}: {e}")))
                })?
        }
    };
    let manifest_digest = sha256_hex(&manifest_bytes);
    if let Some(expected) = &pinned
        && *expected != manifest_digest
    {
        return Err(FluxError::Sha256Mismatch {
            expected: expected.clone(),
            actual: manifest_digest,
        });
    }

    let manifest = ImageManifest::parse(&manifest_bytes).map_err(invalid)?;
    let layer = manifest.content_layer().map_err(invalid)?;
    let layer_digest = layer.sha256().map_err(invalid)?;
    if layer.size > MAX_LAYER_BYTES as u64 {
        return Err(invalid(format!(
            "its content layer is {} bytes, more than the {} MiB accepted",
            layer.size,
            MAX_LAYER_BYTES >> 20
        )));
    }
    let layer_bytes = match cache.get(&layer_digest).await {
        Some(bytes) => bytes,
        None => {
            // The manifest says how big the layer is: nothing beyond that is read.
            let bytes = connect(&mut puller, &reference)
                .map_err(&unreachable)?
                .blob(&layer_digest, layer.size as usize)
                .await
                .map_err(&unreachable)?;
            if sha256_hex(&bytes) != layer_digest {
                return Err(invalid(
                    "the registry sent a content layer whose bytes do not match its digest".into(),
                ));
            }
            bytes
        }
    };
    let file = distribution_file(&layer_bytes).map_err(invalid)?;

    cache.keep(&source, &manifest_bytes).await;
    cache.put(&layer_bytes).await;
    tracing::debug!(
        reference = %source,
        digest = %manifest_digest,
        pulled = puller.is_some(),
        "Flux artifact loaded"
    );
    Ok(file)
}

/// The puller, created on first use so a load served from the cache builds no HTTP client
/// and reads no credentials.
fn connect<'a>(
    slot: &'a mut Option<Puller>,
    reference: &Reference,
) -> Result<&'a mut Puller, PullError> {
    if slot.is_none() {
        // System roots even for a loopback registry: its token realm or blob redirects may
        // be HTTPS elsewhere.
        let http = net::http_client(true, net::DOWNLOAD_TIMEOUT, None)
            .map_err(|e| PullError::Unreachable(e.to_string()))?;
        *slot = Some(Puller::new(reference, http));
    }
    slot.as_mut()
        .ok_or_else(|| PullError::Unreachable("no registry client".into()))
}
