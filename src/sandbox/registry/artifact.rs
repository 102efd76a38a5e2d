//! Building and pushing Flux artifacts as `flux push artifact` does, so the sandbox can hold a
//! mirror of `ghcr.io/fluxcd/flux-manifests` for tests, benchmarks and demos.
//!
//! The layer is reproducible: entries sorted, zero timestamps and owners, gzip without a name
//! or time, so the same files always give the same digests.

use std::io::Write as _;

use serde_json::json;

use crate::digest::sha256_hex;
use crate::flux::source::oci::{Challenge, FLUX_CONTENT_MEDIA_TYPE};

pub const FLUX_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The three blobs of a Flux artifact.
#[derive(Debug, Clone)]
pub struct FluxArtifact {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot reach the registry: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the registry refused {step}: HTTP {status}: {body}")]
    Refused {
        step: &'static str,
        status: u16,
        body: String,
    },
}

impl FluxArtifact {
    /// An artifact of `files` (path, content), annotated with where it came from.
    pub fn build(files: &[(&str, &[u8])], source: &str, revision: &str) -> Self {
        let layer = gzip(&tarball(files));
        let config = b"{}".to_vec();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": descriptor(FLUX_CONFIG_MEDIA_TYPE, &config),
            "layers": [descriptor(FLUX_CONTENT_MEDIA_TYPE, &layer)],
            "annotations": {
                "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.source": source,
            },
        });
        Self {
            manifest: manifest.to_string().into_bytes(),
            config,
            layer,
        }
    }

    /// The manifest digest (lowercase hex), which pins the artifact.
    pub fn digest(&self) -> String {
        sha256_hex(&self.manifest)
    }

    /// Pushes the artifact to `repository:tag` of the registry at `registry_url`
    /// (`http://host:port`), authenticating with a GitLab token as the password. Returns the
    /// manifest digest the registry reported (empty when it reported none).
    pub async fn push(
        &self,
        client: &reqwest::Client,
        registry_url: &str,
        password: &str,
        repository: &str,
        tag: &str,
    ) -> Result<String, PushError> {
        let base = registry_url.trim_end_matches('/');
        let token = push_token(client, base, password, repository).await?;
        for blob in [&self.config, &self.layer] {
            let started = client
                .post(format!("{base}/v2/{repository}/blobs/uploads/"))
                .bearer_auth(&token)
                .send()
                .await?;
            let started = expect(started, "the upload start", 202).await?;
            let location = started
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let finished = client
                .put(format!("{base}{location}"))
                .query(&[("digest", format!("sha256:{}", sha256_hex(blob)))])
                .bearer_auth(&token)
                .body(blob.clone())
                .send()
                .await?;
            expect(finished, "the blob upload", 201).await?;
        }
        let put = client
            .put(format!("{base}/v2/{repository}/manifests/{tag}"))
            .bearer_auth(&token)
            .header(reqwest::header::CONTENT_TYPE, OCI_MANIFEST_MEDIA_TYPE)
            .body(self.manifest.clone())
            .send()
            .await?;
        let put = expect(put, "the manifest", 201).await?;
        // The registry's word for the digest, so callers check what it stored.
        let digest = put
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256:"))
            .unwrap_or_default()
            .to_string();
        Ok(digest)
    }
}

/// Follows the registry's challenge to a pull+push token.
async fn push_token(
    client: &reqwest::Client,
    base: &str,
    password: &str,
    repository: &str,
) -> Result<String, PushError> {
    let probe = client
        .post(format!("{base}/v2/{repository}/blobs/uploads/"))
        .send()
        .await?;
    let challenge = probe
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(Challenge::parse);
    let Some(Challenge::Bearer {
        realm,
        service,
        scope,
    }) = challenge
    else {
        return Err(PushError::Refused {
            step: "the authentication probe",
            status: probe.status().as_u16(),
            body: "no Bearer challenge".into(),
        });
    };
    let query = [
        ("service", service.unwrap_or_default()),
        ("scope", scope.unwrap_or_default()),
    ];
    let response = client
        .get(realm)
        .query(&query)
        .basic_auth("sandbox", Some(password))
        .send()
        .await?;
    let response = expect(response, "the credentials", 200).await?;
    let body: serde_json::Value = response.json().await?;
    Ok(body["token"].as_str().unwrap_or_default().to_string())
}

async fn expect(
    response: reqwest::Response,
    step: &'static str,
    status: u16,
) -> Result<reqwest::Response, PushError> {
    if response.status().as_u16() == status {
        return Ok(response);
    }
    Err(PushError::Refused {
        step,
        status: response.status().as_u16(),
        body: response.text().await.unwrap_or_default(),
    })
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({
        "mediaType": media_type,
        "digest": format!("sha256:{}", sha256_hex(blob)),
        "size": blob.len(),
    })
}

fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut sorted: Vec<&(&str, &[u8])> = files.iter().collect();
    sorted.sort_by_key(|(path, _)| *path);
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        // Writing into a Vec cannot fail; a path tar cannot encode is skipped.
        let _ = tar.append_data(&mut header, path, *content);
    }
    tar.into_inner().unwrap_or_default()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}
