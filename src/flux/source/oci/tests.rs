//! Pulling distributions from the sandbox's registry: the token flow, pins, the cache,
//! retries and the failures a user can meet.

use super::*;
use crate::digest::sha256_hex;
use crate::flux::testutil::fixture_text;
use crate::sandbox::registry::artifact::FluxArtifact;
use crate::sandbox::{Sandbox, SandboxOptions};

struct Registry {
    sandbox: Sandbox,
    host: String,
    cache_dir: tempfile::TempDir,
}

impl Registry {
    /// A sandbox whose registry holds the v2.8.5 fixture at `fleet/flux-manifests:v2.8.5`.
    async fn with_fixture() -> (Self, String) {
        let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
        let host = sandbox
            .info
            .registry_url
            .trim_start_matches("http://")
            .to_string();
        let registry = Self {
            sandbox,
            host,
            cache_dir: tempfile::tempdir().unwrap(),
        };
        let digest = registry
            .push(
                &[(
                    "flux-system/gotk-components.yaml",
                    fixture_text().as_bytes(),
                )],
                "fleet/flux-manifests",
                "v2.8.5",
            )
            .await;
        registry.sandbox.stats.reset();
        (registry, digest)
    }

    async fn push(&self, files: &[(&str, &[u8])], repository: &str, tag: &str) -> String {
        let _ = rustls::crypto::ring::default_provider().install_default();
        FluxArtifact::build(files, "https://github.com/fluxcd/flux2", "v2.8.5@sha1:0")
            .push(
                &reqwest::Client::new(),
                &self.sandbox.info.registry_url,
                &self.sandbox.gitlab.root_token(),
                repository,
                tag,
            )
            .await
            .expect("push")
    }

    fn url(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host)
    }

    fn cache(&self) -> BlobCache {
        BlobCache::new(self.cache_dir.path())
    }

    fn requests(&self, route: &str) -> u64 {
        self.sandbox.stats.snapshot()["registry"][route]
            .as_u64()
            .unwrap_or(0)
    }
}

const MANIFESTS: &str = "GET /v2/{name}/manifests/{reference}";
const BLOBS: &str = "GET /v2/{name}/blobs/{digest}";

#[tokio::test]
async fn pulls_through_the_token_flow_then_from_the_cache() {
    let (r, digest) = Registry::with_fixture().await;
    let url = r.url("fleet/flux-manifests:v2.8.5");
    let pulled = pull_distribution(&url, None, &r.cache()).await.unwrap();
    assert_eq!(pulled, fixture_text().as_bytes());
    assert_eq!(r.requests("GET /token"), 1, "one anonymous token");
    // The first manifest GET is challenged, the second carries the token.
    assert_eq!((r.requests(MANIFESTS), r.requests(BLOBS)), (2, 1));

    let again = pull_distribution(&url, None, &r.cache()).await.unwrap();
    assert_eq!(again, pulled);
    let pinned = pull_distribution(&url, Some(&digest), &r.cache())
        .await
        .unwrap();
    assert_eq!(pinned, pulled);
    assert_eq!(
        (r.requests(MANIFESTS), r.requests(BLOBS)),
        (2, 1),
        "the tag and the pin are both served from the cache"
    );
    r.sandbox.stop().await;
}

#[tokio::test]
async fn pins_are_verified_whichever_way_they_are_given() {
    let (r, digest) = Registry::with_fixture().await;
    let by_digest = r.url(&format!("fleet/flux-manifests@sha256:{digest}"));
    let pulled = pull_distribution(&by_digest, None, &r.cache())
        .await
        .unwrap();
    assert_eq!(pulled, fixture_text().as_bytes());

    let other = "f".repeat(64);
    let err = pull_distribution(&by_digest, Some(&other), &r.cache())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        FluxError::Sha256Mismatch {
            expected: other.clone(),
            actual: digest.clone()
        },
        "the pin and the reference disagree"
    );
    let url = r.url("fleet/flux-manifests:v2.8.5");
    let err = pull_distribution(&url, Some(&other), &r.cache())
        .await
        .unwrap_err();
    assert!(
        matches!(err, FluxError::Unreachable { ref message, .. }
            if message.contains(&format!("manifest sha256:{other}")) && message.contains("MANIFEST_UNKNOWN")),
        "a pin is fetched by digest: {err:?}"
    );

    // The tag moves to new content (a re-push): the pin still gets what it pinned, with a
    // cold cache as with a warm one; without a pin the moved tag is picked up once the cache
    // is cold.
    r.push(
        &[("gotk-components.yaml", b"kind: Namespace\n")],
        "fleet/flux-manifests",
        "v2.8.5",
    )
    .await;
    let fresh = tempfile::tempdir().unwrap();
    let cold = pull_distribution(&url, Some(&digest), &BlobCache::new(fresh.path()))
        .await
        .unwrap();
    let warm = pull_distribution(&url, Some(&digest), &r.cache())
        .await
        .unwrap();
    assert_eq!(
        (cold.as_slice(), warm.as_slice()),
        (fixture_text().as_bytes(), fixture_text().as_bytes())
    );
    let cold = tempfile::tempdir().unwrap();
    let moved = pull_distribution(&url, None, &BlobCache::new(cold.path()))
        .await
        .unwrap();
    assert_eq!(moved, b"kind: Namespace\n");
    r.sandbox.stop().await;
}

#[tokio::test]
async fn failures_name_the_cause() {
    let (r, _) = Registry::with_fixture().await;
    let err = pull_distribution(&r.url("fleet/flux-manifests:v9.9.9"), None, &r.cache())
        .await
        .unwrap_err();
    let FluxError::Unreachable { url, message } = &err else {
        panic!("{err:?}");
    };
    assert!(url.ends_with("/fleet/flux-manifests:v9.9.9"), "{url}");
    assert!(
        message.contains("404") && message.contains("MANIFEST_UNKNOWN"),
        "{message}"
    );

    r.push(
        &[("deploy/app.yaml", b"kind: ConfigMap\n")],
        "fleet/app",
        "v1",
    )
    .await;
    let err = pull_distribution(&r.url("fleet/app:v1"), None, &r.cache())
        .await
        .unwrap_err();
    assert!(
        matches!(err, FluxError::InvalidArtifact { ref message, .. } if message.contains("holds no gotk-components.yaml or install.yaml (it has: deploy/app.yaml)")),
        "{err:?}"
    );

    let err = pull_distribution("oci://ghcr.io/FluxCD/x:v1", None, &r.cache())
        .await
        .unwrap_err();
    assert!(matches!(err, FluxError::InvalidSource { .. }), "{err:?}");

    r.sandbox.registry.set_anonymous_pull(false);
    let fresh = tempfile::tempdir().unwrap();
    let url = r.url("fleet/flux-manifests:v2.8.5");
    let err = pull_distribution(&url, None, &BlobCache::new(fresh.path()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused to let an anonymous client pull fleet/flux-manifests")
            && err.to_string().contains("docker login"),
        "{err}"
    );
    r.sandbox.stop().await;
}

#[tokio::test]
async fn credentials_open_private_repositories_and_stay_secret() {
    let (r, _) = Registry::with_fixture().await;
    r.sandbox.registry.set_anonymous_pull(false);
    let reference = Reference::parse(&r.url("fleet/flux-manifests:v2.8.5")).unwrap();
    let http = crate::net::http_client(false, crate::net::DOWNLOAD_TIMEOUT, None).unwrap();
    let root = r.sandbox.gitlab.root_token();
    let mut puller = Puller::new(&reference, http.clone()).with_credentials(Some(Credentials {
        username: "root".into(),
        password: crate::secret::Secret::new(root.clone()),
    }));
    let manifest = puller.manifest("v2.8.5", 1 << 20).await.unwrap();
    assert!(ImageManifest::parse(&manifest).is_ok());

    let mut wrong = Puller::new(&reference, http).with_credentials(Some(Credentials {
        username: "root".into(),
        password: crate::secret::Secret::new("glpat-not-a-token"),
    }));
    let err = wrong
        .manifest("v2.8.5", 1 << 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refused to let these credentials pull"),
        "{err}"
    );
    assert!(
        !err.contains("glpat-not-a-token") && !err.contains(&root),
        "{err}"
    );
    r.sandbox.stop().await;
}

#[tokio::test]
async fn transient_registry_failures_are_retried() {
    let (r, _) = Registry::with_fixture().await;
    let spec = crate::sandbox::faults::FaultSpec::parse(
        r#"{"rules": [{"emulator": "registry", "path": "/v2/*/blobs/*", "fault": "status", "status": 503, "retry_after": 0, "times": 2}]}"#,
    )
    .unwrap();
    r.sandbox.faults.replace(spec);
    let pulled = pull_distribution(&r.url("fleet/flux-manifests:v2.8.5"), None, &r.cache())
        .await
        .unwrap();
    assert_eq!(pulled, fixture_text().as_bytes());
    assert_eq!(r.requests(BLOBS), 1, "two faults, then the blob");
    let faults = r.sandbox.stats.snapshot()["faults"]["registry"].clone();
    let answered: u64 = faults
        .as_object()
        .unwrap()
        .values()
        .filter_map(|n| n.as_u64())
        .sum();
    assert_eq!(answered, 2, "{faults}");
    r.sandbox.stop().await;
}

/// A registry that lies: its manifest names a layer digest, its blob endpoint serves other
/// bytes, and the manifest it serves for any digest is not the one asked for.
async fn lying_registry(layer: Vec<u8>, served: Vec<u8>) -> (String, String) {
    use crate::sandbox::registry::artifact::OCI_MANIFEST_MEDIA_TYPE;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "layers": [{
            "mediaType": FLUX_CONTENT_MEDIA_TYPE,
            "digest": format!("sha256:{}", sha256_hex(&layer)),
            "size": layer.len(),
        }],
    })
    .to_string();
    let digest = sha256_hex(manifest.as_bytes());
    let app = axum::Router::new()
        .route(
            "/v2/x/manifests/{reference}",
            axum::routing::get(move || async move { manifest }),
        )
        .route(
            "/v2/x/blobs/{digest}",
            axum::routing::get(move || async move { served }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("oci://{addr}/x:v1"), digest)
}

#[tokio::test]
async fn bytes_that_do_not_match_their_digest_are_refused_and_not_cached() {
    let layer =
        FluxArtifact::build(&[("gotk-components.yaml", b"kind: Namespace\n")], "s", "r").layer;
    let mut tampered = layer.clone();
    tampered[20] ^= 0xff;
    let (url, digest) = lying_registry(layer, tampered).await;
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::new(cache_dir.path());
    let err = pull_distribution(&url, None, &cache).await.unwrap_err();
    assert!(
        matches!(err, FluxError::InvalidArtifact { ref message, .. } if message.contains("do not match its digest")),
        "{err:?}"
    );
    assert_eq!(
        cache.lookup(&url).await,
        None,
        "nothing is remembered from a failed pull"
    );
    assert_eq!(cache.get(&digest).await, None);

    // Asked for one digest, served another manifest.
    let other = "e".repeat(64);
    let url = format!("{}@sha256:{other}", url.trim_end_matches(":v1"));
    let err = pull_distribution(&url, None, &cache).await.unwrap_err();
    assert_eq!(
        err,
        FluxError::Sha256Mismatch {
            expected: other,
            actual: digest
        }
    );
}

/// A registry that asks for Basic credentials (no token service), as some mirrors do.
async fn basic_auth_registry(expected: &'static str) -> String {
    use axum::http::{HeaderMap, StatusCode, header};
    let app = axum::Router::new().route(
        "/v2/x/manifests/{reference}",
        axum::routing::get(move |headers: HeaderMap| async move {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if sent == Some(expected) {
                (StatusCode::OK, HeaderMap::new(), "{}")
            } else {
                let mut challenge = HeaderMap::new();
                challenge.insert(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"mirror\"".parse().unwrap(),
                );
                (StatusCode::UNAUTHORIZED, challenge, "")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("oci://{addr}/x:v1")
}

#[tokio::test]
async fn basic_challenges_take_the_docker_config_credentials() {
    // base64("robot:pw")
    let url = basic_auth_registry("Basic cm9ib3Q6cHc=").await;
    let reference = Reference::parse(&url).unwrap();
    let http = crate::net::http_client(false, crate::net::DOWNLOAD_TIMEOUT, None).unwrap();
    let credentials = Credentials {
        username: "robot".into(),
        password: crate::secret::Secret::new("pw"),
    };
    let mut puller = Puller::new(&reference, http.clone()).with_credentials(Some(credentials));
    assert_eq!(puller.manifest("v1", 1024).await.unwrap(), b"{}");
    let mut anonymous = Puller::new(&reference, http).with_credentials(None);
    let err = anonymous
        .manifest("v1", 1024)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("refused to let an anonymous client pull x"),
        "{err}"
    );
}
