//! Loading a Flux distribution: the multi-document YAML that `flux install` would apply
//! (the release asset `install.yaml`, a `flux bootstrap` gotk-components.yaml, or the
//! `flux-manifests` OCI artifact).
//!
//! Sources are `file://` URLs, plain paths (relative to the working directory), `http(s)://`
//! URLs for mirrors and air gaps, and `oci://` references (see [`super::oci`]). A pinned
//! `sha256` is verified on every load: the file's digest for files and URLs, the manifest
//! digest for artifacts. Fetched bytes are cached by digest (see [`super::cache`]) so a plan
//! does not download the same release again: a pinned load looks the digest up directly; an
//! unpinned load goes through the source's remembered digest, which treats release URLs and
//! tags as immutable (pin the digest or change the URL to pick up new bytes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cache::{self, BlobCache};
use super::oci;
use crate::digest::sha256_hex;
use crate::flux::error::FluxError;
use crate::flux::manifest::{self, VERSION_LABEL};
use crate::net;
use crate::single_flight::SingleFlight;

/// Where a distribution comes from, and the digest it must have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DistributionSource {
    pub url: String,
    pub sha256: Option<String>,
}

/// A loaded distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// Multi-document YAML.
    pub manifests: String,
    /// `manifests` parsed, once per load rather than once per render.
    pub objects: Vec<serde_json::Value>,
    /// Lowercase hex SHA-256 of `manifests`.
    pub sha256: String,
    /// The `app.kubernetes.io/version` label of the first object that has one.
    pub version: Option<String>,
}

impl Distribution {
    /// Wraps manifests already in memory, checking that they parse.
    pub fn from_manifests(manifests: String) -> Result<Self, FluxError> {
        let objects = manifest::parse_documents(&manifests)?;
        let version = objects
            .iter()
            .find_map(|object| manifest::label(object, VERSION_LABEL))
            .map(str::to_string);
        Ok(Self {
            sha256: sha256_hex(manifests.as_bytes()),
            manifests,
            objects,
            version,
        })
    }
}

/// The distributions one provider process has loaded: a fleet of bootstraps planned or
/// applied together (Terraform runs ten at once) loads, verifies and parses each source once,
/// instead of once per cluster with every cold-cache download repeated. Failures are not kept:
/// the next load tries again.
pub struct Distributions {
    cache_dir: PathBuf,
    loaded: SingleFlight<DistributionSource, Distribution, FluxError>,
}

impl Default for Distributions {
    fn default() -> Self {
        Self::new(cache::default_dir())
    }
}

impl Distributions {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            loaded: SingleFlight::new(),
        }
    }

    /// [`load`], once per source and pin for the life of the provider.
    pub async fn load(&self, source: &DistributionSource) -> Result<Arc<Distribution>, FluxError> {
        let (owned, dir) = (source.clone(), self.cache_dir.clone());
        self.loaded
            .get(source.clone(), move || {
                Box::pin(async move { load_with_cache(&owned, &dir).await.map(Arc::new) })
            })
            .await
    }
}

/// Loads, verifies and parses a distribution.
pub async fn load(source: &DistributionSource) -> Result<Distribution, FluxError> {
    load_with_cache(source, &cache::default_dir()).await
}

/// [`load`] with an explicit cache directory.
pub async fn load_with_cache(
    source: &DistributionSource,
    cache: &Path,
) -> Result<Distribution, FluxError> {
    let pin = source.sha256.as_deref().map(normalise_pin).transpose()?;
    let url = source.url.trim();
    let cache = BlobCache::new(cache);
    let bytes = if url.starts_with(oci::Reference::SCHEME) {
        // The pin names the artifact's manifest, which the pull checks itself.
        oci::pull_distribution(url, pin.as_deref(), &cache).await?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        pinned(fetch_cached(url, pin.as_deref(), &cache).await?, pin)?
    } else if url.starts_with("file://") || !url.contains("://") {
        pinned(read_file(url).await?, pin)?
    } else {
        return Err(FluxError::UnsupportedSource {
            url: url.to_string(),
        });
    };
    let manifests = String::from_utf8(bytes).map_err(|_| FluxError::Parse {
        message: "the file is not UTF-8 text".into(),
    })?;
    Distribution::from_manifests(manifests)
}

/// `bytes`, if they hash to the pin.
fn pinned(bytes: Vec<u8>, pin: Option<String>) -> Result<Vec<u8>, FluxError> {
    let actual = sha256_hex(&bytes);
    match pin {
        Some(expected) if expected != actual => Err(FluxError::Sha256Mismatch { expected, actual }),
        _ => Ok(bytes),
    }
}

fn normalise_pin(pin: &str) -> Result<String, FluxError> {
    let pin = pin.trim().to_ascii_lowercase();
    let pin = pin.strip_prefix("sha256:").unwrap_or(&pin).to_string();
    if cache::is_hex_digest(&pin) {
        Ok(pin)
    } else {
        Err(FluxError::InvalidSha256 { value: pin })
    }
}

async fn read_file(url: &str) -> Result<Vec<u8>, FluxError> {
    // `file:///abs/path` keeps its leading slash after the scheme; a bare path is taken
    // relative to the working directory, which is the Terraform root module.
    let path = url.strip_prefix("file://").unwrap_or(url);
    let path = path
        .strip_prefix("localhost")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path);
    tokio::fs::read(path).await.map_err(|e| FluxError::Io {
        path: path.to_string(),
        message: e.to_string(),
    })
}

async fn fetch_cached(
    url: &str,
    pin: Option<&str>,
    cache: &BlobCache,
) -> Result<Vec<u8>, FluxError> {
    if let Some(bytes) = cache.cached(url, pin).await {
        tracing::debug!(url, "Flux distribution served from the cache");
        return Ok(bytes);
    }
    let bytes = fetch(url).await?;
    cache.keep(url, &bytes).await;
    Ok(bytes)
}

async fn fetch(url: &str) -> Result<Vec<u8>, FluxError> {
    let unreachable = |message: String| FluxError::Unreachable {
        url: url.to_string(),
        message,
    };
    let client = net::http_client(url.starts_with("https://"), net::DOWNLOAD_TIMEOUT, None)
        .map_err(|e| unreachable(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(net::error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unreachable(format!("HTTP status {status}")));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unreachable(net::error_chain(&e)))?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::testutil::{FIXTURE_PATH, fixture_text};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn source(url: &str, sha256: Option<String>) -> DistributionSource {
        DistributionSource {
            url: url.to_string(),
            sha256,
        }
    }

    #[test]
    fn load_future_is_send() {
        // Resources call `load` from `#[async_trait]` handlers, which need Send futures.
        fn assert_send<T: Send>(_: T) {}
        let source = source("x", None);
        assert_send(load(&source));
    }

    #[tokio::test]
    async fn loads_file_url_and_reads_version() {
        let loaded = load(&source(&format!("file://{FIXTURE_PATH}"), None))
            .await
            .unwrap();
        assert_eq!(loaded.version.as_deref(), Some("v2.8.5"));
        assert_eq!(loaded.sha256, sha256_hex(fixture_text().as_bytes()));
        assert_eq!(loaded.manifests, fixture_text());
    }

    #[tokio::test]
    async fn loads_relative_path() {
        // Unit tests run with the package root as working directory.
        let relative = "../shared/fixtures/flux/v2.8.5/gotk-components.yaml";
        let loaded = load(&source(relative, None)).await.unwrap();
        assert_eq!(loaded.version.as_deref(), Some("v2.8.5"));
    }

    #[tokio::test]
    async fn verifies_the_pin() {
        let actual = sha256_hex(fixture_text().as_bytes());
        let pinned = load(&source(FIXTURE_PATH, Some(actual.to_uppercase())))
            .await
            .unwrap();
        assert_eq!(pinned.sha256, actual);
        let wrong = "0".repeat(64);
        let err = load(&source(FIXTURE_PATH, Some(wrong.clone())))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            FluxError::Sha256Mismatch {
                expected: wrong,
                actual
            }
        );
        let err = load(&source(FIXTURE_PATH, Some("abc".into())))
            .await
            .unwrap_err();
        assert!(matches!(err, FluxError::InvalidSha256 { .. }));
    }

    #[tokio::test]
    async fn missing_file_and_unknown_scheme() {
        let err = load(&source("file:///nonexistent/flux.yaml", None))
            .await
            .unwrap_err();
        assert!(matches!(err, FluxError::Io { ref path, .. } if path == "/nonexistent/flux.yaml"));
        let err = load(&source("ftp://example.com/x", None))
            .await
            .unwrap_err();
        assert!(matches!(err, FluxError::UnsupportedSource { .. }));
    }

    async fn serve_fixture(hits: Arc<AtomicUsize>) -> String {
        let app = axum::Router::new().route(
            "/install.yaml",
            axum::routing::get(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    fixture_text()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn http_fetch_is_cached_by_digest() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path();
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve_fixture(hits.clone()).await;
        let url = format!("{base}/install.yaml");
        let digest = sha256_hex(fixture_text().as_bytes());

        let first = load_with_cache(&source(&url, Some(digest.clone())), dir)
            .await
            .unwrap();
        let second = load_with_cache(&source(&url, Some(digest.clone())), dir)
            .await
            .unwrap();
        let unpinned = load_with_cache(&source(&url, None), dir).await.unwrap();
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "second and third loads hit the cache"
        );
        assert_eq!(first, second);
        assert_eq!(first, unpinned);
        assert_eq!(
            BlobCache::new(dir).get(&digest).await.as_deref(),
            Some(fixture_text().as_bytes())
        );

        // A pin that the cache does not hold fetches again, then reports the mismatch.
        let err = load_with_cache(&source(&url, Some("1".repeat(64))), dir)
            .await
            .unwrap_err();
        assert!(matches!(err, FluxError::Sha256Mismatch { .. }));
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let err = load_with_cache(&source(&format!("{base}/missing.yaml"), None), dir)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FluxError::Unreachable { ref message, .. } if message.contains("404"))
        );
    }

    #[tokio::test]
    async fn concurrent_loads_of_one_source_share_one_download() {
        let cache = tempfile::tempdir().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let url = format!("{}/install.yaml", serve_fixture(hits.clone()).await);
        let distributions = Distributions::new(cache.path().to_path_buf());
        let fixture = source(&url, None);
        let loads = (0..8).map(|_| distributions.load(&fixture));
        for loaded in futures_util::future::join_all(loads).await {
            assert_eq!(loaded.unwrap().version.as_deref(), Some("v2.8.5"));
        }
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // A failure is not kept: a source that appears later loads on the next try.
        let later = cache.path().join("later.yaml");
        let later_source = source(&later.display().to_string(), None);
        assert!(distributions.load(&later_source).await.is_err());
        std::fs::write(&later, fixture_text()).unwrap();
        assert!(distributions.load(&later_source).await.is_ok());
    }

    #[tokio::test]
    async fn unreachable_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = fetch(&format!("http://{addr}/install.yaml"))
            .await
            .unwrap_err();
        assert!(matches!(err, FluxError::Unreachable { .. }), "{err:?}");
    }
}
