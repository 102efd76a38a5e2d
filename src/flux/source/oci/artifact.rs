//! What a Flux artifact is made of: an image manifest whose content layer is a gzipped tar of
//! the directory `flux push artifact` packed (`gotk-components.yaml` for the
//! `flux-manifests` release artifacts). Unpacking happens in memory only, so no path in the
//! archive can reach the file system, and is bounded against decompression bombs.

use std::io::Read;

use serde::Deserialize;

/// The content layer `flux push artifact` writes.
pub const FLUX_CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// The largest unpacked archive accepted (the v2.8.5 components file is under 1 MiB).
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;
/// The files a distribution may be, in order of preference.
const DISTRIBUTION_FILES: [&str; 2] = ["gotk-components.yaml", "install.yaml"];

/// The parts of an image manifest this reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// The lowercase hex SHA-256 this descriptor names.
    pub fn sha256(&self) -> Result<String, String> {
        self.digest
            .strip_prefix("sha256:")
            .filter(|hex| super::super::cache::is_hex_digest(hex))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| format!("layer digest {:?} is not a sha256 digest", self.digest))
    }
}

impl ImageManifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let manifest: Self = serde_json::from_slice(bytes)
            .map_err(|e| format!("the manifest is not an OCI image manifest: {e}"))?;
        if manifest.manifests.is_some() {
            return Err(
                "the reference names an image index (a multi-platform image), not a Flux \
                 artifact pushed with `flux push artifact`"
                    .into(),
            );
        }
        Ok(manifest)
    }

    /// The layer holding the manifests: Flux's content type, or the only gzipped tar.
    pub fn content_layer(&self) -> Result<&Descriptor, String> {
        if let Some(layer) = self
            .layers
            .iter()
            .find(|l| l.media_type == FLUX_CONTENT_MEDIA_TYPE)
        {
            return Ok(layer);
        }
        let tarballs: Vec<&Descriptor> = self
            .layers
            .iter()
            .filter(|l| l.media_type.ends_with("tar+gzip") || l.media_type.ends_with("tar.gzip"))
            .collect();
        match tarballs.as_slice() {
            [only] => Ok(only),
            _ => Err(format!(
                "the artifact has no {FLUX_CONTENT_MEDIA_TYPE} layer (its layers: {})",
                self.layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The distribution file in a gzipped tar: `gotk-components.yaml`, else `install.yaml`, in
/// whichever directory it sits.
pub fn distribution_file(layer: &[u8]) -> Result<Vec<u8>, String> {
    distribution_file_within(layer, MAX_UNPACKED_BYTES)
}

fn distribution_file_within(layer: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let unpacked = Bounded {
        inner: flate2::read::GzDecoder::new(layer),
        left: limit,
        limit,
    };
    let mut archive = tar::Archive::new(unpacked);
    let mut names = Vec::new();
    let mut found: Vec<(usize, String, Vec<u8>)> = Vec::new();
    let unreadable = |e: std::io::Error| format!("the layer is not a gzipped tar archive: {e}");
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .into_owned();
        let base = path.rsplit('/').next().unwrap_or_default();
        if let Some(rank) = DISTRIBUTION_FILES.iter().position(|f| *f == base) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(unreadable)?;
            found.push((rank, path.clone(), bytes));
        }
        names.push(path);
    }
    let best = found.iter().map(|(rank, ..)| *rank).min();
    let mut best: Vec<_> = found
        .into_iter()
        .filter(|(rank, ..)| Some(*rank) == best)
        .collect();
    match best.len() {
        1 => Ok(best.remove(0).2),
        0 => Err(format!(
            "the artifact holds no {} (it has: {})",
            DISTRIBUTION_FILES.join(" or "),
            if names.is_empty() {
                "no files".to_string()
            } else {
                names.join(", ")
            }
        )),
        _ => Err(format!(
            "the artifact holds several candidates ({}); push one distribution per artifact",
            best.iter()
                .map(|(_, path, _)| path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A reader that fails once more than `left` bytes came through.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let limit = self.limit;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(format!("it unpacks to more than {limit} bytes"))
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::registry::artifact::FluxArtifact;

    fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
        FluxArtifact::build(files, "test", "v1").layer
    }

    #[test]
    fn finds_the_components_file_anywhere_in_the_tree() {
        let layer = layer(&[
            ("flux-system/gotk-sync.yaml", b"sync"),
            ("flux-system/gotk-components.yaml", b"components"),
            ("install.yaml", b"install"),
        ]);
        assert_eq!(distribution_file(&layer).unwrap(), b"components");
        let layer = self::layer(&[("install.yaml", b"install"), ("README.md", b"x")]);
        assert_eq!(distribution_file(&layer).unwrap(), b"install");
    }

    #[test]
    fn explains_what_is_missing_or_ambiguous() {
        let err = distribution_file(&layer(&[("deploy/app.yaml", b"x")])).unwrap_err();
        assert!(
            err.contains("holds no gotk-components.yaml or install.yaml"),
            "{err}"
        );
        assert!(err.contains("deploy/app.yaml"), "{err}");
        let err = distribution_file(&layer(&[
            ("a/gotk-components.yaml", b"x"),
            ("b/gotk-components.yaml", b"y"),
        ]))
        .unwrap_err();
        assert!(err.contains("several candidates"), "{err}");
        let err = distribution_file(b"not gzip at all").unwrap_err();
        assert!(err.contains("not a gzipped tar"), "{err}");
    }

    #[test]
    fn refuses_decompression_bombs() {
        // 4 MiB of zeros compress to a few KiB; the same bound stops 256 MiB in production.
        let zeros = vec![0u8; 4 << 20];
        let bomb = layer(&[("gotk-components.yaml", &zeros)]);
        assert!(bomb.len() < 64 << 10);
        let err = distribution_file_within(&bomb, 1 << 20).unwrap_err();
        assert!(err.contains("more than 1048576 bytes"), "{err}");
        assert_eq!(
            distribution_file_within(&bomb, 8 << 20).unwrap().len(),
            4 << 20
        );
    }

    #[test]
    fn picks_the_content_layer_and_rejects_indexes() {
        let manifest = br#"{"schemaVersion": 2, "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:aa", "size": 1},
            {"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "digest": "sha256:bb", "size": 2}
        ]}"#;
        let parsed = ImageManifest::parse(manifest).unwrap();
        assert_eq!(parsed.content_layer().unwrap().digest, "sha256:bb");
        let err = ImageManifest::parse(br#"{"schemaVersion": 2, "manifests": []}"#).unwrap_err();
        assert!(err.contains("image index"), "{err}");
        let image = br#"{"layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": "sha256:aa", "size": 1}
        ]}"#;
        let err = ImageManifest::parse(image)
            .unwrap()
            .content_layer()
            .unwrap_err();
        assert!(
            err.contains("no application/vnd.cncf.flux.content.v1.tar+gzip layer"),
            "{err}"
        );
    }
}
