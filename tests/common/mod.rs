//! The shared harness of the integration tests:
//!
//! - [`Workspace`]: the real Terraform run against the provider built by `cargo test`
//!   (the machine's `terraform`, or 1.15.5 from [`terraform`]; [`on_both_terraforms!`] runs a
//!   test on each), through `dev_overrides` in a private `TF_CLI_CONFIG_FILE`, in a temporary
//!   directory per workspace, with plan, state and diagnostic readers.
//! - [`provider_block`] and [`Provider`]: the `provider "gitlabflux"` block, for a sandbox
//!   (its GitLab and its cluster) with settings added or overridden where a test needs them.
//! - [`SandboxProcess`]: a `gitlabflux-sandbox serve` process, with requests to its admin API
//!   (stats, the GitLab and Kubernetes dumps, users, registry settings) and its GitLab API.
//! - [`Kubectl`], [`kubectl`] and [`kubectl_json`]: the real `kubectl` against a cluster;
//!   [`flux_deployment`] and [`flux_controller_args`] read the Flux controllers with it.
//! - [`flux_fixture`] and [`flux_fixture_path`]: the Flux v2.8.5 distribution fixture.
//! - [`agents`]: the agent fleet configuration and readers of its tokens.
//! - [`clusters`]: a provider reaching the sandbox's cluster by `cluster_name` only.
//! - [`Workspace::apply_killed_when`] and [`SandboxProcess::set_faults`]: the drills' kills
//!   at a chosen step and faults by rule and count.
//! - [`http`] and [`block_on`]: the HTTP client and runtime for the sandbox's loopback APIs.
//!
//! Missing `terraform` or `kubectl` fails the run with a clear message: these tests never skip.

#![allow(dead_code)]

pub mod agents;
pub mod clusters;
pub mod terraform;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value as Json;

/// Declares each listed test twice, as `on_terraform_1_11::<name>` (the machine's
/// `terraform`) and `on_terraform_1_15::<name>` (Terraform 1.15.5): the listed functions
/// are the tests' bodies, without a `#[test]` of their own.
#[macro_export]
macro_rules! on_both_terraforms {
    ($($test:ident),+ $(,)?) => {
        $crate::on_terraform!(on_terraform_1_11, Machine, $($test),+);
        $crate::on_terraform!(on_terraform_1_15, V1_15, $($test),+);
    };
}

/// A module `$module` of tests, each running its body on the Terraform `$version`.
#[macro_export]
macro_rules! on_terraform {
    ($module:ident, $version:ident, $($test:ident),+) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    $crate::common::terraform::run_on(
                        $crate::common::terraform::Terraform::$version,
                        super::$test,
                    )
                }
            )+
        }
    };
}

/// The provider binary cargo built for this test run.
/// Go's name for this machine's architecture, as provider packages are named.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-gitlabflux"))
}

/// Fails the test run with a clear message when Terraform is missing: these tests never skip.
pub fn require_terraform() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    require_cli(
        &CHECKED,
        "terraform",
        &["version"],
        "The end-to-end tests need the `terraform` CLI (1.11 or later) on PATH",
        "Install Terraform and run the tests again.",
    );
}

/// Fails the test run with a clear message when kubectl is missing: these tests never skip.
pub fn require_kubectl() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    require_cli(
        &CHECKED,
        "kubectl",
        &["version", "--client"],
        "These tests need the real `kubectl` (v1.32) on PATH",
        "Install kubectl; the tests do not skip.",
    );
}

/// Runs `program <version_args>` once per test binary and panics with `need`, the failure
/// and `fix` when it cannot run.
fn require_cli(
    checked: &OnceLock<Result<(), String>>,
    program: &str,
    version_args: &[&str],
    need: &str,
    fix: &str,
) {
    let result = checked.get_or_init(|| match Command::new(program).args(version_args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            version_args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run `{program}`: {e}")),
    });
    if let Err(e) = result {
        panic!("{need}. {e}. {fix}");
    }
}

/// The outcome of one terraform command.
pub struct TfOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TfOutput {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Everything terraform printed, for assertions on messages.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A Terraform working directory wired to the local provider build.
pub struct Workspace {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

const HEADER: &str = r#"terraform {
  required_providers {
    gitlabflux = { source = "gitlabflux/gitlabflux" }
  }
}
"#;

impl Workspace {
    pub fn new() -> Self {
        require_terraform();
        let dir = tempfile::tempdir().expect("temp dir");
        let provider_dir = provider_binary()
            .parent()
            .expect("binary has a directory")
            .to_path_buf();
        let cli_config = dir.path().join("cli.tfrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"gitlabflux/gitlabflux\" = {:?}\n  }}\n  direct {{}}\n}}\n",
                provider_dir.display().to_string()
            ),
        )
        .expect("write CLI config");
        let env = vec![
            (
                "TF_CLI_CONFIG_FILE".into(),
                cli_config.display().to_string(),
            ),
            ("TF_IN_AUTOMATION".into(), "1".into()),
            ("TF_INPUT".into(), "0".into()),
            ("CHECKPOINT_DISABLE".into(), "1".into()),
        ];
        Self { dir, env }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A workspace that installs the built provider as a release is installed: from a
    /// filesystem mirror in the registry's layout, so `terraform init` (modules, backends)
    /// works, where `dev_overrides` skips installation.
    pub fn with_provider_mirror() -> Self {
        let mut ws = Self::new();
        let version = env!("CARGO_PKG_VERSION");
        let target = format!("{}_{}", std::env::consts::OS, go_arch());
        let mirror = ws.path().join("mirror");
        let dir = mirror
            .join("registry.terraform.io/gitlabflux/gitlabflux")
            .join(version)
            .join(target);
        std::fs::create_dir_all(&dir).expect("mirror dir");
        std::fs::copy(
            provider_binary(),
            dir.join(format!("terraform-provider-gitlabflux_v{version}")),
        )
        .expect("copy the provider into the mirror");
        let cli_config = ws.path().join("mirror.tfrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    include = [\"gitlabflux/gitlabflux\"]\n  }}\n  direct {{\n    exclude = [\"gitlabflux/gitlabflux\"]\n  }}\n}}\n",
                mirror.display().to_string()
            ),
        )
        .expect("write CLI config");
        ws.set_env("TF_CLI_CONFIG_FILE", &cli_config.display().to_string());
        ws
    }

    /// The environment every terraform command of this workspace runs with.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Sets an environment variable for every later terraform command (and so the provider).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Sends Terraform's trace log, the provider's lines included, to a file for every later
    /// command; returns the file's path.
    pub fn log_trace(&mut self) -> PathBuf {
        let log = self.path().join("tf.log");
        self.set_env("TF_LOG", "trace");
        self.set_env("TF_LOG_PATH", &log.display().to_string());
        log
    }

    /// Writes `main.tf`: the `required_providers` header followed by `body`.
    pub fn write(&self, body: &str) {
        std::fs::write(self.path().join("main.tf"), format!("{HEADER}\n{body}"))
            .expect("write main.tf");
    }

    /// Writes `main.tf` exactly as given (for examples that declare their own header).
    pub fn write_raw(&self, text: &str) {
        std::fs::write(self.path().join("main.tf"), text).expect("write main.tf");
    }

    pub fn run(&self, args: &[&str]) -> TfOutput {
        let mut cmd = terraform::command();
        cmd.args(args).current_dir(self.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        TfOutput::from(cmd.output().expect("run terraform"))
    }

    /// Runs a command that must succeed, with its output in the panic message otherwise.
    pub fn ok(&self, args: &[&str]) -> TfOutput {
        let out = self.run(args);
        assert!(
            out.success(),
            "terraform {} failed ({}):\n{}",
            args.join(" "),
            out.code,
            out.text()
        );
        out
    }

    /// Starts `terraform apply` in its own process group and kills the whole group (Terraform
    /// and the provider) with SIGKILL once `arrived` says the chosen step is reached (a hang
    /// fault holding that request, seen in the sandbox's stats). Panics if it never arrives.
    pub fn apply_killed_when(&self, arrived: impl Fn() -> bool) {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = terraform::command();
        cmd.args(["apply", "-auto-approve", "-no-color"])
            .current_dir(self.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start terraform apply");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !arrived() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("terraform apply ended ({status}) before the kill point");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "kill point never reached"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let group = format!("-{}", child.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .status()
            .expect("kill");
        assert!(killed.success(), "kill -KILL {group}");
        child.wait().expect("reap terraform");
    }

    pub fn apply(&self) -> TfOutput {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    pub fn destroy(&self) -> TfOutput {
        self.ok(&["destroy", "-auto-approve", "-no-color"])
    }

    /// Plans and returns `(address, actions)` for every resource change that is not a no-op.
    pub fn planned_changes(&self) -> Vec<(String, Vec<String>)> {
        self.ok(&["plan", "-no-color", "-out=tfplan"]);
        let plan = self.json(&["show", "-json", "tfplan"]);
        plan["resource_changes"]
            .as_array()
            .map(|changes| {
                changes
                    .iter()
                    .map(|c| {
                        let actions = c["change"]["actions"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (
                            c["address"].as_str().unwrap_or_default().to_string(),
                            actions,
                        )
                    })
                    .filter(|(_, actions): &(String, Vec<String>)| actions != &["no-op"])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The plan in Terraform's JSON form (after `planned_changes` or any `plan -out=tfplan`).
    pub fn plan_json(&self) -> Json {
        self.ok(&["plan", "-no-color", "-out=tfplan"]);
        self.json(&["show", "-json", "tfplan"])
    }

    /// Asserts that a plan reports no changes at all (exit code 0 of -detailed-exitcode).
    pub fn assert_no_changes(&self) {
        let out = self.run(&["plan", "-no-color", "-detailed-exitcode"]);
        assert_eq!(out.code, 0, "expected no changes, got:\n{}", out.text());
        assert!(out.stdout.contains("No changes."), "{}", out.stdout);
    }

    /// Asserts that a plan changes `address` alone, with the single action `action`
    /// (`create`, `update`, ...).
    pub fn assert_only_change(&self, address: &str, action: &str) {
        assert_eq!(
            self.planned_changes(),
            [(address.to_string(), vec![action.to_string()])]
        );
    }

    /// The error diagnostics of `terraform <args> -json`, from its machine-readable output,
    /// and the whole output for failure messages. Each diagnostic has `summary`, `detail`
    /// and, when Terraform could place it, `snippet.code` (the configuration line of the
    /// attribute the provider pointed at).
    pub fn errors(&self, args: &[&str]) -> (Vec<Json>, String) {
        let mut args = args.to_vec();
        args.extend(["-json", "-no-color"]);
        let out = self.run(&args);
        assert!(
            !out.success(),
            "terraform {} succeeded:\n{}",
            args.join(" "),
            out.text()
        );
        let errors = out
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Json>(line).ok())
            .filter(|m| m["type"] == "diagnostic" && m["diagnostic"]["severity"] == "error")
            .map(|m| m["diagnostic"].clone())
            .collect();
        (errors, out.text())
    }

    /// Asserts that `terraform <args>` fails with an error whose summary contains `summary`,
    /// and returns that diagnostic.
    pub fn error(&self, args: &[&str], summary: &str) -> Json {
        let (errors, text) = self.errors(args);
        errors
            .iter()
            .find(|d| d["summary"].as_str().is_some_and(|s| s.contains(summary)))
            .unwrap_or_else(|| panic!("no {summary:?} error in:\n{text}"))
            .clone()
    }

    /// [`Self::error`] of a plan.
    pub fn plan_error(&self, summary: &str) -> Json {
        self.error(&["plan"], summary)
    }

    /// Like [`Self::plan_error`], and asserts that Terraform placed the error on the
    /// configuration line containing `line_text`. Terraform 1.11 places diagnostics on
    /// top-level attributes only (a path into an object attribute is shown at the resource's
    /// opening brace), so nested paths are checked through the detail instead.
    pub fn assert_plan_error_at(&self, summary: &str, line_text: &str) -> Json {
        let found = self.plan_error(summary);
        let code = found["snippet"]["code"].as_str().unwrap_or_default();
        assert!(
            code.contains(line_text),
            "{summary:?} points at {code:?}, expected the line with {line_text:?}: {found:#}"
        );
        found
    }

    pub fn json(&self, args: &[&str]) -> Json {
        let out = self.ok(args);
        serde_json::from_str(&out.stdout).expect("terraform printed JSON")
    }

    /// Attribute values of a resource in the current state.
    pub fn resource(&self, address: &str) -> Json {
        let state = self.json(&["show", "-json"]);
        let resources = state["values"]["root_module"]["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        resources
            .into_iter()
            .find(|r| r["address"] == address)
            .map(|r| r["values"].clone())
            .unwrap_or_else(|| panic!("{address} not in state"))
    }

    pub fn outputs(&self) -> Json {
        self.json(&["output", "-json"])
    }

    /// The raw state file, for checks that secrets never reach it.
    pub fn state_file(&self) -> String {
        std::fs::read_to_string(self.path().join("terraform.tfstate")).unwrap_or_default()
    }
}

/// The `provider "gitlabflux"` block for `sandbox`: its GitLab (URL and root token) and its
/// cluster (kubeconfig).
pub fn provider_block(sandbox: &SandboxProcess) -> String {
    Provider::sandbox(sandbox).to_string()
}

/// A `provider "gitlabflux"` block, rendered by `Display`. [`Provider::sandbox`] is what
/// [`provider_block`] renders; `Provider::default()` configures nothing, for tests of the
/// provider's own configuration checks.
#[derive(Clone, Debug, Default)]
pub struct Provider {
    gitlab: Vec<(&'static str, Hcl)>,
    kubernetes: Vec<(&'static str, Hcl)>,
}

impl Provider {
    pub fn sandbox(sandbox: &SandboxProcess) -> Self {
        Self::default()
            .gitlab("base_url", sandbox.url("gitlab_url"))
            .gitlab("token", sandbox.url("gitlab_token"))
            .kubernetes("config_path", sandbox.url("kubeconfig"))
    }

    /// Sets a setting of the `gitlab` object, replacing one of the same name.
    pub fn gitlab(mut self, key: &'static str, value: impl Into<Hcl>) -> Self {
        set(&mut self.gitlab, key, value.into());
        self
    }

    /// Sets a setting of the `kubernetes` object, replacing one of the same name.
    pub fn kubernetes(mut self, key: &'static str, value: impl Into<Hcl>) -> Self {
        set(&mut self.kubernetes, key, value.into());
        self
    }
}

fn set(settings: &mut Vec<(&'static str, Hcl)>, key: &'static str, value: Hcl) {
    match settings.iter_mut().find(|(k, _)| *k == key) {
        Some(setting) => setting.1 = value,
        None => settings.push((key, value)),
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "\nprovider \"gitlabflux\" {{")?;
        for (name, settings) in [("gitlab", &self.gitlab), ("kubernetes", &self.kubernetes)] {
            if settings.is_empty() {
                continue;
            }
            writeln!(f, "  {name} = {{")?;
            let width = settings.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (key, value) in settings {
                writeln!(f, "    {key:width$} = {}", value.0)?;
            }
            writeln!(f, "  }}")?;
        }
        writeln!(f, "}}")
    }
}

/// A setting's value as HCL: strings quoted and escaped, numbers as they are.
#[derive(Clone, Debug)]
pub struct Hcl(String);

impl From<&str> for Hcl {
    fn from(s: &str) -> Self {
        // JSON's string escapes are valid HCL ones.
        Self(Json::from(s).to_string())
    }
}

impl From<String> for Hcl {
    fn from(s: String) -> Self {
        s.as_str().into()
    }
}

impl From<u32> for Hcl {
    fn from(n: u32) -> Self {
        Self(n.to_string())
    }
}

/// A `gitlabflux-sandbox serve` process, stopped (stdin closed, then killed) on drop.
pub struct SandboxProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    pub info: Json,
}

impl SandboxProcess {
    pub fn start(extra_args: &[&str]) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_gitlabflux-sandbox"))
            .arg("serve")
            .args(extra_args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start gitlabflux-sandbox");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the sandbox's JSON line");
        let info =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("sandbox line {line:?}: {e}"));
        let stdin = child.stdin.take();
        Self { child, stdin, info }
    }

    pub fn url(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in sandbox info"))
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A request to the admin API; `path` from its root, e.g. `/stats`.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http().request(method, format!("{}{path}", self.url("admin_url")))
    }

    /// A request to the GitLab emulator's REST API as the root user; `path` below `/api/v4`.
    pub fn gitlab(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        http()
            .request(method, format!("{}/api/v4{path}", self.url("gitlab_url")))
            .header("PRIVATE-TOKEN", self.url("gitlab_token"))
    }

    /// An admin resource as JSON, for tests that run in a runtime.
    pub async fn admin_json(&self, path: &str) -> Json {
        self.admin(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("admin GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("admin GET {path} JSON: {e}"))
    }

    // The admin readers and writers below block, for the end-to-end tests, which do not run
    // in a runtime.

    /// Request counts by emulator and route template, and the faults injected.
    pub fn stats(&self) -> Json {
        block_on(self.admin_json("/stats"))
    }

    /// Replaces the sandbox's fault rules (`[]` clears them).
    pub fn set_faults(&self, rules: Json) {
        let response = block_on(async {
            self.admin(reqwest::Method::PUT, "/faults")
                .json(&serde_json::json!({ "rules": rules }))
                .send()
                .await
        })
        .expect("PUT /faults");
        assert!(
            response.status().is_success(),
            "PUT /faults: {}",
            response.status()
        );
    }

    /// How many faults were injected so far whose stats key contains `needle` (e.g.
    /// `"tokens/{token_id} -> hang"`).
    pub fn faults_injected(&self, needle: &str) -> u64 {
        let stats = self.stats();
        stats["faults"]
            .as_object()
            .into_iter()
            .flat_map(|by_emulator| by_emulator.values())
            .filter_map(Json::as_object)
            .flat_map(|faults| faults.iter())
            .filter(|(key, _)| key.contains(needle))
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    }

    /// The GitLab emulator's world: projects with their files and commits, agents with
    /// their tokens.
    pub fn gitlab_state(&self) -> Json {
        block_on(self.admin_json("/gitlab/state"))
    }

    /// Every object in the Kubernetes emulator, under `items`.
    pub fn kube_objects(&self) -> Json {
        block_on(self.admin_json("/kube/objects"))
    }

    /// `path -> content` on the `main` branch of `project`, and the project's commit count.
    pub fn gitlab_repo(&self, project: &str) -> (serde_json::Map<String, Json>, usize) {
        let state = self.gitlab_state();
        let project = state["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .find(|p| p["path_with_namespace"] == project)
            .unwrap_or_else(|| panic!("{project} in the GitLab state"));
        let files = project["files"]["main"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        (files, project["commits"].as_array().map_or(0, Vec::len))
    }

    /// Adds a GitLab user with `access_level` (10 to 50) on the seeded projects; returns
    /// the user's token.
    pub fn add_gitlab_user(&self, username: &str, access_level: u32) -> String {
        let user: Json = block_on(async {
            self.admin(reqwest::Method::POST, "/gitlab/users")
                .json(&serde_json::json!({"username": username, "access_level": access_level}))
                .send()
                .await
                .expect("user")
                .json()
                .await
                .expect("json")
        });
        user["token"].as_str().expect("token").to_string()
    }

    /// Opens or closes the registry to clients without credentials.
    pub fn set_anonymous_pull(&self, allowed: bool) {
        let response = block_on(async {
            self.admin(reqwest::Method::PUT, "/registry/settings")
                .json(&serde_json::json!({ "anonymous_pull": allowed }))
                .send()
                .await
        });
        assert!(response.expect("admin API").status().is_success());
    }

    /// Closes stdin (the documented stop signal) and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().expect("wait for sandbox")
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for sandbox")
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a directory tree (an example into a workspace).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// A file of the Flux v2.8.5 fixture, e.g. `gotk-components.yaml`.
pub fn flux_fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/flux/v2.8.5")
        .join(name)
}

/// The Flux v2.8.5 fixture as a distribution source (read in place, never copied).
pub fn flux_fixture() -> String {
    flux_fixture_of("v2.8.5")
}

/// `gitlabflux_flux_bootstrap.this`: Flux 2.9.4 with multi-tenancy, syncing
/// `fleet/gitops`, with `extra` lines (e.g. `cluster_name = "prod"`) in its body.
pub fn flux_2_9_bootstrap(extra: &str) -> String {
    format!(
        r#"resource "gitlabflux_flux_bootstrap" "this" {{
  {extra}
  distribution = {{ source = "{fixture}" }}
  multitenancy = {{ enabled = true }}
  sync = {{ url = "https://gitlab.example.com/fleet/gitops.git", ref = {{ branch = "main" }} }}
  timeout = "30s"
}}
"#,
        fixture = flux_fixture_of("v2.9.4"),
    )
}

/// The fixture of one Flux version (`v2.8.5`, `v2.9.4`: real `flux bootstrap` outputs, the
/// latter with the image controllers) as a distribution source.
pub fn flux_fixture_of(version: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/flux")
        .join(version)
        .join("gotk-components.yaml");
    format!("file://{}", path.display())
}

/// The real `kubectl` against one cluster.
pub struct Kubectl {
    kubeconfig: PathBuf,
    cache_dir: Option<PathBuf>,
}

impl Kubectl {
    pub fn new(kubeconfig: impl Into<PathBuf>) -> Self {
        require_kubectl();
        Self {
            kubeconfig: kubeconfig.into(),
            cache_dir: None,
        }
    }

    /// Keeps kubectl's discovery cache in `dir` instead of the home directory.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Runs `kubectl <args>`, whatever its outcome.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        if let Some(dir) = &self.cache_dir {
            cmd.arg("--cache-dir").arg(dir);
        }
        cmd.args(args).output().expect("run kubectl")
    }

    /// Runs `kubectl <args>` and returns its stdout, failing the test with its output
    /// otherwise.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl <args> -o json`; `None` only when the object does not exist. Any other
    /// failure panics, so an absence check cannot pass on a broken cluster.
    pub fn json(&self, args: &[&str]) -> Option<Json> {
        let mut json_args = args.to_vec();
        json_args.extend(["-o", "json"]);
        let out = self.run(&json_args);
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("kubectl JSON"));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("(NotFound)"),
            "kubectl {} failed: {stderr}",
            args.join(" ")
        );
        None
    }
}

impl SandboxProcess {
    /// kubectl against the sandbox's cluster.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(self.url("kubeconfig"))
    }
}

/// [`Kubectl::ok`] against the sandbox's cluster.
pub fn kubectl(sandbox: &SandboxProcess, args: &[&str]) -> String {
    sandbox.kubectl().ok(args)
}

/// [`Kubectl::json`] against the sandbox's cluster.
pub fn kubectl_json(sandbox: &SandboxProcess, args: &[&str]) -> Option<Json> {
    sandbox.kubectl().json(args)
}

/// A Flux controller's Deployment in `flux-system`, which must exist.
pub fn flux_deployment(sandbox: &SandboxProcess, name: &str) -> Json {
    kubectl_json(sandbox, &["get", "deploy", "-n", "flux-system", name]).expect(name)
}

/// The container arguments of a Flux controller's Deployment.
pub fn flux_controller_args(sandbox: &SandboxProcess, name: &str) -> Vec<String> {
    flux_deployment(sandbox, name)["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// An HTTP client for the sandbox's loopback APIs (TLS on ring, like the provider). Its
/// timeout turns a wedged sandbox into a failed test rather than a hung one.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// An HTTPS client for the sandbox's Kubernetes API, trusting the CA its kubeconfig carries
/// as `certificate-authority-data` (the same for every cluster of a fleet).
pub fn kube_https_client(ca_data: Option<&str>) -> reqwest::Client {
    use base64::Engine as _;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = ca_data
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 CA")
        })
        .expect("the kubeconfig carries the sandbox CA");
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM CA"))
        .build()
        .expect("client")
}

/// Runs `future` to completion on a runtime of its own, for tests that do not run in one.
/// A request must be sent inside the future (`async { request.send().await }`): `send`
/// arms the client's timeout at once, which needs the runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
