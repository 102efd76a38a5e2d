//! Loading a Flux distribution: the multi-document YAML that `flux install` would apply
//! (the release asset `install.yaml` or a `flux bootstrap` gotk-components.yaml).
//!
//! Sources are `file://` URLs, plain paths (relative to the working directory) and
//! `http(s)://` URLs for mirrors and air gaps. A pinned `sha256` is verified on every load.
//! Fetched bytes are cached by digest under `GITLABFLUX_CACHE_DIR` (or the OS temp dir) so a
//! plan does not download the same release again: a pinned load looks the digest up
//! directly; an unpinned load goes through a URL index, which treats release URLs as
//! immutable (pin the digest or change the URL to pick up new bytes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::FluxError;
use super::manifest::{self, VERSION_LABEL};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CACHE_ENV: &str = "GITLABFLUX_CACHE_DIR";

/// Where a distribution comes from, and the digest it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionSource {
    pub url: String,
    pub sha256: Option<String>,
}

/// A loaded distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// Multi-document YAML.
    pub manifests: String,
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
            sha256: hex_sha256(manifests.as_bytes()),
            manifests,
            version,
        })
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    crate::digest::sha256_hex(bytes)
}

/// Loads, verifies and parses a distribution.
pub async fn load(source: &DistributionSource) -> Result<Distribution, FluxError> {
    load_with_cache(source, &cache_dir()).await
}

/// [`load`] with an explicit cache directory.
pub async fn load_with_cache(
    source: &DistributionSource,
    cache: &Path,
) -> Result<Distribution, FluxError> {
    let pin = source.sha256.as_deref().map(normalise_pin).transpose()?;
    let url = source.url.trim();
    let bytes = if url.starts_with("http://") || url.starts_with("https://") {
        fetch_cached(url, pin.as_deref(), cache).await?
    } else if url.starts_with("file://") || !url.contains("://") {
        read_file(url).await?
    } else {
        return Err(FluxError::UnsupportedSource {
            url: url.to_string(),
        });
    };
    let actual = hex_sha256(&bytes);
    if let Some(expected) = pin
        && expected != actual
    {
        return Err(FluxError::Sha256Mismatch { expected, actual });
    }
    let manifests = String::from_utf8(bytes).map_err(|_| FluxError::Parse {
        message: "the file is not UTF-8 text".into(),
    })?;
    Distribution::from_manifests(manifests)
}

fn normalise_pin(pin: &str) -> Result<String, FluxError> {
    let pin = pin.trim().to_ascii_lowercase();
    let pin = pin.strip_prefix("sha256:").unwrap_or(&pin).to_string();
    if pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()) {
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

/// The cache directory: `GITLABFLUX_CACHE_DIR`, or `gitlabflux-cache` in the OS temp dir.
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("gitlabflux-cache"))
}

async fn fetch_cached(url: &str, pin: Option<&str>, dir: &Path) -> Result<Vec<u8>, FluxError> {
    let index = dir.join(format!("url-{}", hex_sha256(url.as_bytes())));
    let digest = match pin {
        Some(pin) => Some(pin.to_string()),
        None => tokio::fs::read_to_string(&index)
            .await
            .ok()
            .map(|d| d.trim().to_string()),
    };
    if let Some(digest) = digest
        && let Some(bytes) = read_cached(dir, &digest).await
    {
        tracing::debug!(url, digest, "Flux distribution served from the cache");
        return Ok(bytes);
    }
    let bytes = fetch(url).await?;
    store(dir, &index, &bytes).await;
    Ok(bytes)
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join(format!("sha256-{digest}.yaml"))
}

/// A cached blob, only if its bytes still hash to its name (a torn or edited file is a miss).
async fn read_cached(dir: &Path, digest: &str) -> Option<Vec<u8>> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes = tokio::fs::read(blob_path(dir, digest)).await.ok()?;
    (hex_sha256(&bytes) == digest).then_some(bytes)
}

/// Writes the blob and the URL index. Failures only cost a refetch, so they are logged and
/// swallowed: a read-only cache dir must not fail a plan.
async fn store(dir: &Path, index: &Path, bytes: &[u8]) {
    let digest = hex_sha256(bytes);
    let blob = blob_path(dir, &digest);
    let result = async {
        tokio::fs::create_dir_all(dir).await?;
        write_atomic(dir, &blob, bytes).await?;
        write_atomic(dir, index, digest.as_bytes()).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot cache the Flux distribution");
    }
}

/// Write-then-rename, so concurrent plans never read a half-written file.
async fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, path, bytes) = (dir.to_path_buf(), path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        file.write_all(&bytes)?;
        file.persist(&path).map(|_| ()).map_err(|e| e.error)
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn fetch(url: &str) -> Result<Vec<u8>, FluxError> {
    let unreachable = |message: String| FluxError::Unreachable {
        url: url.to_string(),
        message,
    };
    let client = http_client(url.starts_with("https://")).map_err(unreachable)?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(unreachable(format!("HTTP status {status}")));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unreachable(error_chain(&e)))?;
    Ok(bytes.to_vec())
}

/// reqwest is built without a default crypto provider: give it rustls with ring and the
/// system roots (only loaded for https, so plain-HTTP mirrors skip the certificate store).
fn http_client(https: bool) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!(
            "terraform-provider-gitlabflux/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// reqwest's top-level message ("error sending request") hides the cause; join the chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::testutil::{FIXTURE_PATH, fixture_text};
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
        assert_eq!(loaded.sha256, hex_sha256(fixture_text().as_bytes()));
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
        let actual = hex_sha256(fixture_text().as_bytes());
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
        let digest = hex_sha256(fixture_text().as_bytes());

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
        assert!(blob_path(cache.path(), &digest).exists());

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
