//! Write-only Git credentials (Terraform 1.11+): a tenant's `source.http.password_wo` and a
//! bootstrap's `sync.bearer_token_wo` reach the Secrets their sources read, never state or
//! the trace log; a version bump delivers a new value and asks for a reconcile; a deleted
//! Secret is repaired; credentials no longer given, and all of them at destroy, are taken
//! away; a token version without its token is refused; a kill at each step of a change
//! converges at the next apply.

mod common;

use base64::Engine as _;
use common::{SandboxProcess, Workspace, flux_fixture_of, kubectl, kubectl_json, provider_block};
use serde_json::{Value, json};

fn config(sandbox: &SandboxProcess, password: &str, version: u32) -> String {
    format!(
        r#"{provider}
resource "gitlabflux_flux_bootstrap" "this" {{
  distribution = {{ source = "{fixture}" }}
  multitenancy = {{ enabled = true }}
  sync = {{
    url                     = "https://gitlab.example.com/fleet/gitops.git"
    bearer_token_wo         = "bootstrap-token-1"
    bearer_token_wo_version = 1
  }}
  timeout = "30s"
}}

resource "gitlabflux_flux_tenant" "team_a" {{
  name       = "team-a"
  namespaces = ["team-a"]
  source = {{
    url  = "https://gitlab.example.com/team-a/deploy.git"
    http = {{
      username            = "flux"
      password_wo         = "{password}"
      password_wo_version = {version}
    }}
  }}
  timeout    = "30s"
  depends_on = [gitlabflux_flux_bootstrap.this]
}}
"#,
        provider = provider_block(sandbox),
        fixture = flux_fixture_of("v2.9.4"),
    )
}

/// The decoded value of `key` in Secret `namespace/name`.
fn secret_value(
    sandbox: &SandboxProcess,
    namespace: &str,
    name: &str,
    key: &str,
) -> Option<String> {
    let secret = kubectl_json(sandbox, &["get", "secret", "-n", namespace, name])?;
    let encoded = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    Some(String::from_utf8(bytes).expect("utf-8"))
}

fn tenant_source(sandbox: &SandboxProcess) -> Value {
    kubectl_json(
        sandbox,
        &[
            "get",
            "gitrepositories.source.toolkit.fluxcd.io",
            "-n",
            "team-a",
            "team-a",
        ],
    )
    .expect("tenant source")
}

fn write_only_credentials_reach_the_secrets_and_nothing_else() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let mut ws = Workspace::new();
    let log = ws.log_trace();
    ws.write(&config(&sandbox, "tenant-password-1", 1));
    ws.apply();
    assert_eq!(
        secret_value(&sandbox, "team-a", "team-a", "password").as_deref(),
        Some("tenant-password-1")
    );
    assert_eq!(
        secret_value(&sandbox, "team-a", "team-a", "username").as_deref(),
        Some("flux")
    );
    assert_eq!(
        secret_value(&sandbox, "flux-system", "flux-system", "bearerToken").as_deref(),
        Some("bootstrap-token-1")
    );
    assert_eq!(
        tenant_source(&sandbox)["spec"]["secretRef"]["name"],
        "team-a"
    );
    ws.assert_no_changes();

    // A new version delivers a new password and asks the source to reconcile.
    let before =
        tenant_source(&sandbox)["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
            .clone();
    ws.write(&config(&sandbox, "tenant-password-2", 2));
    ws.assert_only_change("gitlabflux_flux_tenant.team_a", "update");
    ws.apply();
    assert_eq!(
        secret_value(&sandbox, "team-a", "team-a", "password").as_deref(),
        Some("tenant-password-2")
    );
    let after =
        tenant_source(&sandbox)["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
            .clone();
    assert!(after.is_string() && after != before, "{before} -> {after}");

    // A deleted Secret is drift, and the next apply writes it again.
    kubectl(&sandbox, &["delete", "secret", "-n", "team-a", "team-a"]);
    ws.assert_only_change("gitlabflux_flux_tenant.team_a", "update");
    ws.apply();
    assert_eq!(
        secret_value(&sandbox, "team-a", "team-a", "password").as_deref(),
        Some("tenant-password-2")
    );
    ws.assert_no_changes();

    let state = ws.state_file();
    let trace = std::fs::read_to_string(&log).expect("trace log");
    assert!(
        trace.contains("ApplyResourceChange"),
        "the trace log covers the applies"
    );
    for value in [
        "tenant-password-1",
        "tenant-password-2",
        "bootstrap-token-1",
    ] {
        assert!(!state.contains(value), "{value} is in state");
        assert!(!trace.contains(value), "{value} is in the trace log");
    }

    // Credentials the configuration no longer gives are taken out of the cluster.
    let full = config(&sandbox, "tenant-password-2", 2);
    ws.write(&without_tenant_http(&full));
    ws.apply();
    assert!(secret_value(&sandbox, "team-a", "team-a", "password").is_none());
    ws.assert_no_changes();

    // A token version without its token is refused before anything changes.
    let versioned_only = full.replace("    bearer_token_wo         = \"bootstrap-token-1\"\n", "");
    ws.write(&versioned_only);
    ws.error(&["plan"], "Token missing");

    ws.write(&without_tenant_http(&full));
    ws.destroy();
    assert!(
        secret_value(&sandbox, "flux-system", "flux-system", "bearerToken").is_none(),
        "destroy takes the bootstrap's token away"
    );
}

/// `config` without the tenant's `source.http` block.
fn without_tenant_http(config: &str) -> String {
    let start = config.find("    http = {").expect("http block");
    let end =
        start + config[start..].find("\n    }\n").expect("http block end") + "\n    }\n".len();
    format!("{}{}", &config[..start], &config[end..])
}

const TENANT_SECRET: &str = "/api/v1/namespaces/team-a/secrets/team-a";
const TENANT_SOURCE: &str =
    "/apis/source.toolkit.fluxcd.io/v1/namespaces/team-a/gitrepositories/team-a";

/// A kill at each step of changing a write-only password, and of taking it away, leaves
/// what runs working, and the next apply converges: the Secret holds the configuration's
/// password (or is gone with it) and a plan after has nothing to do.
fn a_kill_at_each_step_of_a_credentials_change_converges() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&config(&sandbox, "password-1", 1));
    ws.apply();
    let hang = |method: &str, path: &str, when: &str| json!({"emulator": "kube", "method": method, "path": path, "fault": "hang", "when": when});
    let kill_then_apply = |next: &str, rule: Value, context: &str| {
        let hung = sandbox.faults_injected("-> hang");
        sandbox.set_faults(json!([rule]));
        ws.write(next);
        ws.apply_killed_when(|| sandbox.faults_injected("-> hang") > hung);
        sandbox.set_faults(json!([]));
        let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
        assert!(out.success(), "{context}: the retry failed\n{}", out.text());
        ws.assert_no_changes();
    };
    let changes = [
        (
            "killed writing the Secret",
            hang("PATCH", TENANT_SECRET, "before"),
        ),
        (
            "killed after the Secret write",
            hang("PATCH", TENANT_SECRET, "after"),
        ),
        (
            "killed asking the source to reconcile",
            hang("PATCH", TENANT_SOURCE, "before"),
        ),
    ];
    for (n, (context, rule)) in changes.into_iter().enumerate() {
        let version = u32::try_from(n).expect("small") + 2;
        let password = format!("password-{version}");
        kill_then_apply(&config(&sandbox, &password, version), rule, context);
        assert_eq!(
            secret_value(&sandbox, "team-a", "team-a", "password").as_deref(),
            Some(password.as_str()),
            "{context}"
        );
    }
    let removed = without_tenant_http(&config(&sandbox, "password-4", 4));
    kill_then_apply(
        &removed,
        hang("DELETE", TENANT_SECRET, "before"),
        "killed taking the password away",
    );
    assert!(secret_value(&sandbox, "team-a", "team-a", "password").is_none());
    assert!(tenant_source(&sandbox)["spec"]["secretRef"].is_null());
}

on_both_terraforms!(
    write_only_credentials_reach_the_secrets_and_nothing_else,
    a_kill_at_each_step_of_a_credentials_change_converges
);
