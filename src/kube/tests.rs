//! Tests of the client layer against the in-process sandbox (Kubernetes API emulator with
//! simulated controllers and fault injection).

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use ::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::kube::settings::ClusterSettings;
use crate::sandbox::faults::{Fault, FaultRule, FaultSpec, When};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::secret::Secret;

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        simulate_controllers: true,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn kubeconfig_settings(sb: &Sandbox) -> ClusterSettings {
    ClusterSettings {
        config_path: Some(sb.info.kubeconfig.clone()),
        config_context: Some("sandbox".into()),
        ..ClusterSettings::default()
    }
}

fn sandbox_kubeconfig(sb: &Sandbox) -> Value {
    let text = std::fs::read_to_string(&sb.info.kubeconfig).expect("kubeconfig");
    serde_yaml_ng::from_str(&text).expect("kubeconfig YAML")
}

fn sandbox_token(sb: &Sandbox) -> String {
    sandbox_kubeconfig(sb)["users"][0]["user"]["token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// The CA the sandbox's kubeconfig trusts, as PEM, when it serves HTTPS with one.
fn sandbox_ca(sb: &Sandbox) -> Option<String> {
    use base64::Engine as _;
    let doc = sandbox_kubeconfig(sb);
    let data = doc["clusters"][0]["cluster"]["certificate-authority-data"].as_str()?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    String::from_utf8(pem).ok()
}

/// Explicit host settings, verifying the sandbox's certificate with `cluster_ca_certificate`
/// when it serves HTTPS.
fn host_settings(sb: &Sandbox, token: &str) -> ClusterSettings {
    let ca = sandbox_ca(sb);
    ClusterSettings {
        host: Some(sb.info.kube_url.clone()),
        token: Some(Secret::new(token)),
        insecure: ca.is_none() && sb.info.kube_url.starts_with("https://"),
        cluster_ca_certificate: ca,
        ..ClusterSettings::default()
    }
}

async fn client(sb: &Sandbox) -> KubeClient {
    KubeClient::connect(&kubeconfig_settings(sb), CancellationToken::new())
        .await
        .expect("connects")
}

fn config_map(name: &str, data: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": name, "namespace": "default", "labels": { "app": "demo" } },
            "data": data })
}

fn deployment(name: &str, secret: Option<&str>) -> Value {
    let mut pod = json!({ "containers": [{ "name": "app", "image": "example/app:1" }] });
    if let Some(secret) = secret {
        pod["volumes"] = json!([{ "name": "token", "secret": { "secretName": secret } }]);
    }
    json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": name, "namespace": "default" },
            "spec": { "replicas": 1,
                      "selector": { "matchLabels": { "app": name } },
                      "template": { "metadata": { "labels": { "app": name } }, "spec": pod } } })
}

fn rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn default_ns() -> ObjRef {
    ObjRef::new("v1", "Namespace", None, "default")
}

#[tokio::test]
async fn connects_from_kubeconfig_and_from_host_token() {
    let sb = sandbox().await;
    let from_file = client(&sb).await;
    assert_eq!(from_file.host(), sb.info.kube_url);
    assert!(from_file.get(&default_ns()).await.expect("get").is_some());

    let from_host = KubeClient::connect(
        &host_settings(&sb, &sandbox_token(&sb)),
        CancellationToken::new(),
    )
    .await
    .expect("connects");
    assert!(from_host.get(&default_ns()).await.expect("get").is_some());
}

#[tokio::test]
async fn wrong_token_is_unauthorized_without_leaking_it() {
    let sb = sandbox().await;
    let c = KubeClient::connect(
        &host_settings(&sb, "wrong-token-123"),
        CancellationToken::new(),
    )
    .await
    .expect("connects");
    let err = c.get(&default_ns()).await.expect_err("401");
    assert_eq!(
        err,
        KubeError::Unauthorized {
            host: sb.info.kube_url.clone()
        }
    );
    let text = format!("{} {} {err}", err.summary(), err.detail());
    assert!(
        text.contains(&sb.info.kube_url) && text.contains("cluster.token"),
        "{text}"
    );
    assert!(!text.contains("wrong-token-123"));
}

#[tokio::test]
async fn untrusted_certificate_points_at_the_ca_setting() {
    let sb = sandbox().await;
    if !sb.info.kube_url.starts_with("https://") {
        return; // Plain-HTTP sandbox: no certificate to distrust.
    }
    let settings = ClusterSettings {
        cluster_ca_certificate: None,
        insecure: false,
        ..host_settings(&sb, &sandbox_token(&sb))
    };
    let c = KubeClient::connect(&settings, CancellationToken::new())
        .await
        .expect("connects lazily");
    let err = c.get(&default_ns()).await.expect_err("untrusted");
    assert!(matches!(err, KubeError::Unreachable { .. }), "{err:?}");
    assert!(
        err.detail().contains("cluster_ca_certificate"),
        "{}",
        err.detail()
    );
}

/// An exec credential plugin (a shell script) that prints `token`.
fn exec_plugin(dir: &std::path::Path, token: &str) -> crate::kube::settings::ExecSettings {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("credential-plugin");
    let credential = json!({ "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential", "status": { "token": token } });
    std::fs::write(&path, format!("#!/bin/sh\necho '{credential}'\n")).expect("plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    crate::kube::settings::ExecSettings {
        api_version: "client.authentication.k8s.io/v1".into(),
        command: path.to_string_lossy().into_owned(),
        args: Vec::new(),
        env: Vec::new(),
    }
}

#[tokio::test]
async fn exec_plugins_supply_credentials() {
    let sb = sandbox().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ClusterSettings {
        token: None,
        exec: Some(exec_plugin(dir.path(), &sandbox_token(&sb))),
        ..host_settings(&sb, "")
    };
    let c = KubeClient::connect(&settings, CancellationToken::new())
        .await
        .expect("connects");
    assert!(c.get(&default_ns()).await.expect("get").is_some());

    let broken = ClusterSettings {
        exec: Some(crate::kube::settings::ExecSettings {
            command: dir.path().join("missing").to_string_lossy().into_owned(),
            ..exec_plugin(dir.path(), "x")
        }),
        ..settings
    };
    // kube-rs runs the plugin when the client is built.
    let err = KubeClient::connect(&broken, CancellationToken::new())
        .await
        .expect_err("plugin missing");
    assert!(matches!(err, KubeError::Config { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_host_is_reported() {
    // Bind then drop a listener, so the port is (very likely) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let settings = ClusterSettings {
        host: Some(format!("http://127.0.0.1:{port}")),
        token: Some(Secret::new("t")),
        ..ClusterSettings::default()
    };
    let c = KubeClient::connect(&settings, CancellationToken::new())
        .await
        .expect("connects lazily");
    let err = c.get(&default_ns()).await.expect_err("refused");
    let KubeError::Unreachable {
        host,
        request,
        message,
    } = &err
    else {
        panic!("expected Unreachable, got {err:?}");
    };
    assert_eq!(host, &format!("http://127.0.0.1:{port}"));
    // A core kind needs no discovery: the get itself is the request that failed.
    assert_eq!(
        request, "get Namespace default",
        "the error names the request"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(
        err.detail()
            .starts_with("Cannot reach the Kubernetes API at http://127.0.0.1")
    );
}

#[tokio::test]
async fn apply_creates_is_idempotent_and_updates() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let created = c
        .apply(&config_map("settings", json!({ "a": "1" })), false)
        .await
        .expect("create");
    assert_eq!(created["data"]["a"], "1");
    assert_eq!(created["kind"], "ConfigMap");

    let again = c
        .apply(&config_map("settings", json!({ "a": "1" })), false)
        .await
        .expect("re-apply");
    assert_eq!(rv(&again), rv(&created), "a no-op apply must not write");

    let updated = c
        .apply(&config_map("settings", json!({ "a": "2" })), false)
        .await
        .expect("update");
    assert_eq!(updated["data"]["a"], "2");
    assert_ne!(rv(&updated), rv(&created));
    let managers: Vec<&str> = updated["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&FIELD_MANAGER), "{managers:?}");
}

fn crd(plural: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": format!("{plural}.example.com") },
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": { "plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List") },
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
        }
    })
}

fn custom(kind: &str, name: &str) -> Value {
    json!({ "apiVersion": "example.com/v1", "kind": kind,
            "metadata": { "name": name, "namespace": "default" }, "spec": { "size": 3 } })
}

#[tokio::test]
async fn custom_kinds_are_found_after_their_crd_is_applied() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let err = c
        .apply(&custom("Widget", "w"), false)
        .await
        .expect_err("no CRD yet");
    assert!(matches!(err, KubeError::UnknownKind { .. }), "{err:?}");

    c.apply(&crd("widgets", "Widget"), false)
        .await
        .expect("CRD");
    let w = c
        .apply(&custom("Widget", "w"), false)
        .await
        .expect("widget");
    assert_eq!(w["spec"]["size"], 3);

    // example.com/v1 is now cached without Gadget: the miss must refresh it.
    c.apply(&crd("gadgets", "Gadget"), false)
        .await
        .expect("CRD 2");
    let g = c
        .apply(&custom("Gadget", "g"), false)
        .await
        .expect("gadget");
    assert_eq!(g["kind"], "Gadget");
    let listed = c
        .list("example.com/v1", "Gadget", Some("default"), None)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn parallel_lookups_share_one_discovery_request() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    sb.stats.reset();
    // Events: a kind the client has to discover (core kinds it writes need no discovery).
    let events = (0..8).map(|i| {
        json!({ "apiVersion": "v1", "kind": "Event",
                "metadata": { "name": format!("ev-{i}"), "namespace": "default" } })
    });
    let applies = events.map(|cm| {
        let c = c.clone();
        async move { c.apply(&cm, false).await }
    });
    for applied in futures_util::future::join_all(applies).await {
        applied.expect("event");
    }
    let discovery = sb.stats.snapshot()["kube"]["GET /api/v1"].as_u64();
    assert_eq!(discovery, Some(1), "{:#}", sb.stats.snapshot()["kube"]);
}

#[tokio::test]
async fn conflicts_name_the_other_manager_and_force_takes_over() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
    let other: Api<DynamicObject> =
        Api::namespaced_with(c.raw().clone(), "default", &ApiResource::from_gvk(&gvk));
    other
        .patch(
            "shared",
            &PatchParams::apply("other-tool"),
            &Patch::Apply(config_map("shared", json!({ "key": "theirs" }))),
        )
        .await
        .expect("other manager applies");

    let ours = config_map("shared", json!({ "key": "ours" }));
    let err = c.apply(&ours, false).await.expect_err("conflict");
    let KubeError::Conflict { object, message } = &err else {
        panic!("expected Conflict, got {err:?}");
    };
    assert_eq!(object, "ConfigMap default/shared");
    assert!(
        message.contains("\"other-tool\"") && message.contains("data.key"),
        "{message}"
    );

    let forced = c.apply(&ours, true).await.expect("force");
    assert_eq!(forced["data"]["key"], "ours");
}

#[tokio::test]
async fn get_list_delete_and_not_found() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let missing = ObjRef::new("v1", "ConfigMap", Some("default"), "missing");
    assert_eq!(c.get(&missing).await.expect("get"), None);
    c.delete(&missing)
        .await
        .expect("deleting a missing object is fine");

    c.apply(&config_map("one", json!({})), false)
        .await
        .expect("one");
    let mut two = config_map("two", json!({}));
    two["metadata"]["labels"]["app"] = json!("other");
    c.apply(&two, false).await.expect("two");

    let demo = c
        .list("v1", "ConfigMap", Some("default"), Some("app=demo"))
        .await
        .expect("list");
    let names: Vec<&str> = demo
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["one"]);
    assert!(
        demo.iter()
            .all(|o| o["kind"] == "ConfigMap" && o["apiVersion"] == "v1")
    );
    let everywhere = c.list("v1", "ConfigMap", None, None).await.expect("all");
    assert!(everywhere.len() >= 2);

    let one = ObjRef::new("v1", "ConfigMap", Some("default"), "one");
    c.delete(&one).await.expect("delete");
    assert_eq!(c.get(&one).await.expect("get"), None);

    let gone_kind = ObjRef::new("example.com/v1", "Nothing", Some("default"), "x");
    c.delete(&gone_kind)
        .await
        .expect("a kind no longer served has nothing to delete");
    let err = c
        .list("example.com/v1", "Nothing", None, None)
        .await
        .expect_err("unknown kind");
    assert!(
        err.detail().contains("CustomResourceDefinition"),
        "{}",
        err.detail()
    );
}

#[tokio::test]
async fn secret_keys_are_written_without_touching_other_keys() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let labels = crate::kube::SecretMeta {
        labels: BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_string(),
            "gitlabflux".to_string(),
        )]),
        annotations: BTreeMap::new(),
    };
    assert_eq!(
        c.read_secret_key("default", "creds", "a")
            .await
            .expect("read"),
        None
    );

    c.write_secret_key("default", "creds", "a", &Secret::new("alpha"), &labels)
        .await
        .expect("write a");
    c.write_secret_key("default", "creds", "b", &Secret::new("beta"), &labels)
        .await
        .expect("write b");
    c.write_secret_key("default", "creds", "a", &Secret::new("alpha-2"), &labels)
        .await
        .expect("rewrite a");

    let read = |key: &'static str| {
        let c = c.clone();
        async move {
            c.read_secret_key("default", "creds", key)
                .await
                .expect("read")
        }
    };
    assert_eq!(read("a").await, Some(Secret::new("alpha-2")));
    assert_eq!(read("b").await, Some(Secret::new("beta")));
    assert_eq!(read("c").await, None);
    let secret = c
        .get(&ObjRef::new("v1", "Secret", Some("default"), "creds"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "gitlabflux"
    );
}

#[tokio::test]
async fn restart_stamps_the_pod_template() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let before = c
        .apply(&deployment("web", None), false)
        .await
        .expect("deployment");
    c.restart("Deployment", "default", "web")
        .await
        .expect("restart");
    let r = ObjRef::new("apps/v1", "Deployment", Some("default"), "web");
    let after = c.get(&r).await.expect("get").expect("exists");
    let stamp = &after["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT];
    assert!(stamp.is_string(), "{after}");
    let generation = |d: &Value| d["metadata"]["generation"].as_i64().unwrap_or(0);
    assert!(generation(&after) > generation(&before));

    // Re-applying the manifest keeps the stamp (no second rollout).
    let reapplied = c
        .apply(&deployment("web", None), false)
        .await
        .expect("re-apply");
    assert_eq!(
        &reapplied["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT],
        stamp
    );

    let err = c
        .restart("Pod", "default", "web")
        .await
        .expect_err("not restartable");
    assert!(matches!(err, KubeError::Invalid { .. }));
}

#[tokio::test]
async fn waits_for_rollouts_and_times_out_on_a_missing_secret() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    c.apply(&deployment("ready", None), false)
        .await
        .expect("deployment");
    c.wait_deployment_ready("default", "ready", Duration::from_secs(20))
        .await
        .expect("rolls out");

    c.apply(&deployment("stuck", Some("absent")), false)
        .await
        .expect("deployment");
    let err = c
        .wait_deployment_ready("default", "stuck", Duration::from_millis(1500))
        .await
        .expect_err("times out");
    let KubeError::Timeout { what } = &err else {
        panic!("expected Timeout, got {err:?}");
    };
    assert!(what.contains("Deployment default/stuck"), "{what}");
}

#[tokio::test]
async fn clusters_share_one_client_per_connection_and_prefer_the_override() {
    let sb = sandbox().await;
    let stop = CancellationToken::new();
    let unreachable = ClusterSettings {
        host: Some("http://127.0.0.1:9".into()),
        ..ClusterSettings::default()
    };
    let clusters = Clusters::new(Some(unreachable), stop.clone());
    let default = clusters.client(None).await.expect("default");
    assert_eq!(default.host(), "http://127.0.0.1:9");

    let over = kubeconfig_settings(&sb);
    let a = clusters.client(Some(&over)).await.expect("override");
    let b = clusters
        .client(Some(&over.clone()))
        .await
        .expect("override again");
    assert_eq!(a.host(), sb.info.kube_url);
    assert!(b.get(&default_ns()).await.expect("get").is_some());
    assert_eq!(clusters.len(), 2, "same settings share a client");

    let none = Clusters::new(None, stop);
    let err = none.client(None).await.expect_err("nothing configured");
    assert!(
        err.detail().contains("cluster attribute"),
        "{}",
        err.detail()
    );
}

fn fail_gets(times: u64) -> FaultSpec {
    FaultSpec {
        rules: vec![FaultRule {
            emulator: "kube".into(),
            method: "GET".into(),
            path: "/api/v1/namespaces/default*".into(),
            probability: 1.0,
            times: Some(times),
            when: When::Before,
            fault: Fault::Status {
                status: 503,
                retry_after: None,
            },
        }],
    }
}

/// How many kube requests were answered by an injected fault.
fn injected_faults(sb: &Sandbox) -> u64 {
    let snapshot = sb.stats.snapshot();
    snapshot["faults"]["kube"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

#[tokio::test]
async fn retries_through_transient_503s() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    sb.faults.replace(fail_gets(2));
    assert!(c.get(&default_ns()).await.expect("retried").is_some());
    assert_eq!(injected_faults(&sb), 2);

    sb.stats.reset();
    sb.faults.replace(fail_gets(100));
    let err = c.get(&default_ns()).await.expect_err("gives up");
    assert!(matches!(err, KubeError::Api { status: 503, .. }), "{err:?}");
    assert!(
        err.summary().ends_with("on get Namespace default"),
        "the summary names verb and object: {}",
        err.summary()
    );
    assert_eq!(injected_faults(&sb), 4, "a few attempts, then give up");
}

#[tokio::test]
async fn stopping_cancels_requests_and_waits() {
    let sb = sandbox().await;
    let stop = CancellationToken::new();
    let c = KubeClient::connect(&kubeconfig_settings(&sb), stop.clone())
        .await
        .expect("connects");
    c.apply(&deployment("never", Some("absent")), false)
        .await
        .expect("deployment");
    let canceller = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let err = c
        .wait_deployment_ready("default", "never", Duration::from_secs(60))
        .await
        .expect_err("cancelled");
    assert_eq!(err, KubeError::Cancelled);
    assert_eq!(c.get(&default_ns()).await, Err(KubeError::Cancelled));
}

#[tokio::test]
async fn recent_reads_are_shared_until_this_client_writes() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    let meta = crate::kube::SecretMeta::default();
    c.write_secret_key("default", "token", "t", &Secret::new("one"), &meta)
        .await
        .expect("write");
    let secret_gets = |sb: &Sandbox| {
        sb.stats.snapshot()["kube"]["GET /api/v1/namespaces/{namespace}/{resource}/{name}"]
            .as_u64()
            .unwrap_or(0)
    };
    sb.stats.reset();
    let (first, second) = tokio::join!(
        c.read_recent_secret_key("default", "token", "t"),
        c.read_recent_secret_key("default", "token", "t"),
    );
    assert_eq!(first.expect("read"), Some(Secret::new("one")));
    assert_eq!(second.expect("read"), Some(Secret::new("one")));
    assert_eq!(secret_gets(&sb), 1, "two readers, one GET");
    // A write through the client drops it: what an apply reads is what it wrote.
    c.write_secret_key("default", "token", "t", &Secret::new("two"), &meta)
        .await
        .expect("rewrite");
    assert_eq!(
        c.read_recent_secret_key("default", "token", "t")
            .await
            .expect("read"),
        Some(Secret::new("two"))
    );
    assert_eq!(secret_gets(&sb), 2);
}

/// However many reads wait at once, one client sends a cluster at most a couple at a time,
/// and so opens about as many connections: each would otherwise idle in the pool, TLS
/// session and buffers kept, for the provider's life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_opens_a_few_connections_however_many_reads_wait() {
    let sb = sandbox().await;
    let c = client(&sb).await;
    // Slow answers, so that the reads overlap.
    sb.faults.replace(FaultSpec {
        rules: vec![FaultRule {
            emulator: "kube".into(),
            method: "GET".into(),
            path: "/api/v1/namespaces/default/configmaps/*".into(),
            probability: 1.0,
            times: None,
            when: When::Before,
            fault: Fault::Latency { latency_ms: 20 },
        }],
    });
    sb.stats.reset();
    let c = &c;
    let names: Vec<String> = (0..16).map(|i| format!("absent-{i}")).collect();
    let reads = names
        .iter()
        .map(|name| ObjRef::new("v1", "ConfigMap", Some("default"), name.as_str()))
        .map(|r| async move { c.get(&r).await });
    for found in futures_util::future::join_all(reads).await {
        assert_eq!(found.expect("read"), None);
    }
    let stats = sb.stats.snapshot();
    let opened = stats["connections"]["kube"].as_u64().unwrap_or(0);
    // A connection can be opened while the last one is on its way back to the pool.
    let bound = 2 * super::client::IN_FLIGHT as u64;
    assert!(
        (1..=bound).contains(&opened),
        "{opened} connections: {stats}"
    );
}
