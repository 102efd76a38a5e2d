//! Flux bootstrap apply time against the sandbox: the provider's apply engine versus
//! `kubectl apply --server-side` of the same manifests (the v2.8.5 gotk-components.yaml: CRDs,
//! namespace, RBAC, controllers), each on a fresh sandbox. Prints medians.
//!
//!     cargo bench --bench flux_apply [-- RUNS]

use std::time::{Duration, Instant};

use terraform_provider_gitlabflux::kube::KubeClient;
use terraform_provider_gitlabflux::kube::engine::{ApplyOptions, apply_all};
use terraform_provider_gitlabflux::provider::ClusterSettings;
use terraform_provider_gitlabflux::sandbox::{Sandbox, SandboxOptions};
use tokio_util::sync::CancellationToken;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/flux/v2.8.5"
);

fn objects() -> Vec<serde_json::Value> {
    ["gotk-components.yaml"]
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(format!("{FIXTURE}/{f}")).expect("fixture");
            text.split("\n---")
                .filter_map(|doc| serde_yaml_ng::from_str::<serde_json::Value>(doc).ok())
                .filter(|v| v.is_object())
                .collect::<Vec<_>>()
        })
        .collect()
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
    let objects = objects();
    let mut ours = Vec::new();
    let mut kubectl = Vec::new();
    for _ in 0..runs {
        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox");
        let settings = ClusterSettings {
            config_path: Some(sandbox.info.kubeconfig.clone()),
            ..Default::default()
        };
        let client = KubeClient::connect(&settings, CancellationToken::new())
            .await
            .expect("connect");
        let options = ApplyOptions {
            force: true,
            wait: false,
            ..ApplyOptions::default()
        };
        let t = Instant::now();
        apply_all(&client, &objects, &options).await.expect("apply");
        ours.push(t.elapsed());
        sandbox.stop().await;

        let sandbox = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox");
        let t = Instant::now();
        let status = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&sandbox.info.kubeconfig)
            .args([
                "apply",
                "--server-side",
                "-f",
                &format!("{FIXTURE}/gotk-components.yaml"),
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .expect("kubectl");
        kubectl.push(t.elapsed());
        assert!(status.success(), "kubectl apply failed");
        sandbox.stop().await;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (a, b) = (median(ours), median(kubectl));
    println!("objects: {}, runs: {runs}", objects.len());
    println!("{:<40} {:>10}", "measurement", "median ms");
    println!(
        "{:<40} {:>10.1}",
        "gitlabflux apply engine (no wait)",
        ms(a)
    );
    println!("{:<40} {:>10.1}", "kubectl apply --server-side", ms(b));
    println!(
        "ratio ours/kubectl: {:.2}",
        a.as_secs_f64() / b.as_secs_f64()
    );
}
