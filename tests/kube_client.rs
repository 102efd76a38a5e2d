//! The Kubernetes client layer as resources use it, through the crate's public API only:
//! a provider-wide [`Clusters`] pool, server-side apply, Secret keys, restart and rollout wait
//! against the in-process sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use terraform_provider_gitlabflux::kube::ClusterSettings;
use terraform_provider_gitlabflux::kube::{Clusters, KubeError, ObjRef, SecretMeta};
use terraform_provider_gitlabflux::sandbox::{Sandbox, SandboxOptions};
use terraform_provider_gitlabflux::secret::Secret;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_resource_lifecycle_through_the_public_api() {
    let sb = Sandbox::start(SandboxOptions {
        simulate_controllers: true,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let default = ClusterSettings {
        config_path: Some(sb.info.kubeconfig.clone()),
        ..ClusterSettings::default()
    };
    let clusters = Clusters::new(Some(default), CancellationToken::new());
    let kube = clusters.client(None).await.expect("client");

    let labels = SecretMeta {
        labels: BTreeMap::from([("app".to_string(), "agentk".to_string())]),
        annotations: BTreeMap::new(),
    };
    kube.write_secret_key(
        "default",
        "agent-token",
        "token",
        &Secret::new("glagent-x"),
        &labels,
    )
    .await
    .expect("token secret");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "agentk", "namespace": "default" },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "agentk" } },
            "template": { "metadata": { "labels": { "app": "agentk" } },
                "spec": { "containers": [{ "name": "agentk", "image": "agentk:1" }],
                          "volumes": [{ "name": "t", "secret": { "secretName": "agent-token" } }] } } }
    });
    kube.apply(&deployment, false).await.expect("apply");
    kube.restart("Deployment", "default", "agentk")
        .await
        .expect("restart");
    kube.wait_deployment_ready("default", "agentk", Duration::from_secs(20))
        .await
        .expect("ready");
    let token = kube
        .read_secret_key("default", "agent-token", "token")
        .await
        .expect("read");
    assert_eq!(token.as_ref().map(Secret::expose), Some("glagent-x"));

    let r = ObjRef::new("apps/v1", "Deployment", Some("default"), "agentk");
    kube.delete(&r).await.expect("delete");
    assert_eq!(kube.get(&r).await.expect("get"), None);
    let err: KubeError = kube
        .apply(&json!({ "apiVersion": "v1", "kind": "ConfigMap" }), false)
        .await
        .expect_err("no name");
    assert!(err.detail().contains("metadata.name"));
}
