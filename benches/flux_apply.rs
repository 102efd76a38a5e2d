//! Flux bootstrap apply time against the sandbox: what a bootstrap's create does (the
//! ownership check of what exists, then the apply engine) versus
//! `kubectl apply --server-side` of the same manifests (the v2.8.5 gotk-components.yaml: CRDs,
//! namespace, RBAC, controllers), each on a fresh sandbox. Both timings start from the file on
//! disk and the kubeconfig: ours includes reading and parsing the YAML and connecting, as
//! kubectl's includes its process start, parsing and discovery. A third row times `kubectl get
//! namespaces` on the same sandbox: kubectl's fixed cost, for reading the ratio. Prints medians.
//!
//!     cargo bench --bench flux_apply [-- RUNS]

use std::time::{Duration, Instant};

use terraform_provider_gitlabflux::flux::manifest::parse_documents;
use terraform_provider_gitlabflux::kube::ClusterSettings;
use terraform_provider_gitlabflux::kube::KubeClient;
use terraform_provider_gitlabflux::kube::engine::{ApplyOptions, Lifecycle};
use terraform_provider_gitlabflux::sandbox::{Sandbox, SandboxOptions};
use tokio_util::sync::CancellationToken;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/flux/v2.8.5"
);

const COMPONENTS: &str = "gotk-components.yaml";

/// The fixture's objects, parsed the way the provider parses a distribution.
fn objects() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(format!("{FIXTURE}/{COMPONENTS}")).expect("fixture");
    parse_documents(&text).expect("the fixture parses")
}

fn kubectl(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    cmd
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let expected = objects().len();
    let cache = std::env::temp_dir().join(format!("flux-apply-bench-{}", std::process::id()));
    let mut ours = Vec::new();
    let mut kubectl_apply = Vec::new();
    let mut kubectl_floor = Vec::new();
    for _ in 0..runs {
        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox");
        let settings = ClusterSettings {
            config_path: Some(sandbox.info.kubeconfig.clone()),
            ..Default::default()
        };
        // What a bootstrap's create does: the ownership check, then the apply.
        let lifecycle = Lifecycle::owner(false, ApplyOptions::default().timeout, false);
        let t = Instant::now();
        let objects = objects();
        let client = KubeClient::connect(&settings, CancellationToken::new())
            .await
            .expect("connect");
        lifecycle.claim(&client, &objects).await.expect("claim");
        let inventory = lifecycle
            .apply(&client, &objects, &[])
            .await
            .expect("apply");
        ours.push(t.elapsed());
        assert_eq!(inventory.len(), expected);
        sandbox.stop().await;

        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox");
        let _ = std::fs::remove_dir_all(&cache);
        let path = format!("{FIXTURE}/{COMPONENTS}");
        let t = Instant::now();
        let out = kubectl(
            &sandbox.info.kubeconfig,
            &cache,
            &["apply", "--server-side", "-f", &path],
        )
        .output()
        .await
        .expect("kubectl");
        kubectl_apply.push(t.elapsed());
        assert!(out.status.success(), "kubectl apply failed");
        let applied = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(applied, expected, "kubectl applied every object");
        let _ = std::fs::remove_dir_all(&cache);
        let t = Instant::now();
        let status = kubectl(&sandbox.info.kubeconfig, &cache, &["get", "namespaces"])
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .expect("kubectl");
        kubectl_floor.push(t.elapsed());
        assert!(status.success());
        sandbox.stop().await;
    }
    let _ = std::fs::remove_dir_all(&cache);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (a, b, floor) = (median(ours), median(kubectl_apply), median(kubectl_floor));
    println!("objects: {expected}, runs: {runs}");
    println!("{:<48} {:>10}", "measurement", "median ms");
    println!(
        "{:<48} {:>10.1}",
        "gitlabflux: parse+connect+ownership check+apply",
        ms(a)
    );
    println!("{:<48} {:>10.1}", "kubectl apply --server-side -f", ms(b));
    println!(
        "{:<48} {:>10.1}",
        "kubectl get namespaces (kubectl's floor)",
        ms(floor)
    );
    println!(
        "ratio ours/kubectl: {:.2}",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
