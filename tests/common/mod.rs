//! End-to-end harness: runs the real `terraform` binary against the provider built by
//! `cargo test`, through `dev_overrides` in a private `TF_CLI_CONFIG_FILE`, in a temporary
//! directory per workspace.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value as Json;

/// The provider binary cargo built for this test run.
pub fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-gitlabflux"))
}

/// Fails the test run with a clear message when Terraform is missing: these tests never skip.
pub fn require_terraform() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| match Command::new("terraform").arg("version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`terraform version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run `terraform`: {e}")),
    });
    if let Err(e) = result {
        panic!(
            "The end-to-end tests need the `terraform` CLI (1.11 or later) on PATH. {e}. \
             Install Terraform and run the tests again."
        );
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

    /// Sets an environment variable for every later terraform command (and so the provider).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
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
        let mut cmd = Command::new("terraform");
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

/// The Flux v2.8.5 fixture as a distribution source (read in place, never copied).
pub fn flux_fixture() -> String {
    format!(
        "file://{}/../shared/fixtures/flux/v2.8.5/gotk-components.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `kubectl <args> -o json` against the sandbox's cluster; `None` only when the object does
/// not exist. Any other failure panics, so an absence check cannot pass on a broken cluster.
pub fn kubectl_json(sandbox: &SandboxProcess, args: &[&str]) -> Option<Json> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sandbox.url("kubeconfig"))
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("kubectl on PATH");
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

/// An HTTP client for the sandbox's loopback APIs (TLS on ring, like the provider).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
