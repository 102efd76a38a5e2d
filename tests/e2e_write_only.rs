//! Write-only Git credentials (Terraform 1.11+): a tenant's `source.http.password_wo` and a
//! bootstrap's `sync.bearer_token_wo` reach the Secrets their sources read, never state or
//! the trace log; a version bump delivers a new value and asks for a reconcile; a deleted
//! Secret is repaired; credentials no longer given, and all of them at destroy, are taken
//! away; a token version without its token is refused.

mod common;

use base64::Engine as _;
use common::{SandboxProcess, Workspace, flux_fixture_of, kubectl, kubectl_json, provider_block};
use serde_json::Value;

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

on_both_terraforms!(write_only_credentials_reach_the_secrets_and_nothing_else);
