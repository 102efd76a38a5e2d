//! The sandbox as a fleet (`--clusters`): independent Kubernetes worlds behind one listener,
//! one kubeconfig context each, simulated agentk in any cluster reporting to the one GitLab,
//! simulated Flux in any cluster answering `requestedAt`, per-cluster dumps and stats, and
//! `--state-dir` keeping every cluster. Driven with the real kubectl, as a user would.

mod common;

use std::time::{Duration, Instant};

use common::{SandboxProcess, flux_fixture_path};
use reqwest::Method;
use serde_json::{Value, json};

fn kubeconfig(sandbox: &SandboxProcess) -> Value {
    let text = std::fs::read_to_string(sandbox.url("kubeconfig")).expect("kubeconfig");
    serde_yaml_ng::from_str(&text).expect("kubeconfig YAML")
}

/// The bearer token of a kubeconfig user, by name.
fn token_of(config: &Value, user: &str) -> String {
    config["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["name"] == user)
        .and_then(|u| u["user"]["token"].as_str())
        .unwrap_or_else(|| panic!("no user {user}"))
        .to_string()
}

/// kubectl against one cluster of the fleet, by its context.
fn kubectl(sandbox: &SandboxProcess, context: &str, args: &[&str]) -> String {
    let mut all = vec!["--context", context];
    all.extend(args);
    sandbox.kubectl().ok(&all)
}

fn kubectl_json(sandbox: &SandboxProcess, context: &str, args: &[&str]) -> Option<Value> {
    let mut all = vec!["--context", context];
    all.extend(args);
    sandbox.kubectl().json(&all)
}

/// Applies `doc` (YAML or JSON) server-side in one cluster.
fn apply(sandbox: &SandboxProcess, context: &str, doc: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("doc.yaml");
    std::fs::write(&file, doc).expect("write");
    let file = file.display().to_string();
    kubectl(sandbox, context, &["apply", "--server-side", "-f", &file]);
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

/// One CRD of the Flux fixture, by its plural.
fn flux_crd(plural: &str) -> String {
    let all = std::fs::read_to_string(flux_fixture_path("gotk-components.yaml")).expect("fixture");
    all.split("\n---\n")
        .find(|doc| doc.contains(&format!("name: {plural}.source.toolkit.fluxcd.io")))
        .unwrap_or_else(|| panic!("no {plural} CRD in the fixture"))
        .to_string()
}

#[test]
fn a_fleet_is_independent_clusters_behind_one_gitlab() {
    let sandbox =
        SandboxProcess::start(&["--clusters", "eu-1,eu-2,us-1", "--simulate-controllers"]);
    let clusters = sandbox.info["clusters"].as_object().expect("clusters");
    assert_eq!(
        clusters.keys().collect::<Vec<_>>(),
        ["eu-1", "eu-2", "us-1"]
    );
    assert_eq!(sandbox.info["kube_url"], clusters["eu-1"]["kube_url"]);
    for (name, cluster) in clusters {
        assert_eq!(cluster["context"], name.as_str());
        assert!(
            cluster["kube_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("/clusters/{name}"))),
            "{cluster}"
        );
    }
    let config = kubeconfig(&sandbox);
    assert_eq!(config["current-context"], "eu-1");
    let tokens: Vec<String> = ["eu-1", "eu-2", "us-1"]
        .iter()
        .map(|c| token_of(&config, c))
        .collect();
    assert!(
        tokens[0] != tokens[1] && tokens[1] != tokens[2] && tokens[0] != tokens[2],
        "every cluster has its own credentials"
    );

    // Objects and kinds are per cluster.
    kubectl(&sandbox, "eu-2", &["create", "namespace", "team-a"]);
    assert!(kubectl_json(&sandbox, "eu-2", &["get", "namespace", "team-a"]).is_some());
    assert!(kubectl_json(&sandbox, "eu-1", &["get", "namespace", "team-a"]).is_none());
    apply(&sandbox, "us-1", &flux_crd("gitrepositories"));
    kubectl(&sandbox, "us-1", &["get", "gitrepositories", "-A"]);
    let out = sandbox
        .kubectl()
        .run(&["--context", "eu-1", "get", "gitrepositories"]);
    assert!(!out.status.success(), "the CRD exists in us-1 only");

    // One cluster's token opens no other cluster.
    let client = common::kube_https_client(
        config["clusters"][0]["cluster"]["certificate-authority-data"].as_str(),
    );
    let get = |url: &str, token: &str| {
        common::block_on(async {
            client
                .get(format!("{url}/api/v1/namespaces"))
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    };
    let eu2 = clusters["eu-2"]["kube_url"].as_str().expect("url");
    assert_eq!(get(eu2, &tokens[1]), 200);
    assert_eq!(get(eu2, &tokens[0]), 401);
    let nowhere = eu2.replace("/clusters/eu-2", "/clusters/ap-1");
    assert_eq!(get(&nowhere, &tokens[1]), 404);

    // The admin API dumps a cluster by name and counts requests per cluster.
    let objects = |query: &str| {
        common::block_on(async {
            let response = sandbox
                .admin(Method::GET, &format!("/kube/objects{query}"))
                .send()
                .await
                .expect("admin");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        })
    };
    let names = |dump: &Value| -> Vec<String> {
        dump["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(String::from))
            .collect()
    };
    assert!(names(&objects("?cluster=eu-2").1).contains(&"team-a".to_string()));
    assert!(!names(&objects("?cluster=us-1").1).contains(&"team-a".to_string()));
    assert!(
        !names(&objects("").1).contains(&"team-a".to_string()),
        "eu-1 by default"
    );
    assert_eq!(objects("?cluster=ap-1").0, 404);
    let stats = sandbox.stats();
    assert_eq!(
        stats["kube_clusters"]["eu-2"]["POST /api/v1/{resource}"], 1,
        "{stats}"
    );
    assert!(stats["kube"]["POST /api/v1/{resource}"].as_u64() >= Some(1));
}

#[test]
fn agentk_in_any_cluster_reports_to_the_one_gitlab_and_flux_answers_everywhere() {
    let sandbox = SandboxProcess::start(&["--clusters", "2", "--simulate-controllers"]);
    let gitlab = |method: Method, path: &str, body: Value| -> Value {
        common::block_on(async {
            sandbox
                .gitlab(method, path)
                .json(&body)
                .send()
                .await
                .expect("GitLab")
                .json()
                .await
                .expect("json")
        })
    };
    let agents = "/projects/fleet%2Fagents/cluster_agents";
    for cluster in ["cluster-1", "cluster-2"] {
        let agent = gitlab(Method::POST, agents, json!({ "name": cluster }));
        let tokens = format!("{agents}/{}/tokens", agent["id"]);
        let token = gitlab(Method::POST, &tokens, json!({ "name": "t" }));
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "agent-token", "namespace": "default"},
            "stringData": {"token": token["token"]}});
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "agentk", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "agentk"}},
              "template": {"metadata": {"labels": {"app": "agentk"}},
                "spec": {"containers": [{"name": "agent", "image": "agentk:v1"}],
                         "volumes": [{"name": "token", "secret": {"secretName": "agent-token"}}]}}}});
        apply(&sandbox, cluster, &secret.to_string());
        apply(&sandbox, cluster, &deployment.to_string());
        let token_path = format!("{tokens}/{}", token["id"]);
        eventually(&format!("{cluster}'s token marked used"), || {
            !gitlab(Method::GET, &token_path, json!({}))["last_used_at"].is_null()
        });
    }

    // Flux in cluster-2 answers a reconcile request; cluster-1 has no Flux at all.
    apply(&sandbox, "cluster-2", &flux_crd("gitrepositories"));
    let repo = json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "app", "namespace": "default",
                     "annotations": {"reconcile.fluxcd.io/requestedAt": "now-1"}},
        "spec": {"url": "https://example.com/app.git", "interval": "1m", "ref": {"branch": "main"}}});
    apply(&sandbox, "cluster-2", &repo.to_string());
    eventually("the reconcile request handled in cluster-2", || {
        kubectl_json(&sandbox, "cluster-2", &["get", "gitrepository", "app"])
            .is_some_and(|r| r["status"]["lastHandledReconcileAt"] == "now-1")
    });
}

#[test]
fn state_dir_keeps_every_cluster_and_refuses_another_fleet() {
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().display().to_string();
    let first = SandboxProcess::start(&["--clusters", "3", "--state-dir", &state]);
    let tokens = kubeconfig(&first)["users"].clone();
    kubectl(&first, "cluster-2", &["create", "namespace", "two"]);
    kubectl(&first, "cluster-3", &["create", "namespace", "three"]);
    // Killed, not stopped: what was written before must survive.
    std::thread::sleep(Duration::from_millis(300));
    drop(first);

    let second = SandboxProcess::start(&["--state-dir", &state]);
    let clusters = second.info["clusters"].as_object().expect("clusters");
    assert_eq!(clusters.len(), 3, "{clusters:?}");
    assert_eq!(
        kubeconfig(&second)["users"],
        tokens,
        "credentials survive the restart"
    );
    assert!(kubectl_json(&second, "cluster-2", &["get", "namespace", "two"]).is_some());
    assert!(kubectl_json(&second, "cluster-3", &["get", "namespace", "three"]).is_some());
    assert!(kubectl_json(&second, "cluster-1", &["get", "namespace", "two"]).is_none());
    drop(second);

    let other = std::process::Command::new(env!("CARGO_BIN_EXE_gitlabflux-sandbox"))
        .args(["serve", "--clusters", "4", "--state-dir", &state])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the sandbox");
    assert_eq!(other.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("holds the clusters [cluster-1,cluster-2,cluster-3]"),
        "{stderr}"
    );
}

#[test]
fn a_thousand_clusters_are_served() {
    let sandbox = SandboxProcess::start(&["--clusters", "1000", "--simulate-controllers"]);
    let config = kubeconfig(&sandbox);
    assert_eq!(config["contexts"].as_array().map(Vec::len), Some(1000));
    assert_eq!(
        sandbox.info["clusters"].as_object().map(|c| c.len()),
        Some(1000)
    );
    let out = kubectl(
        &sandbox,
        "cluster-1000",
        &["get", "namespaces", "-o", "name"],
    );
    assert!(out.contains("namespace/kube-system"), "{out}");
}

#[test]
fn bad_cluster_lists_are_refused() {
    for bad in ["0", "EU", "a,a", "a,,b"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gitlabflux-sandbox"))
            .args(["serve", "--clusters", bad])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the sandbox");
        assert_eq!(out.status.code(), Some(2), "--clusters {bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--clusters"),
            "{bad}"
        );
    }
}
