//! The `gitlabflux-sandbox` contract: the JSON line, stop on stdin EOF or SIGTERM, the admin
//! API (stats, faults, dumps), `--state-dir` persistence and `--simulate-controllers`.

mod common;

use std::time::{Duration, Instant};

use common::SandboxProcess;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn kubeconfig(sandbox: &SandboxProcess) -> serde_yaml_ng::Value {
    let text = std::fs::read_to_string(sandbox.url("kubeconfig")).expect("kubeconfig");
    serde_yaml_ng::from_str(&text).expect("kubeconfig YAML")
}

/// The bearer token in the sandbox's kubeconfig.
fn kube_token(sandbox: &SandboxProcess) -> String {
    kubeconfig(sandbox)["users"][0]["user"]["token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A client for the Kubernetes API, which speaks HTTPS with the CA in the kubeconfig.
fn kube_client(sandbox: &SandboxProcess) -> reqwest::Client {
    use base64::Engine as _;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = kubeconfig(sandbox)["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 CA")
        })
        .expect("the kubeconfig carries the sandbox CA");
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM CA"))
        .build()
        .expect("client")
}

async fn gitlab_get(sandbox: &SandboxProcess, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}/api/v4{path}", sandbox.url("gitlab_url")))
        .header("PRIVATE-TOKEN", sandbox.url("gitlab_token"))
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
    let api: Value = kube_client(&sandbox)
        .get(format!("{}/api", sandbox.url("kube_url")))
        .bearer_auth(kube_token(&sandbox))
        .send()
        .await
        .expect("kube request")
        .json()
        .await
        .expect("json");
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
    let admin = sandbox.url("admin_url");
    client()
        .delete(format!("{admin}/stats"))
        .send()
        .await
        .expect("reset");
    for _ in 0..3 {
        gitlab_get(&sandbox, "/projects/fleet%2Fagents/cluster_agents").await;
    }
    gitlab_get(&sandbox, "/projects/fleet%2Fgitops").await;
    let stats: Value = client()
        .get(format!("{admin}/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
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
    let admin = sandbox.url("admin_url");
    let rules = json!({"rules": [
        {"emulator": "gitlab", "method": "GET", "path": "/api/v4/projects/*/cluster_agents", "fault": "status", "status": 429, "retry_after": 2, "times": 1},
        {"emulator": "gitlab", "path": "/api/v4/projects/*/deploy_keys", "fault": "status", "status": 503},
        {"emulator": "gitlab", "path": "/api/v4/metadata", "fault": "latency", "latency_ms": 300},
        {"emulator": "kube", "path": "/version", "fault": "reset"}
    ]});
    let put = client()
        .put(format!("{admin}/faults"))
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

    let reset = kube_client(&sandbox)
        .get(format!("{}/version", sandbox.url("kube_url")))
        .send()
        .await;
    assert!(reset.is_err(), "connection dropped without a response");

    let stats: Value = client()
        .get(format!("{admin}/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(
        stats["faults"]["gitlab"]["GET /api/v4/projects/fleet%2Fagents/cluster_agents -> 429"],
        1
    );
    assert_eq!(stats["faults"]["kube"]["GET /version -> reset"], 1);

    let bad = client()
        .put(format!("{admin}/faults"))
        .body(r#"{"rules":[{"path":"*","fault":"status","status":200}]}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status(), 400);
    client()
        .delete(format!("{admin}/faults"))
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
    let created = client()
        .post(format!(
            "{}/api/v4/projects/fleet%2Fagents/cluster_agents",
            first.url("gitlab_url")
        ))
        .header("PRIVATE-TOKEN", &token)
        .json(&json!({"name": "persisted"}))
        .send()
        .await
        .expect("create agent");
    assert_eq!(created.status(), 201);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kept", "namespace": "default"}, "stringData": {"a": "b"}});
    let kube_created = kube_client(&first)
        .post(format!(
            "{}/api/v1/namespaces/default/secrets",
            first.url("kube_url")
        ))
        .bearer_auth(kube_token(&first))
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
    let kept = kube_client(&second)
        .get(format!(
            "{}/api/v1/namespaces/default/secrets/kept",
            second.url("kube_url")
        ))
        .bearer_auth(kube_token(&second))
        .send()
        .await
        .expect("get secret");
    assert_eq!(kept.status(), 200);
}

#[tokio::test]
async fn simulated_controllers_roll_out_deployments_and_mark_agent_tokens_used() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let gitlab = format!(
        "{}/api/v4/projects/fleet%2Fagents",
        sandbox.url("gitlab_url")
    );
    let token = sandbox.url("gitlab_token");
    let agent: Value = client()
        .post(format!("{gitlab}/cluster_agents"))
        .header("PRIVATE-TOKEN", &token)
        .json(&json!({"name": "sim"}))
        .send()
        .await
        .expect("agent")
        .json()
        .await
        .expect("json");
    let agent_id = agent["id"].as_i64().expect("agent id");
    let created: Value = client()
        .post(format!("{gitlab}/cluster_agents/{agent_id}/tokens"))
        .header("PRIVATE-TOKEN", &token)
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

    let kube = sandbox.url("kube_url");
    let bearer = kube_token(&sandbox);
    let kc = kube_client(&sandbox);
    let apply = |path: String, body: Value| {
        let (client, bearer) = (kc.clone(), bearer.clone());
        async move {
            client
                .patch(format!("{path}?fieldManager=test&force=true"))
                .bearer_auth(bearer)
                .header("content-type", "application/apply-patch+yaml")
                .body(body.to_string())
                .send()
                .await
                .expect("apply")
        }
    };
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "agentk", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "agentk"}},
          "template": {"metadata": {"labels": {"app": "agentk"}},
            "spec": {"containers": [{"name": "agent", "image": "agentk:v1", "args": ["--token-file=/etc/agent/token"],
                       "volumeMounts": [{"name": "token", "mountPath": "/etc/agent"}]}],
                     "volumes": [{"name": "token", "secret": {"secretName": "agent-token"}}]}}}
    });
    let response = apply(
        format!("{kube}/apis/apps/v1/namespaces/default/deployments/agentk"),
        deployment,
    )
    .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );

    // Without its Secret the rollout cannot finish.
    let get_deploy = || {
        let (client, bearer, kube) = (kc.clone(), bearer.clone(), kube.clone());
        async move {
            client
                .get(format!(
                    "{kube}/apis/apps/v1/namespaces/default/deployments/agentk"
                ))
                .bearer_auth(bearer)
                .send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    eventually("deployment reports missing secret", || async {
        get_deploy().await["status"]["conditions"][0]["status"] == "False"
    })
    .await;

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent-token", "namespace": "default"},
                        "stringData": {"token": token_value}});
    let response = apply(
        format!("{kube}/api/v1/namespaces/default/secrets/agent-token"),
        secret,
    )
    .await;
    assert!(response.status().is_success());
    eventually("deployment available", || async {
        let d = get_deploy().await;
        d["status"]["availableReplicas"] == 2 && d["status"]["conditions"][0]["status"] == "True"
    })
    .await;
    eventually("agent token marked used", || async {
        let t: Value = client()
            .get(format!(
                "{gitlab}/cluster_agents/{agent_id}/tokens/{token_id}"
            ))
            .header("PRIVATE-TOKEN", &token)
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
    let kube = sandbox.url("kube_url");
    let bearer = kube_token(&sandbox);
    let kc = kube_client(&sandbox);
    let crds = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/flux/v2.8.5/gotk-components.yaml"
    ))
    .expect("Flux fixture");
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
            let r = kc
                .patch(format!("{kube}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}?fieldManager=test"))
                .bearer_auth(&bearer)
                .header("content-type", "application/apply-patch+yaml")
                .body(obj.to_string())
                .send()
                .await
                .expect("apply CRD");
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
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
        let r = kc
            .patch(format!("{kube}{path}?fieldManager=test"))
            .bearer_auth(&bearer)
            .header("content-type", "application/apply-patch+yaml")
            .body(body.to_string())
            .send()
            .await
            .expect("apply");
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
    let get = |path: &'static str| {
        let (client, bearer, kube) = (kc.clone(), bearer.clone(), kube.clone());
        async move {
            client
                .get(format!("{kube}{path}"))
                .bearer_auth(bearer)
                .send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    eventually("GitRepository ready with an artifact", || async {
        let repo =
            get("/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/repo").await;
        repo["status"]["conditions"][0]["status"] == "True"
            && repo["status"]["artifact"]["revision"]
                .as_str()
                .is_some_and(|r| r.starts_with("main@sha1:"))
            && repo["status"]["lastHandledReconcileAt"] == "now-1"
    })
    .await;
    eventually("Kustomization ready at the source revision", || async {
        let repo =
            get("/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories/repo").await;
        let ks = get("/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/default/kustomizations/apps")
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
