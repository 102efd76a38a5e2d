//! The `gitlabflux-sandbox` contract: the JSON line, stop on stdin EOF or SIGTERM, the admin
//! API (stats, faults, dumps), `--state-dir` persistence and `--simulate-controllers`.

mod common;

use std::time::{Duration, Instant};

use common::{SandboxProcess, flux_fixture_path};
use reqwest::Method;
use serde_json::{Value, json};

fn kubeconfig(sandbox: &SandboxProcess) -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(sandbox.url("kubeconfig")).expect("kubeconfig");
    serde_yaml_ng::from_str(&text).expect("kubeconfig YAML")
}

/// The sandbox's Kubernetes API, which speaks HTTPS with the CA in the kubeconfig and takes
/// the kubeconfig's bearer token.
struct KubeApi {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl KubeApi {
    fn new(sandbox: &SandboxProcess) -> Self {
        let config = kubeconfig(sandbox);
        let client = common::kube_https_client(
            config["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
        );
        Self {
            client,
            url: sandbox.url("kube_url"),
            token: config["users"][0]["user"]["token"]
                .as_str()
                .expect("token")
                .to_string(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> Value {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }

    /// Server-side applies `body` at `path` as the field manager `test`, and asserts that
    /// it was accepted.
    async fn apply(&self, path: &str, body: &Value) {
        let response = self
            .request(
                Method::PATCH,
                &format!("{path}?fieldManager=test&force=true"),
            )
            .header("content-type", "application/apply-patch+yaml")
            .body(body.to_string())
            .send()
            .await
            .expect("apply");
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap_or_default()
        );
    }
}

async fn gitlab_get(sandbox: &SandboxProcess, path: &str) -> reqwest::Response {
    sandbox
        .gitlab(Method::GET, path)
        .send()
        .await
        .expect("GitLab request")
}

/// Polls until `check` holds, for simulated controllers that act asynchronously.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn prints_the_contract_line_and_serves_both_apis() {
    let sandbox = SandboxProcess::start(&[]);
    let keys: Vec<&str> = sandbox
        .info
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    for key in [
        "gitlab_url",
        "gitlab_token",
        "kube_url",
        "kubeconfig",
        "admin_url",
        "registry_url",
    ] {
        assert!(sandbox.info[key].is_string(), "{key}");
    }
    let project: Value = gitlab_get(&sandbox, "/projects/fleet%2Fagents")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(project["path_with_namespace"], "fleet/agents");
    assert_eq!(project["default_branch"], "main");
    let gitops = gitlab_get(&sandbox, "/projects/fleet%2Fgitops").await;
    assert_eq!(gitops.status(), 200);

    assert!(sandbox.url("kube_url").starts_with("https://"));
    let api = KubeApi::new(&sandbox).get("/api").await;
    assert_eq!(api["kind"], "APIVersions");

    let status = sandbox.stop();
    assert!(status.success(), "clean exit when stdin closes: {status:?}");
}

#[tokio::test]
async fn sigterm_stops_the_sandbox() {
    let mut sandbox = SandboxProcess::start(&[]);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &sandbox.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    assert!(sandbox.wait().success());
}

#[tokio::test]
async fn stats_count_requests_by_route_template() {
    let sandbox = SandboxProcess::start(&[]);
    sandbox
        .admin(Method::DELETE, "/stats")
        .send()
        .await
        .expect("reset");
    for _ in 0..3 {
        gitlab_get(&sandbox, "/projects/fleet%2Fagents/cluster_agents").await;
    }
    gitlab_get(&sandbox, "/projects/fleet%2Fgitops").await;
    let stats = sandbox.admin_json("/stats").await;
    let gitlab = stats["gitlab"].as_object().expect("gitlab stats");
    let agents = gitlab
        .iter()
        .find(|(k, _)| k.starts_with("GET ") && k.ends_with("/cluster_agents"))
        .unwrap_or_else(|| panic!("agents list route in {gitlab:?}"));
    assert_eq!(agents.1, 3);
    assert!(
        agents.0.contains('{'),
        "counted by template, not by path: {}",
        agents.0
    );
}

#[tokio::test]
async fn faults_inject_429_5xx_latency_and_resets() {
    let sandbox = SandboxProcess::start(&[]);
    let rules = json!({"rules": [
        {"emulator": "gitlab", "method": "GET", "path": "/api/v4/projects/*/cluster_agents", "fault": "status", "status": 429, "retry_after": 2, "times": 1},
        {"emulator": "gitlab", "path": "/api/v4/projects/*/deploy_keys", "fault": "status", "status": 503},
        {"emulator": "gitlab", "path": "/api/v4/metadata", "fault": "latency", "latency_ms": 300},
        {"emulator": "kube", "path": "/version", "fault": "reset"}
    ]});
    let put = sandbox
        .admin(Method::PUT, "/faults")
        .json(&rules)
        .send()
        .await
        .expect("put faults");
    assert_eq!(put.status(), 200);

    let limited = gitlab_get(&sandbox, "/projects/fleet%2Fagents/cluster_agents").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    assert!(limited.headers().contains_key("ratelimit-reset"));
    let body: Value = limited.json().await.expect("json");
    assert!(body["message"].is_string(), "GitLab-style error body");
    let again = gitlab_get(&sandbox, "/projects/fleet%2Fagents/cluster_agents").await;
    assert_eq!(again.status(), 200, "times = 1 was used up");

    assert_eq!(
        gitlab_get(&sandbox, "/projects/fleet%2Fagents/deploy_keys")
            .await
            .status(),
        503
    );

    let started = Instant::now();
    assert_eq!(gitlab_get(&sandbox, "/metadata").await.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "latency was injected"
    );

    let reset = KubeApi::new(&sandbox)
        .request(Method::GET, "/version")
        .send()
        .await;
    assert!(reset.is_err(), "connection dropped without a response");

    let stats = sandbox.admin_json("/stats").await;
    assert_eq!(
        stats["faults"]["gitlab"]["GET /api/v4/projects/fleet%2Fagents/cluster_agents -> 429"],
        1
    );
    assert_eq!(stats["faults"]["kube"]["GET /version -> reset"], 1);

    let bad = sandbox
        .admin(Method::PUT, "/faults")
        .body(r#"{"rules":[{"path":"*","fault":"status","status":200}]}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status(), 400);
    sandbox
        .admin(Method::DELETE, "/faults")
        .send()
        .await
        .expect("clear");
    assert_eq!(
        gitlab_get(&sandbox, "/projects/fleet%2Fagents/deploy_keys")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn faults_can_be_given_at_start() {
    let spec = r#"{"rules":[{"emulator":"gitlab","path":"/api/v4/version","fault":"status","status":502}]}"#;
    let sandbox = SandboxProcess::start(&["--faults", spec]);
    assert_eq!(gitlab_get(&sandbox, "/version").await.status(), 502);
}

#[tokio::test]
async fn state_dir_keeps_the_world_across_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().display().to_string();
    let first = SandboxProcess::start(&["--state-dir", &state]);
    let token = first.url("gitlab_token");
    let created = first
        .gitlab(Method::POST, "/projects/fleet%2Fagents/cluster_agents")
        .json(&json!({"name": "persisted"}))
        .send()
        .await
        .expect("create agent");
    assert_eq!(created.status(), 201);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kept", "namespace": "default"}, "stringData": {"a": "b"}});
    let kube_created = KubeApi::new(&first)
        .request(Method::POST, "/api/v1/namespaces/default/secrets")
        .json(&secret)
        .send()
        .await
        .expect("create secret");
    assert_eq!(kube_created.status(), 201);
    // Killed, not stopped: what was written before must survive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);

    let second = SandboxProcess::start(&["--state-dir", &state]);
    assert_eq!(
        second.url("gitlab_token"),
        token,
        "credentials survive the restart"
    );
    let agents: Value = gitlab_get(&second, "/projects/fleet%2Fagents/cluster_agents")
        .await
        .json()
        .await
        .expect("json");
    assert!(
        agents
            .as_array()
            .expect("list")
            .iter()
            .any(|a| a["name"] == "persisted"),
        "{agents}"
    );
    let kept = KubeApi::new(&second)
        .request(Method::GET, "/api/v1/namespaces/default/secrets/kept")
        .send()
        .await
        .expect("get secret");
    assert_eq!(kept.status(), 200);
}

#[tokio::test]
async fn simulated_controllers_roll_out_deployments_and_mark_agent_tokens_used() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let agent: Value = sandbox
        .gitlab(Method::POST, "/projects/fleet%2Fagents/cluster_agents")
        .json(&json!({"name": "sim"}))
        .send()
        .await
        .expect("agent")
        .json()
        .await
        .expect("json");
    let agent_id = agent["id"].as_i64().expect("agent id");
    let tokens = format!("/projects/fleet%2Fagents/cluster_agents/{agent_id}/tokens");
    let created: Value = sandbox
        .gitlab(Method::POST, &tokens)
        .json(&json!({"name": "t1"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let (token_id, token_value) = (
        created["id"].as_i64().expect("id"),
        created["token"].as_str().expect("value").to_string(),
    );
    assert!(created["last_used_at"].is_null());

    let kube = KubeApi::new(&sandbox);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "agentk", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "agentk"}},
          "template": {"metadata": {"labels": {"app": "agentk"}},
            "spec": {"containers": [{"name": "agent", "image": "agentk:v1", "args": ["--token-file=/etc/agent/token"],
                       "volumeMounts": [{"name": "token", "mountPath": "/etc/agent"}]}],
                     "volumes": [{"name": "token", "secret": {"secretName": "agent-token"}}]}}}
    });
    let agentk = "/apis/apps/v1/namespaces/default/deployments/agentk";
    kube.apply(agentk, &deployment).await;

    // Without its Secret the rollout cannot finish.
    eventually("deployment reports missing secret", || async {
        kube.get(agentk).await["status"]["conditions"][0]["status"] == "False"
    })
    .await;

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent-token", "namespace": "default"},
                        "stringData": {"token": token_value}});
    kube.apply("/api/v1/namespaces/default/secrets/agent-token", &secret)
        .await;
    eventually("deployment available", || async {
        let d = kube.get(agentk).await;
        d["status"]["availableReplicas"] == 2 && d["status"]["conditions"][0]["status"] == "True"
    })
    .await;
    eventually("agent token marked used", || async {
        let t: Value = sandbox
            .gitlab(Method::GET, &format!("{tokens}/{token_id}"))
            .send()
            .await
            .expect("get token")
            .json()
            .await
            .expect("json");
        !t["last_used_at"].is_null()
    })
    .await;
}

#[tokio::test]
async fn simulated_controllers_make_flux_objects_ready() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let kube = KubeApi::new(&sandbox);
    let crds =
        std::fs::read_to_string(flux_fixture_path("gotk-components.yaml")).expect("Flux fixture");
    // Apply only the two CRDs this test needs, then objects of those kinds.
    for doc in crds.split("\n---\n") {
        let Ok(obj) = serde_yaml_ng::from_str::<Value>(doc) else {
            continue;
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        if obj["kind"] == "CustomResourceDefinition"
            && (name == "gitrepositories.source.toolkit.fluxcd.io"
                || name == "kustomizations.kustomize.toolkit.fluxcd.io")
        {
            kube.apply(
                &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
                &obj,
            )
            .await;
        }
    }
    let objects = [
        (
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/repo",
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "repo", "namespace": "default",
                             "annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}},
                "spec": {"interval": "1m", "url": "https://gitlab.example.com/fleet/gitops.git", "ref": {"branch": "main"}}}),
        ),
        (
            "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/default/kustomizations/apps",
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "apps", "namespace": "default"},
                "spec": {"interval": "10m", "path": "./apps", "prune": true,
                         "sourceRef": {"kind": "GitRepository", "name": "repo"}}}),
        ),
    ];
    for (path, body) in &objects {
        kube.apply(path, body).await;
    }
    let repo = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/repo";
    eventually("GitRepository ready with an artifact", || async {
        let repo = kube.get(repo).await;
        repo["status"]["conditions"][0]["status"] == "True"
            && repo["status"]["artifact"]["revision"]
                .as_str()
                .is_some_and(|r| r.starts_with("main@sha1:"))
            && repo["status"]["lastHandledReconcileAt"] == "now-1"
    })
    .await;
    eventually("Kustomization ready at the source revision", || async {
        let repo = kube.get(repo).await;
        let ks = kube
            .get("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/default/kustomizations/apps")
            .await;
        ks["status"]["conditions"][0]["status"] == "True"
            && ks["status"]["lastAppliedRevision"] == repo["status"]["artifact"]["revision"]
    })
    .await;
}

#[test]
fn bad_arguments_explain_usage() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitlabflux-sandbox"))
        .args(["serve", "--listen", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitlabflux-sandbox"))
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: gitlabflux-sandbox serve"));
}
