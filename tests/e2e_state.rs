//! GitLab-managed Terraform state in the sandbox, driven by Terraform's own `backend "http"`
//! configured as GitLab documents it: state kept (every version) in the GitLab emulator, and
//! its lock honoured, whether Terraform or the API holds it.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{SandboxProcess, Workspace, block_on};
use serde_json::{Value, json};

/// A configuration with the http backend on state `name` of fleet/gitops; its one resource
/// takes `seconds` to create.
fn config(sandbox: &SandboxProcess, name: &str, input: &str, seconds: u32) -> String {
    let address = format!(
        "{}/api/v4/projects/fleet%2Fgitops/terraform/state/{name}",
        sandbox.url("gitlab_url")
    );
    format!(
        r#"terraform {{
  backend "http" {{
    address        = "{address}"
    lock_address   = "{address}/lock"
    unlock_address = "{address}/lock"
    lock_method    = "POST"
    unlock_method  = "DELETE"
    username       = "root"
    password       = "{token}"
    retry_wait_min = 1
  }}
}}

resource "terraform_data" "cluster" {{
  triggers_replace = "{input}"
  provisioner "local-exec" {{
    command = "sleep {seconds}"
  }}
}}
"#,
        token = sandbox.url("gitlab_token"),
    )
}

fn state_record(sandbox: &SandboxProcess, name: &str) -> Value {
    let state = sandbox.gitlab_state();
    let gitops = state["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["path_with_namespace"] == "fleet/gitops")
        .cloned()
        .expect("fleet/gitops");
    gitops["terraform_states"][name].clone()
}

fn the_http_backend_keeps_state_and_its_lock_in_gitlab() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    ws.write_raw(&config(&sandbox, "prod", "v1", 0));
    ws.ok(&["init", "-no-color", "-input=false"]);
    ws.apply();
    let record = state_record(&sandbox, "prod");
    assert!(
        record["serials"].as_array().is_some_and(|s| !s.is_empty()),
        "{record}"
    );
    assert_eq!(record["lock"], Value::Null, "unlocked after the apply");
    let get = sandbox.gitlab(
        reqwest::Method::GET,
        "/projects/fleet%2Fgitops/terraform/state/prod",
    );
    let stored: Value =
        block_on(async { get.send().await.expect("GET").json().await }).expect("state JSON");
    assert_eq!(
        stored["resources"][0]["type"], "terraform_data",
        "the state lives in GitLab"
    );
    ws.assert_no_changes();

    // A lock held through the API stops a plan.
    let hold = sandbox
        .gitlab(
            reqwest::Method::POST,
            "/projects/fleet%2Fgitops/terraform/state/prod/lock",
        )
        .json(
            &json!({"ID": "held-by-ops", "Operation": "OperationTypeApply", "Info": "",
                      "Who": "ops@laptop", "Version": "1.11.4", "Created": "2026-12-03T00:00:00Z",
                      "Path": ""}),
        );
    let status = block_on(async { hold.send().await.expect("lock").status() });
    assert_eq!(status, 200);
    let out = ws.run(&["plan", "-no-color", "-input=false"]);
    assert!(!out.success(), "a plan while locked must fail");
    assert!(
        out.text().contains("Error acquiring the state lock"),
        "{}",
        out.text()
    );
    assert!(out.text().contains("held-by-ops"), "{}", out.text());
    let release = sandbox.gitlab(
        reqwest::Method::DELETE,
        "/projects/fleet%2Fgitops/terraform/state/prod/lock",
    );
    block_on(async { release.send().await.expect("unlock") });
    ws.assert_no_changes();
}

fn two_applies_at_once_the_second_fails_on_the_lock_and_changes_nothing() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    ws.write_raw(&config(&sandbox, "fleet", "v1", 0));
    ws.ok(&["init", "-no-color", "-input=false"]);
    ws.apply();
    let serials_before = state_record(&sandbox, "fleet")["serials"].clone();

    // The first apply holds the lock for its whole (slow) run.
    ws.write_raw(&config(&sandbox, "fleet", "v2", 4));
    let mut first = common::terraform::command();
    first
        .args(["apply", "-auto-approve", "-no-color", "-input=false"])
        .current_dir(ws.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in ws.env() {
        first.env(k, v);
    }
    let mut first = first.spawn().expect("first apply");
    let deadline = Instant::now() + Duration::from_secs(30);
    while state_record(&sandbox, "fleet")["lock"].is_null() {
        let ended = matches!(first.try_wait(), Ok(Some(_)));
        if ended || Instant::now() >= deadline {
            let _ = first.kill();
            let out = first.wait_with_output().expect("output");
            panic!(
                "the first apply was never seen holding the lock:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = ws.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!second.success(), "the second apply must fail");
    assert!(
        second.text().contains("Error acquiring the state lock"),
        "{}",
        second.text()
    );
    assert_eq!(
        state_record(&sandbox, "fleet")["serials"],
        serials_before,
        "the second apply wrote nothing"
    );
    let first = first.wait_with_output().expect("first apply ends");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(state_record(&sandbox, "fleet")["lock"], Value::Null);
    ws.assert_no_changes();
}

on_both_terraforms!(
    the_http_backend_keeps_state_and_its_lock_in_gitlab,
    two_applies_at_once_the_second_fails_on_the_lock_and_changes_nothing,
);
