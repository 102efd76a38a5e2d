//! Actions (Terraform 1.14+), on Terraform 1.15: `gitlabflux_reconcile` requests a reconcile
//! and returns once Flux handled it, by `-invoke` and by `action_trigger`;
//! `gitlabflux_agent_token_rotate` rotates an agent's token on demand with no window without
//! a valid token, and the token resource takes the new token at its next apply.

mod common;

use common::agents::{active_tokens, agent_state, fleet_config, secret_token};
use common::{SandboxProcess, Workspace, flux_2_9_bootstrap, kubectl_json};
use serde_json::{Value, json};

/// Flux 2.9.4 with a tenant whose own reconcile on change is off; `trigger` goes into the
/// tenant's lifecycle.
fn flux(sandbox: &SandboxProcess, interval: &str, trigger: &str) -> String {
    format!(
        r#"{provider}
{bootstrap}
resource "gitlabflux_flux_tenant" "team_a" {{
  name                = "team-a"
  namespaces          = ["team-a"]
  source              = {{ url = "https://gitlab.example.com/team-a/deploy.git" }}
  interval            = "{interval}"
  reconcile_on_change = false
  depends_on          = [gitlabflux_flux_bootstrap.this]
  {trigger}
}}

action "gitlabflux_reconcile" "flux" {{
  config {{
    objects = [
      {{ kind = "GitRepository", name = "flux-system" }},
      {{ kind = "Kustomization", name = "flux-system" }},
    ]
    timeout = "30s"
  }}
}}

action "gitlabflux_reconcile" "team_a" {{
  config {{
    objects = [{{ kind = "Kustomization", namespace = "team-a", name = "team-a" }}]
    timeout = "30s"
  }}
}}
"#,
        provider = common::provider_block(sandbox),
        bootstrap = flux_2_9_bootstrap(""),
    )
}

fn flux_object(sandbox: &SandboxProcess, kind: &str, namespace: &str, name: &str) -> Value {
    kubectl_json(sandbox, &["get", kind, "-n", namespace, name]).expect(name)
}

fn requested(object: &Value) -> Option<String> {
    object["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        .as_str()
        .map(str::to_string)
}

const KUSTOMIZATIONS: &str = "kustomizations.kustomize.toolkit.fluxcd.io";
const GIT_REPOSITORIES: &str = "gitrepositories.source.toolkit.fluxcd.io";

/// `-invoke` annotates each object, reports each one, and returns after Flux handled the
/// request; an `action_trigger` runs the action after the tenant changes.
fn reconcile_runs_on_invoke_and_on_its_trigger() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    let trigger = r#"lifecycle {
    action_trigger {
      events  = [after_update]
      actions = [action.gitlabflux_reconcile.team_a]
    }
  }"#;
    ws.write(&flux(&sandbox, "5m", trigger));
    ws.apply();
    let before = requested(&flux_object(
        &sandbox,
        GIT_REPOSITORIES,
        "flux-system",
        "flux-system",
    ));

    let out = ws.ok(&[
        "apply",
        "-auto-approve",
        "-no-color",
        "-invoke=action.gitlabflux_reconcile.flux",
    ]);
    assert!(
        out.stdout.contains("All 2 objects reconciled"),
        "{}",
        out.text()
    );
    for (kind, name) in [
        (GIT_REPOSITORIES, "flux-system"),
        (KUSTOMIZATIONS, "flux-system"),
    ] {
        let object = flux_object(&sandbox, kind, "flux-system", name);
        let at = requested(&object).expect("requested");
        assert_ne!(Some(&at), before.as_ref(), "{kind}: a new request");
        assert_eq!(
            object["status"]["lastHandledReconcileAt"], at,
            "{kind}: handled before the action returned"
        );
    }
    ws.assert_no_changes();

    let tenant_before = requested(&flux_object(&sandbox, KUSTOMIZATIONS, "team-a", "team-a"));
    assert_eq!(
        tenant_before, None,
        "the tenant reconciles on change only by its trigger"
    );
    ws.write(&flux(&sandbox, "10m", trigger));
    let out = ws.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        out.stdout.contains("All 1 objects reconciled"),
        "{}",
        out.text()
    );
    let tenant = flux_object(&sandbox, KUSTOMIZATIONS, "team-a", "team-a");
    let at = requested(&tenant).expect("the trigger requested a reconcile");
    assert_eq!(tenant["status"]["lastHandledReconcileAt"], at.as_str());
}

/// A reconcile of an object that does not exist fails, naming it.
fn reconcile_of_a_missing_object_fails_naming_it() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&flux(&sandbox, "5m", ""));
    ws.apply();
    ws.write(&format!(
        "{}\naction \"gitlabflux_reconcile\" \"missing\" {{\n  config {{\n    objects = [{{ kind = \"Kustomization\", name = \"nope\" }}]\n  }}\n}}\n",
        flux(&sandbox, "5m", "")
    ));
    let error = ws.error(
        &[
            "apply",
            "-auto-approve",
            "-invoke=action.gitlabflux_reconcile.missing",
        ],
        "",
    );
    let text = format!("{} {}", error["summary"], error["detail"]);
    assert!(text.contains("Kustomization flux-system/nope"), "{error:#}");
}

const ROTATE: &str = r#"
action "gitlabflux_agent_token_rotate" "prod" {
  config {
    project           = gitlabflux_agent_token.prod.project
    agent_id          = gitlabflux_agent_token.prod.agent_id
    name              = gitlabflux_agent_token.prod.name
    kubernetes_secret = { namespace = "gitlab-agent", name = "gitlab-agent-token" }
  }
}
"#;

/// The rotate action replaces the token agentk runs with no window without a valid one,
/// restarting the workloads the token resource recorded on the Secret (the action names
/// none); the next apply of the token resource takes the new token and plans clean after.
fn rotate_action_rotates_with_the_resources_guarantees() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    ws.write(&format!("{}{ROTATE}", fleet_config(&sandbox, "v1")));
    ws.apply();
    let old_id = ws.resource("gitlabflux_agent_token.prod")["token_id"].clone();
    let old_value = secret_token(&sandbox).expect("delivered");

    let out = ws.ok(&[
        "apply",
        "-auto-approve",
        "-no-color",
        "-invoke=action.gitlabflux_agent_token_rotate.prod",
    ]);
    assert!(
        out.stdout.contains("delivered and confirmed in use"),
        "{}",
        out.text()
    );
    let new_value = secret_token(&sandbox).expect("delivered");
    assert_ne!(new_value, old_value, "a new token in the Secret");
    let agent = agent_state(&sandbox, "prod").expect("agent");
    let active: Vec<Value> = active_tokens(&agent)
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(active.len(), 1, "{agent:#}");
    assert_ne!(active[0], old_id, "the old token is revoked");
    assert_eq!(
        sandbox.gitlab_state()["revoked_while_running"],
        json!([]),
        "no token was revoked while agentk ran it"
    );

    // The resource takes the new token at its next apply, without another rotation.
    ws.apply();
    assert_eq!(
        ws.resource("gitlabflux_agent_token.prod")["token_id"],
        active[0]
    );
    assert_eq!(secret_token(&sandbox).expect("delivered"), new_value);
    ws.assert_no_changes();
}

on_terraform!(
    on_terraform_1_15,
    V1_15,
    reconcile_runs_on_invoke_and_on_its_trigger,
    reconcile_of_a_missing_object_fails_naming_it,
    rotate_action_rotates_with_the_resources_guarantees
);
