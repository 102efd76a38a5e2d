//! Tests of the registry emulator over real HTTP, as registry clients use it.

use reqwest::StatusCode;
use serde_json::Value;

use super::artifact::{FluxArtifact, OCI_MANIFEST_MEDIA_TYPE};
use crate::digest::sha256_hex;
use crate::sandbox::{Sandbox, SandboxOptions};

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn artifact() -> FluxArtifact {
    FluxArtifact::build(
        &[("gotk-components.yaml", b"kind: Namespace\n")],
        "https://example.test/flux",
        "v1@sha1:abc",
    )
}

/// A token for `scope`, with the GitLab token as password when given.
async fn token(s: &Sandbox, scope: &str, password: Option<&str>) -> (StatusCode, Value) {
    let mut request = client()
        .get(format!("{}/token", s.info.registry_url))
        .query(&[("service", super::SERVICE), ("scope", scope)]);
    if let Some(password) = password {
        request = request.basic_auth("someone", Some(password));
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn challenges_point_at_the_token_endpoint() {
    let s = sandbox().await;
    let base = &s.info.registry_url;
    let response = client().get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!("Bearer realm=\"{base}/token\",service=\"gitlabflux-sandbox\"")
    );
    let response = client()
        .get(format!("{base}/v2/fleet/flux/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with(",scope=\"repository:fleet/flux:pull\"")
    );
    assert_eq!(error_code(response).await, "UNAUTHORIZED");

    let (status, body) = token(&s, "repository:fleet/flux:pull", None).await;
    assert_eq!(status, StatusCode::OK);
    let anonymous = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    let ok = client()
        .get(format!("{base}/v2/"))
        .bearer_auth(anonymous)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        ok.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    s.stop().await;
}

#[tokio::test]
async fn pushes_need_a_gitlab_token_and_pulls_can_be_made_private() {
    let s = sandbox().await;
    let base = s.info.registry_url.clone();
    let root = s.gitlab.root_token();

    // Anonymous: pull only, so a push is challenged again.
    let (_, body) = token(&s, "repository:fleet/flux:pull,push", None).await;
    let anonymous = body["token"].as_str().unwrap().to_string();
    let push = client()
        .post(format!("{base}/v2/fleet/flux/blobs/uploads/"))
        .bearer_auth(&anonymous)
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), StatusCode::UNAUTHORIZED);
    assert!(
        push.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("repository:fleet/flux:pull,push")
    );
    let (status, _) = token(&s, "repository:fleet/flux:pull", Some("glpat-wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let digest = artifact()
        .push(&client(), &base, &root, "fleet/flux", "v1")
        .await
        .expect("push with the root token");
    assert_eq!(digest, artifact().digest(), "the build is reproducible");
    assert_eq!(
        s.registry.summary()["repositories"]["fleet/flux"]["v1"],
        format!("sha256:{digest}")
    );

    // Private: the anonymous token has no grant, a GitLab token still pulls.
    s.registry.set_anonymous_pull(false);
    let (_, body) = token(&s, "repository:fleet/flux:pull", None).await;
    let manifest_url = format!("{base}/v2/fleet/flux/manifests/v1");
    let denied = client()
        .get(&manifest_url)
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let (_, body) = token(&s, "repository:fleet/flux:pull", Some(&root)).await;
    let allowed = client()
        .get(&manifest_url)
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    s.stop().await;
}

/// A pull+push token for `fleet/flux` from the root token.
async fn push_token(s: &Sandbox) -> String {
    let (_, body) = token(
        s,
        "repository:fleet/flux:pull,push",
        Some(&s.gitlab.root_token()),
    )
    .await;
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn chunked_uploads_and_manifest_rules() {
    let s = sandbox().await;
    let base = s.info.registry_url.clone();
    let token = push_token(&s).await;
    let http = client();
    let blob = b"hello, registry".to_vec();
    let digest = sha256_hex(&blob);

    let started = http
        .post(format!("{base}/v2/fleet/flux/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_string();
    let patched = http
        .patch(format!("{base}{location}"))
        .bearer_auth(&token)
        .body(blob[..5].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::ACCEPTED);
    assert_eq!(patched.headers()["range"], "0-4");
    let wrong = http
        .put(format!("{base}{location}"))
        .query(&[("digest", format!("sha256:{}", "0".repeat(64)))])
        .bearer_auth(&token)
        .body(blob[5..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(wrong).await, "DIGEST_INVALID");
    let gone = http
        .put(format!("{base}{location}"))
        .query(&[("digest", format!("sha256:{digest}"))])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        StatusCode::NOT_FOUND,
        "a failed upload is closed"
    );
    assert_eq!(error_code(gone).await, "BLOB_UPLOAD_UNKNOWN");

    // Monolithic upload in one POST.
    let posted = http
        .post(format!("{base}/v2/fleet/flux/blobs/uploads/"))
        .query(&[("digest", format!("sha256:{digest}"))])
        .bearer_auth(&token)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::CREATED);
    assert_eq!(
        posted.headers()["docker-content-digest"].to_str().unwrap(),
        format!("sha256:{digest}")
    );
    let fetched = http
        .get(format!("{base}/v2/fleet/flux/blobs/sha256:{digest}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(
        fetched.url().path().starts_with("/-/storage/"),
        "redirected to storage"
    );
    let storage = fetched.url().clone();
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), blob);
    let forged = storage.as_str().replace("signature=", "signature=0");
    let denied = http.get(forged).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // A manifest naming a blob the repository lacks is refused.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": "application/vnd.cncf.flux.config.v1+json", "digest": format!("sha256:{digest}"), "size": blob.len()},
        "layers": [{"mediaType": "application/vnd.cncf.flux.content.v1.tar+gzip", "digest": format!("sha256:{}", "1".repeat(64)), "size": 1}],
    })
    .to_string();
    let refused = http
        .put(format!("{base}/v2/fleet/flux/manifests/v1"))
        .bearer_auth(&token)
        .header("content-type", OCI_MANIFEST_MEDIA_TYPE)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(refused).await, "MANIFEST_BLOB_UNKNOWN");
    s.stop().await;
}

#[tokio::test]
async fn manifests_are_served_exactly_with_their_digest() {
    let s = sandbox().await;
    let base = s.info.registry_url.clone();
    let artifact = artifact();
    let digest = artifact
        .push(&client(), &base, &s.gitlab.root_token(), "fleet/flux", "v1")
        .await
        .unwrap();
    let token = push_token(&s).await;
    let http = client();

    for reference in ["v1".to_string(), format!("sha256:{digest}")] {
        let got = http
            .get(format!("{base}/v2/fleet/flux/manifests/{reference}"))
            .bearer_auth(&token)
            .header("accept", OCI_MANIFEST_MEDIA_TYPE)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.headers()["content-type"], OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(
            got.headers()["docker-content-digest"].to_str().unwrap(),
            format!("sha256:{digest}")
        );
        assert_eq!(got.bytes().await.unwrap().to_vec(), artifact.manifest);
    }
    let head = http
        .head(format!("{base}/v2/fleet/flux/manifests/v1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        artifact.manifest.len().to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    let docker_only = http
        .get(format!("{base}/v2/fleet/flux/manifests/v1"))
        .bearer_auth(&token)
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(docker_only.status(), StatusCode::NOT_FOUND);
    for (url, code) in [
        ("fleet/flux/manifests/v2", "MANIFEST_UNKNOWN"),
        ("fleet/other/tags/list", "NAME_UNKNOWN"),
        ("fleet/flux/manifests/sha256:nothex", "DIGEST_INVALID"),
    ] {
        let (_, body) = token_for(&s, url).await;
        let response = http
            .get(format!("{base}/v2/{url}"))
            .bearer_auth(body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, code, "{url}");
    }
    let tags: Value = http
        .get(format!("{base}/v2/fleet/flux/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"name": "fleet/flux", "tags": ["v1"]})
    );

    let stats = s.stats.snapshot();
    assert_eq!(stats["registry"]["GET /v2/{name}/manifests/{reference}"], 5);
    assert_eq!(
        stats["registry"]["HEAD /v2/{name}/manifests/{reference}"],
        1
    );
    s.stop().await;
}

/// A pull token for the repository the API path names.
async fn token_for(s: &Sandbox, path: &str) -> (StatusCode, String) {
    let name = path
        .split("/manifests/")
        .next()
        .unwrap()
        .trim_end_matches("/tags/list");
    let (status, body) = token(s, &format!("repository:{name}:pull"), None).await;
    (status, body["token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn artifacts_survive_a_restart_with_a_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let options = SandboxOptions {
        state_dir: Some(dir.path().to_path_buf()),
        ..SandboxOptions::default()
    };
    let s = Sandbox::start(options.clone()).await.unwrap();
    let digest = artifact()
        .push(
            &client(),
            &s.info.registry_url,
            &s.gitlab.root_token(),
            "fleet/flux",
            "v1",
        )
        .await
        .unwrap();
    s.stop().await;

    let s = Sandbox::start(options).await.unwrap();
    assert_eq!(
        s.registry.summary()["repositories"]["fleet/flux"]["v1"],
        format!("sha256:{digest}")
    );
    s.stop().await;
}
