//! The Kubernetes emulator against the real `kubectl` (v1.32): server-side apply of the Flux
//! v2.8.5 install manifests, field-manager conflicts, label selectors, CRD-defined kinds and
//! namespace deletion. kubectl sends bearer tokens over TLS only, so the emulator is served
//! over HTTPS with a throw-away certificate that the kubeconfig trusts.
//! These tests never skip: without `kubectl` on PATH they fail with a clear message.

mod common;

use std::process::Output;
use std::sync::Arc;

use common::{Kubectl, flux_fixture_path as fixture};
use serde_json::Value;
use terraform_provider_gitlabflux::sandbox::kube::{
    KubeConfig, KubeEmulator, ObjectRef, TlsIdentity,
};

/// An emulator served over HTTPS on loopback, with a kubeconfig and a private kubectl cache.
struct Cluster {
    emu: Arc<KubeEmulator>,
    dir: tempfile::TempDir,
    kubectl: Kubectl,
    _rt: tokio::runtime::Runtime,
}

impl Cluster {
    /// Trusts the emulator's certificate through `certificate-authority-data`.
    fn start() -> Self {
        Self::serve(true, "kubectl-test-token")
    }

    /// `ca`: trust the certificate (else `insecure-skip-tls-verify`); `token`: the client's.
    fn serve(ca: bool, token: &str) -> Self {
        common::require_kubectl();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let emu = KubeEmulator::new(KubeConfig {
            bearer_token: "kubectl-test-token".into(),
        });
        let tls = TlsIdentity::generate().unwrap();
        let tcp = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("https://{}", tcp.local_addr().unwrap());
        let config = emu
            .kubeconfig_with_ca(&url, ca.then_some(tls.cert_pem.as_str()))
            .replace("kubectl-test-token", token);
        let router = emu.router();
        rt.spawn(async move { axum::serve(tls.listener(tcp), router).await });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), config).unwrap();
        let kubectl =
            Kubectl::new(dir.path().join("kubeconfig")).with_cache_dir(dir.path().join("cache"));
        Self {
            emu,
            dir,
            kubectl,
            _rt: rt,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kubectl.run(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.kubectl.ok(args)
    }

    fn install_flux(&self) {
        let path = fixture("gotk-components.yaml");
        let out = self.ok(&["apply", "--server-side", "-f", path.to_str().unwrap()]);
        assert!(
            out.contains("deployment.apps/source-controller serverside-applied"),
            "{out}"
        );
    }
}

fn lines(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v.sort();
    v
}

#[test]
fn flux_install_lists_the_four_controllers() {
    let c = Cluster::start();
    c.install_flux();
    let names = c.ok(&["get", "deploy", "-n", "flux-system", "-o", "name"]);
    assert_eq!(
        lines(&names),
        vec![
            "deployment.apps/helm-controller",
            "deployment.apps/kustomize-controller",
            "deployment.apps/notification-controller",
            "deployment.apps/source-controller",
        ]
    );
    let table = c.ok(&["get", "deploy", "-n", "flux-system"]);
    assert!(table.starts_with("NAME"), "{table}");
    // Re-applying the same manifests changes nothing.
    let before = c.emu.version();
    c.install_flux();
    assert_eq!(
        c.emu.version(),
        before,
        "a repeated server-side apply must be a no-op"
    );
}

#[test]
fn crds_become_established_and_their_kinds_are_served() {
    let c = Cluster::serve(false, "kubectl-test-token");
    c.install_flux();
    for crd in [
        "gitrepositories.source.toolkit.fluxcd.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
    ] {
        let established = c.ok(&[
            "get",
            "crd",
            crd,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ]);
        assert_eq!(established, "True", "{crd}");
    }
    let waited = c.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=10s",
        "crd/gitrepositories.source.toolkit.fluxcd.io",
    ]);
    assert!(waited.contains("condition met"), "{waited}");
    let sync = fixture("gotk-sync.yaml");
    c.ok(&["apply", "--server-side", "-f", sync.to_str().unwrap()]);
    let kinds = c.ok(&[
        "get",
        "gitrepositories,kustomizations",
        "-n",
        "flux-system",
        "-o",
        "name",
    ]);
    assert_eq!(
        lines(&kinds),
        vec![
            "gitrepository.source.toolkit.fluxcd.io/flux-system",
            "kustomization.kustomize.toolkit.fluxcd.io/flux-system",
        ]
    );
    let obj: Value = serde_json::from_str(&c.ok(&[
        "get",
        "gitrepository",
        "flux-system",
        "-n",
        "flux-system",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(obj["kind"], "GitRepository");
    assert!(obj["spec"]["url"].is_string());
    let r = ObjectRef {
        api_version: "source.toolkit.fluxcd.io/v1".into(),
        kind: "GitRepository".into(),
        namespace: Some("flux-system".into()),
        name: "flux-system".into(),
    };
    assert!(c.emu.get(&r).is_some());
}

#[test]
fn second_field_manager_conflicts_unless_forced() {
    let c = Cluster::start();
    c.install_flux();
    let patch = c.dir.path().join("replicas.yaml");
    std::fs::write(
        &patch,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: source-controller\n  namespace: flux-system\nspec:\n  replicas: 3\n",
    )
    .unwrap();
    let p = patch.to_str().unwrap();
    let out = c.run(&["apply", "--server-side", "--field-manager=other", "-f", p]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "conflicting apply must fail");
    assert!(
        stderr.contains("conflict with \"kubectl\": .spec.replicas"),
        "{stderr}"
    );
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        p,
    ]);
    let replicas = c.ok(&[
        "get",
        "deploy",
        "source-controller",
        "-n",
        "flux-system",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "3");
    let managers = c.ok(&[
        "get",
        "deploy",
        "source-controller",
        "-n",
        "flux-system",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert_eq!(managers, "kubectl other");
}

#[test]
fn label_selectors_filter_gets() {
    let c = Cluster::start();
    c.install_flux();
    let one = c.ok(&[
        "get",
        "deploy",
        "-n",
        "flux-system",
        "-l",
        "app.kubernetes.io/component=source-controller",
        "-o",
        "name",
    ]);
    assert_eq!(lines(&one), vec!["deployment.apps/source-controller"]);
    let set = c.ok(&[
        "get",
        "deploy",
        "-A",
        "-l",
        "app.kubernetes.io/component in (helm-controller,kustomize-controller)",
        "-o",
        "name",
    ]);
    assert_eq!(
        lines(&set),
        vec![
            "deployment.apps/helm-controller",
            "deployment.apps/kustomize-controller"
        ]
    );
    let none = c.ok(&[
        "get",
        "deploy",
        "-n",
        "flux-system",
        "-l",
        "!control-plane",
        "-o",
        "name",
    ]);
    assert!(none.trim().is_empty(), "{none}");
    let not = c.ok(&[
        "get",
        "sa",
        "-n",
        "flux-system",
        "-l",
        "app.kubernetes.io/component!=helm-controller",
        "-o",
        "name",
    ]);
    assert_eq!(lines(&not).len(), 3, "{not}");
}

#[test]
fn deleting_the_namespace_removes_its_objects() {
    let c = Cluster::start();
    c.install_flux();
    let out = c.ok(&["delete", "ns", "flux-system", "--timeout=20s"]);
    assert!(out.contains("namespace \"flux-system\" deleted"), "{out}");
    let left = c.ok(&["get", "deploy,svc,sa", "-n", "flux-system", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
    assert!(
        c.emu
            .objects()
            .iter()
            .all(|o| o["metadata"]["namespace"] != "flux-system")
    );
    let out = c.run(&["get", "ns", "flux-system"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[test]
fn everyday_verbs_work() {
    let c = Cluster::start();
    // Typed create commands send protobuf bodies.
    c.ok(&["create", "namespace", "team-a"]);
    c.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "team-a",
        "--from-literal=mode=fast",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "team-a",
        "--from-literal=token=abc",
    ]);
    c.ok(&["label", "configmap", "settings", "-n", "team-a", "tier=web"]);
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "-n",
        "team-a",
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    let cm: Value =
        serde_json::from_str(&c.ok(&["get", "cm", "settings", "-n", "team-a", "-o", "json"]))
            .unwrap();
    assert_eq!(cm["data"]["mode"], "fast");
    assert_eq!(cm["data"]["extra"], "1");
    assert_eq!(cm["metadata"]["labels"]["tier"], "web");
    let token = c.ok(&[
        "get",
        "secret",
        "creds",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.data.token}",
    ]);
    assert_eq!(token, "YWJj");
    c.install_flux();
    c.ok(&[
        "scale",
        "deploy",
        "helm-controller",
        "-n",
        "flux-system",
        "--replicas=0",
    ]);
    let replicas = c.ok(&[
        "get",
        "deploy",
        "helm-controller",
        "-n",
        "flux-system",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "0");
    c.ok(&["delete", "configmap", "settings", "-n", "team-a"]);
    let out = c.run(&["get", "configmap", "settings", "-n", "team-a"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn wrong_token_is_rejected() {
    let c = Cluster::serve(true, "not-the-token");
    let out = c.run(&["get", "ns"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("provide credentials") || stderr.contains("Unauthorized"),
        "{stderr}"
    );
}
