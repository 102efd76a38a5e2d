//! The protocol layer proven through the real Terraform: the whole resource lifecycle with the
//! test-only `gitlabflux_test_widget`, unknown values, sensitive and write-only attributes,
//! state upgrades across a schema version bump, diagnostics, panics, and both functions.

mod common;

use std::path::PathBuf;

use common::{Provider, Workspace};
use serde_json::Value as Json;

/// A workspace whose widgets live in their own store directory.
fn widget_workspace() -> (Workspace, PathBuf) {
    let mut ws = Workspace::new();
    let store = ws.path().join("widgets");
    std::fs::create_dir(&store).expect("store dir");
    ws.set_env("GITLABFLUX_TEST_WIDGET_DIR", &store.display().to_string());
    (ws, store)
}

fn stored(store: &std::path::Path, id: &str) -> Option<Json> {
    std::fs::read(store.join(format!("{id}.json")))
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("record JSON"))
}

fn store_count(store: &std::path::Path) -> usize {
    std::fs::read_dir(store).expect("store").count()
}

fn widget_lifecycle_create_read_update_replace_destroy() {
    let (ws, store) = widget_workspace();
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name     = "alpha"
  tags     = { team = "platform" }
  settings = { labels = ["a", "b"] }
}
"#,
    );
    // Create.
    ws.assert_only_change("gitlabflux_test_widget.w", "create");
    ws.apply();
    let w = ws.resource("gitlabflux_test_widget.w");
    let id = w["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("w-alpha-"), "{id}");
    assert_eq!(w["size"], "small", "default applied");
    assert_eq!(w["settings"]["replicas"], 1, "nested default applied");
    assert_eq!(w["revision"], 1);

    // Private state written at create is stored by Terraform and handed back (update checks).
    let raw: Json = serde_json::from_str(&ws.state_file()).expect("state");
    let private = raw["resources"][0]["instances"][0]["private"]
        .as_str()
        .expect("private");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(private)
        .expect("base64");
    assert_eq!(decoded, b"widget-private:v1");

    // Read back: the object exists outside Terraform with the same content.
    let record = stored(&store, &id).expect("widget stored");
    assert_eq!(record["name"], "alpha");
    assert_eq!(record["tags"]["team"], "platform");
    assert_eq!(record["settings"]["labels"], serde_json::json!(["a", "b"]));

    // Second plan: no changes.
    ws.assert_no_changes();

    // In-place update.
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name     = "alpha"
  size     = "large"
  tags     = { team = "platform", env = "prod" }
  settings = { labels = ["a", "b"], replicas = 3 }
}
"#,
    );
    ws.assert_only_change("gitlabflux_test_widget.w", "update");
    let plan = ws.plan_json();
    let after_unknown = &plan["resource_changes"][0]["change"]["after_unknown"];
    assert_eq!(after_unknown["revision"], true, "revision is recomputed");
    assert!(
        after_unknown.get("id").is_none_or(|v| v == false),
        "id kept by UseStateForUnknown"
    );
    ws.apply();
    let w = ws.resource("gitlabflux_test_widget.w");
    assert_eq!(w["id"], id.as_str(), "updated in place");
    assert_eq!(w["revision"], 2);
    assert_eq!(stored(&store, &id).expect("stored")["size"], "large");
    ws.assert_no_changes();

    // RequiresReplace.
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name = "beta"
}
"#,
    );
    let changes = ws.planned_changes();
    assert_eq!(changes.len(), 1);
    let mut actions = changes[0].1.clone();
    actions.sort();
    assert_eq!(actions, vec!["create", "delete"]);
    let plan = ws.plan_json();
    assert_eq!(
        plan["resource_changes"][0]["change"]["replace_paths"],
        serde_json::json!([["name"]])
    );
    ws.apply();
    let new_id = ws.resource("gitlabflux_test_widget.w")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_ne!(new_id, id);
    assert!(stored(&store, &id).is_none(), "old widget deleted");
    assert!(stored(&store, &new_id).is_some());
    ws.assert_no_changes();

    // Destroy.
    ws.destroy();
    assert_eq!(store_count(&store), 0);
}

fn widget_import_reproduces_a_no_change_plan() {
    let (source, store) = widget_workspace();
    let config = r#"
resource "gitlabflux_test_widget" "w" {
  name     = "imported"
  size     = "medium"
  tags     = { owner = "fleet" }
  settings = { replicas = 2 }
}
"#;
    source.write(config);
    source.apply();
    let id = source.resource("gitlabflux_test_widget.w")["id"]
        .as_str()
        .expect("id")
        .to_string();

    let (mut target, _) = widget_workspace();
    target.set_env("GITLABFLUX_TEST_WIDGET_DIR", &store.display().to_string());
    target.write(config);
    let out = target.ok(&["import", "-no-color", "gitlabflux_test_widget.w", &id]);
    assert!(out.stdout.contains("Import successful"), "{}", out.stdout);
    assert_eq!(
        target.resource("gitlabflux_test_widget.w")["size"],
        "medium"
    );
    target.assert_no_changes();

    let (mut other, _) = widget_workspace();
    other.set_env("GITLABFLUX_TEST_WIDGET_DIR", &store.display().to_string());
    other.write(r#"resource "gitlabflux_test_widget" "x" { name = "nope" }"#);
    let missing = other.run(&[
        "import",
        "-no-color",
        "gitlabflux_test_widget.x",
        "w-nope-00000000",
    ]);
    assert!(!missing.success());
    assert!(
        missing.text().contains("Widget not found"),
        "{}",
        missing.text()
    );
}

fn widget_drift_is_planned_and_repaired() {
    let (ws, store) = widget_workspace();
    ws.write(r#"resource "gitlabflux_test_widget" "w" { name = "drift" }"#);
    ws.apply();
    let id = ws.resource("gitlabflux_test_widget.w")["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Edited out of band: an update puts it back.
    let path = store.join(format!("{id}.json"));
    let mut record = stored(&store, &id).expect("stored");
    record["size"] = "large".into();
    std::fs::write(&path, serde_json::to_vec(&record).expect("json")).expect("edit");
    ws.assert_only_change("gitlabflux_test_widget.w", "update");
    ws.apply();
    assert_eq!(stored(&store, &id).expect("stored")["size"], "small");

    // Deleted out of band: planned for creation again.
    std::fs::remove_file(&path).expect("delete");
    ws.assert_only_change("gitlabflux_test_widget.w", "create");
    ws.apply();
    assert_eq!(store_count(&store), 1);
    ws.assert_no_changes();
}

fn unknown_values_flow_between_resources() {
    let (ws, _store) = widget_workspace();
    ws.write(
        r#"
resource "gitlabflux_test_widget" "a" { name = "parent" }
resource "gitlabflux_test_widget" "b" {
  name = "child"
  tags = { parent = gitlabflux_test_widget.a.id }
}
"#,
    );
    let plan = ws.plan_json();
    let child = plan["resource_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["address"] == "gitlabflux_test_widget.b")
        .expect("child planned")
        .clone();
    assert_eq!(child["change"]["after_unknown"]["tags"]["parent"], true);
    ws.apply();
    let a = ws.resource("gitlabflux_test_widget.a");
    let b = ws.resource("gitlabflux_test_widget.b");
    assert_eq!(b["tags"]["parent"], a["id"]);
    ws.assert_no_changes();
}

fn sensitive_and_write_only_values_stay_out_of_plans_state_and_logs() {
    let (mut ws, store) = widget_workspace();
    let log = ws.log_trace();
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name             = "secrets"
  secret           = "sensitive-canary-4711"
  password_wo      = "write-only-canary-0815"
  password_version = 1
}
"#,
    );
    let plan = ws.ok(&["plan", "-no-color"]);
    assert!(plan.stdout.contains("(sensitive value)"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("sensitive-canary-4711"));
    assert!(
        plan.stdout.contains("(write-only attribute)"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("write-only-canary-0815"));
    ws.apply();

    let state = ws.state_file();
    assert!(
        !state.contains("write-only-canary-0815"),
        "write-only value reached state"
    );
    let w = ws.resource("gitlabflux_test_widget.w");
    assert!(w["password_wo"].is_null());
    // The provider received the write-only value at apply: its fingerprint is recorded.
    let expected = {
        use sha2::Digest;
        terraform_provider_gitlabflux::digest::hex(
            &sha2::Sha256::digest(b"write-only-canary-0815")[..6],
        )
    };
    assert_eq!(w["password_fingerprint"], expected.as_str());
    let id = w["id"].as_str().expect("id");
    assert_eq!(
        stored(&store, id).expect("stored")["password_fingerprint"],
        expected.as_str()
    );

    // Provider log lines (hclog JSON, re-logged by Terraform) never carry either value.
    let log = std::fs::read_to_string(log).expect("TF_LOG_PATH written");
    let provider_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("provider.terraform-provider-gitlabflux"))
        .collect();
    assert!(
        provider_lines
            .iter()
            .any(|l| l.contains("tf_rpc=ApplyResourceChange")),
        "provider logs reach TF_LOG"
    );
    for line in provider_lines {
        assert!(!line.contains("canary"), "secret in provider log: {line}");
    }
    ws.assert_no_changes();
}

fn state_is_upgraded_across_a_schema_version_bump() {
    let (mut ws, _store) = widget_workspace();
    ws.set_env("GITLABFLUX_TEST_WIDGET_SCHEMA_VERSION", "0");
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name   = "old"
  flavor = "large"
}
"#,
    );
    ws.apply();
    let before: Json = serde_json::from_str(&ws.state_file()).expect("state");
    assert_eq!(before["resources"][0]["instances"][0]["schema_version"], 0);

    ws.set_env("GITLABFLUX_TEST_WIDGET_SCHEMA_VERSION", "1");
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name = "old"
  size = "large"
}
"#,
    );
    ws.assert_no_changes();
    ws.ok(&["apply", "-refresh-only", "-auto-approve", "-no-color"]);
    let after: Json = serde_json::from_str(&ws.state_file()).expect("state");
    let instance = &after["resources"][0]["instances"][0];
    assert_eq!(instance["schema_version"], 1);
    assert_eq!(instance["attributes"]["size"], "large");
    assert!(instance["attributes"].get("flavor").is_none());
}

fn bad_inputs_get_attribute_diagnostics_and_create_nothing() {
    let (ws, store) = widget_workspace();
    ws.write(
        r#"
resource "gitlabflux_test_widget" "w" {
  name     = "this-name-is-far-too-long-for-a-widget"
  size     = "huge"
  settings = { replicas = 50 }
}
"#,
    );
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = out.text();
    assert!(text.contains("Invalid length"), "{text}");
    assert!(
        text.contains("name must be 1 to 32 characters long"),
        "{text}"
    );
    assert!(text.contains("Invalid value"), "{text}");
    assert!(
        text.contains(r#"size must be one of: "small", "medium", "large""#),
        "{text}"
    );
    assert!(
        text.contains("settings.replicas must be a whole number from 1 to 10"),
        "{text}"
    );
    // Terraform points at the offending lines of the configuration.
    assert!(text.contains(r#"size     = "huge""#), "{text}");
    assert_eq!(store_count(&store), 0, "nothing created");
}

fn a_panicking_handler_becomes_a_diagnostic() {
    let (ws, store) = widget_workspace();
    ws.write(r#"resource "gitlabflux_test_widget" "w" { name = "panic-please" }"#);
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = out.text();
    assert!(text.contains("Provider internal error"), "{text}");
    assert!(text.contains("ApplyResourceChange"), "{text}");
    assert!(
        !text.contains("plugin exited"),
        "the provider must survive: {text}"
    );
    assert_eq!(store_count(&store), 0);
}

fn functions_work_through_terraform() {
    let ws = Workspace::new();
    ws.write(
        r#"
locals { shards = ["shard1", "shard2", "shard3"] }
output "placements" {
  value = { for t in ["team-a", "team-b", "team-c"] : t => provider::gitlabflux::shard_for(t, local.shards) }
}
output "reordered" {
  value = provider::gitlabflux::shard_for("team-a", reverse(local.shards))
}
output "context" {
  value = provider::gitlabflux::agent_kubecontext("fleet/agents", "prod")
}
"#,
    );
    ws.apply();
    let outputs = ws.outputs();
    let placements = outputs["placements"]["value"].clone();
    // The documented rule (SHA-256 rendezvous), computed independently.
    assert_eq!(
        outputs["placements"]["value"],
        serde_json::json!({ "team-a": "shard1", "team-b": "shard2", "team-c": "shard3" })
    );
    assert_eq!(outputs["reordered"]["value"], placements["team-a"]);
    assert_eq!(outputs["context"]["value"], "fleet/agents:prod");

    ws.write(r#"output "bad" { value = provider::gitlabflux::agent_kubecontext("fleet/agents", "Prod!") }"#);
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = out.text();
    assert!(text.contains("Invalid function argument"), "{text}");
    assert!(
        text.contains(r#"Invalid value for "agent_name" parameter"#),
        "{text}"
    );
    assert!(text.contains("agent_name must consist of"), "{text}");

    ws.write(r#"output "bad" { value = provider::gitlabflux::shard_for("team-a", []) }"#);
    let text = ws.run(&["apply", "-auto-approve", "-no-color"]).text();
    assert!(
        text.contains(r#"Invalid value for "shards" parameter"#),
        "{text}"
    );
    assert!(text.contains("the list of shards is empty"), "{text}");
}

fn provider_configuration_errors_point_at_the_attribute() {
    let (mut ws, store) = widget_workspace();
    let provider = Provider::default()
        .gitlab("base_url", "gitlab.example.com")
        .gitlab("max_retries", 99);
    ws.write(&format!(
        r#"{provider}
resource "gitlabflux_test_widget" "w" {{ name = "cfg" }}
"#
    ));
    let text = ws.run(&["plan", "-no-color"]).text();
    assert!(
        text.contains("gitlab.base_url must be an http:// or https:// URL"),
        "{text}"
    );
    assert!(
        text.contains("gitlab.max_retries must be a whole number from 0 to 20"),
        "{text}"
    );

    // Environment fallbacks are validated too, and named in the message.
    ws.write(r#"resource "gitlabflux_test_widget" "w" { name = "cfg" }"#);
    ws.set_env("GITLAB_BASE_URL", "not a url");
    let text = ws.run(&["plan", "-no-color"]).text();
    assert!(text.contains("Invalid GitLab URL"), "{text}");
    assert!(text.contains("GITLAB_BASE_URL"), "{text}");
    ws.set_env("GITLAB_BASE_URL", "https://gitlab.example.com/");
    ws.set_env("GITLAB_TOKEN", "glpat-env-canary");
    ws.apply();
    assert!(!ws.state_file().contains("glpat-env-canary"));
    assert_eq!(store_count(&store), 1);
}

/// Each run drives the Terraform it is named after, through the provider.
fn the_terraform_under_test_is_the_one_named() {
    let ws = Workspace::new();
    ws.write("");
    let report = ws.json(&["version", "-json"]);
    let version = report["terraform_version"].as_str().expect("version");
    let (major, minor) = {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    match common::terraform::under_test() {
        common::terraform::Terraform::V1_15 => assert_eq!(version, "1.15.5"),
        common::terraform::Terraform::Machine => {
            assert!(
                (major, minor) >= (1, 11),
                "the machine's terraform is {version}"
            )
        }
    }
}

on_both_terraforms!(
    the_terraform_under_test_is_the_one_named,
    widget_lifecycle_create_read_update_replace_destroy,
    widget_import_reproduces_a_no_change_plan,
    widget_drift_is_planned_and_repaired,
    unknown_values_flow_between_resources,
    sensitive_and_write_only_values_stay_out_of_plans_state_and_logs,
    state_is_upgraded_across_a_schema_version_bump,
    bad_inputs_get_attribute_diagnostics_and_create_nothing,
    a_panicking_handler_becomes_a_diagnostic,
    functions_work_through_terraform,
    provider_configuration_errors_point_at_the_attribute,
);
