//! Resource identity (Terraform 1.12+), on Terraform 1.15: every resource reports its
//! identity in state, and `import { to, identity = { ... } }` brings what another
//! configuration made (or what was made by hand) under management with a clean plan.

mod common;

use common::agents::fleet_config;
use common::clusters::{fleet_on_named_cluster, provider_with_sandbox_as};
use common::{
    SandboxProcess, Workspace, block_on, flux_2_9_bootstrap, flux_fixture_of, provider_block,
};
use serde_json::{Value, json};

/// The agent fleet plus Flux 2.9.4 with a tenant and a receiver.
fn config(sandbox: &SandboxProcess) -> String {
    format!(
        r#"{fleet}
{bootstrap}
resource "gitlabflux_flux_tenant" "team_a" {{
  name       = "team-a"
  namespaces = ["team-a"]
  source     = {{ url = "https://gitlab.example.com/team-a/deploy.git" }}
  depends_on = [gitlabflux_flux_bootstrap.this]
}}

resource "gitlabflux_flux_receiver" "ci" {{
  name       = "gitlab-ci"
  projects   = ["fleet/gitops"]
  resources  = [{{ kind = "GitRepository", name = "flux-system" }}]
  depends_on = [gitlabflux_flux_bootstrap.this]
}}
"#,
        fleet = fleet_config(sandbox, "v1"),
        bootstrap = flux_2_9_bootstrap(""),
    )
}

/// Each resource's identity as `terraform show -json` reports it.
fn identities(ws: &Workspace) -> Vec<(String, Value)> {
    let state = ws.json(&["show", "-json"]);
    state["values"]["root_module"]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            let address = r["address"].as_str().expect("address").to_string();
            (address, r["identity"].clone())
        })
        .collect()
}

fn import_block(address: &str, identity: &Value) -> String {
    let fields: Vec<String> = identity
        .as_object()
        .expect("identity object")
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    format!(
        "import {{\n  to = {address}\n  identity = {{ {} }}\n}}\n",
        fields.join(", ")
    )
}

/// A new workspace with `config` and an `import` block per (address, identity), applied:
/// the apply's output must contain each of `shows` and a plan after it has nothing to do.
fn imported_by_identity(config: &str, expected: &[(&str, Value)], shows: &[&str]) -> Workspace {
    let target = Workspace::new();
    let imports: String = expected
        .iter()
        .map(|(address, identity)| import_block(address, identity))
        .collect();
    target.write(&format!("{config}\n{imports}"));
    let out = target.ok(&["apply", "-auto-approve", "-no-color"]);
    for text in shows {
        assert!(out.stdout.contains(text), "{text}:\n{}", out.text());
    }
    target.assert_no_changes();
    target
}

/// The bootstrap in `ws` recorded the objects it applied.
fn assert_inventory_recorded(ws: &Workspace) {
    let inventory = &ws.resource("gitlabflux_flux_bootstrap.this")["inventory"];
    assert!(
        inventory.as_array().is_some_and(|i| !i.is_empty()),
        "the bootstrap records what it applied: {inventory}"
    );
}

/// Identities are in state after apply and refresh; a second configuration imports every
/// resource by identity alone and converges. The bootstrap's import records its namespace
/// only (what Flux was installed from cannot be read back), so the first apply re-applies
/// the configuration to it in place; every other resource imports with no change.
fn every_resource_is_imported_by_identity() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let source = Workspace::new();
    source.write(&config(&sandbox));
    source.apply();
    source.ok(&["refresh", "-no-color"]);
    let found = identities(&source);
    let agent_id = source.resource("gitlabflux_agent.prod")["agent_id"].clone();
    let token_id = source.resource("gitlabflux_agent_token.prod")["token_id"].clone();
    let expected = [
        (
            "gitlabflux_agent.prod",
            json!({ "project": "fleet/agents", "name": "prod" }),
        ),
        (
            "gitlabflux_agent_install.prod",
            json!({ "namespace": "gitlab-agent", "name": "gitlab-agent", "cluster_name": null }),
        ),
        (
            "gitlabflux_agent_token.prod",
            json!({ "project": "fleet/agents", "agent_id": agent_id, "token_id": token_id, "cluster_name": null }),
        ),
        (
            "gitlabflux_flux_bootstrap.this",
            json!({ "namespace": "flux-system", "cluster_name": null }),
        ),
        (
            "gitlabflux_flux_receiver.ci",
            json!({ "namespace": "flux-system", "name": "gitlab-ci", "cluster_name": null }),
        ),
        (
            "gitlabflux_flux_tenant.team_a",
            json!({ "namespace": "team-a", "name": "team-a", "cluster_name": null }),
        ),
    ];
    for (address, identity) in &expected {
        let reported = found
            .iter()
            .find(|(a, _)| a == address)
            .map(|(_, i)| i.clone());
        assert_eq!(reported.as_ref(), Some(identity), "{address}");
    }

    // The one change is the bootstrap's re-apply.
    let target = imported_by_identity(
        &config(&sandbox),
        &expected,
        &[
            "6 imported, 0 added, 1 changed, 0 destroyed",
            "gitlabflux_flux_bootstrap.this: Modifying...",
        ],
    );
    assert_eq!(identities(&target).len(), expected.len());
    assert_inventory_recorded(&target);
}

/// Flux with every setting at its default but the distribution (which the sandbox cannot
/// serve from its default source, so an import's inputs always differ from this: the case
/// where they do not is the unit test `results_carry_over_only_from_an_applied_prior_...`).
fn minimal_flux(sandbox: &SandboxProcess) -> String {
    format!(
        r#"{provider}
resource "gitlabflux_flux_bootstrap" "this" {{
  distribution = {{ source = "{fixture}" }}
}}
"#,
        provider = provider_block(sandbox),
        fixture = flux_fixture_of("v2.9.4"),
    )
}

/// A bootstrap imported by ID is applied once, so it records its objects and later drift
/// is seen; an import of a namespace where no Flux runs is refused.
fn an_imported_bootstrap_records_what_it_applied_and_needs_flux() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let source = Workspace::new();
    source.write(&minimal_flux(&sandbox));
    source.apply();

    let target = Workspace::new();
    target.write(&minimal_flux(&sandbox));
    target.ok(&[
        "import",
        "-no-color",
        "gitlabflux_flux_bootstrap.this",
        "flux-system",
    ]);
    let out = target.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        out.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        out.text()
    );
    assert_inventory_recorded(&target);
    target.assert_no_changes();

    let elsewhere = Workspace::new();
    elsewhere.write(&minimal_flux(&sandbox));
    let out = elsewhere.run(&[
        "import",
        "-no-color",
        "gitlabflux_flux_bootstrap.this",
        "default",
    ]);
    assert!(
        !out.success() && out.text().contains("Flux not found"),
        "{}",
        out.text()
    );
}

/// An agent registered by hand, with its config file committed by hand, is imported by
/// identity and plans clean.
fn an_agent_made_by_hand_is_imported_by_identity() {
    let sandbox = SandboxProcess::start(&[]);
    let status = block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::POST,
                "/projects/fleet%2Fagents/cluster_agents",
            )
            .json(&json!({ "name": "legacy" }))
            .send()
            .await
            .expect("register by hand")
            .status()
    });
    assert!(status.is_success(), "{status}");
    let ws = Workspace::new();
    ws.write(&format!(
        r#"{}
resource "gitlabflux_agent" "legacy" {{
  project = "fleet/agents"
  name    = "legacy"
}}

import {{
  to       = gitlabflux_agent.legacy
  identity = {{ project = "fleet/agents", name = "legacy" }}
}}
"#,
        provider_block(&sandbox)
    ));
    let out = ws.ok(&["plan", "-no-color"]);
    assert!(
        out.stdout
            .contains("1 to import, 0 to add, 0 to change, 0 to destroy"),
        "{}",
        out.text()
    );
    ws.apply();
    ws.assert_no_changes();
}

/// The agent fleet, Flux and a tenant in one of the provider's `clusters`, named by
/// `cluster_name`.
fn named_cluster_config(sandbox: &SandboxProcess) -> String {
    let provider = provider_with_sandbox_as(sandbox, "prod");
    format!(
        r#"{fleet}
{bootstrap_named}
resource "gitlabflux_flux_tenant" "team_a" {{
  cluster_name = "prod"
  name         = "team-a"
  namespaces   = ["team-a"]
  source       = {{ url = "https://gitlab.example.com/team-a/deploy.git" }}
  depends_on   = [gitlabflux_flux_bootstrap.this]
}}
"#,
        fleet = fleet_on_named_cluster(sandbox, &provider, "prod"),
        bootstrap_named = flux_2_9_bootstrap("cluster_name = \"prod\""),
    )
}

/// In a fleet, where the provider has no default cluster, an identity carries the
/// resource's `cluster_name` and an import by it reads that cluster (an agent, being
/// GitLab's only, names none).
fn an_identity_names_the_cluster_it_is_in() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let source = Workspace::new();
    source.write(&named_cluster_config(&sandbox));
    source.apply();
    let agent_id = source.resource("gitlabflux_agent.prod")["agent_id"].clone();
    let token_id = source.resource("gitlabflux_agent_token.prod")["token_id"].clone();
    let expected = [
        (
            "gitlabflux_agent.prod",
            json!({ "project": "fleet/agents", "name": "prod" }),
        ),
        (
            "gitlabflux_agent_install.prod",
            json!({ "namespace": "gitlab-agent", "name": "gitlab-agent", "cluster_name": "prod" }),
        ),
        (
            "gitlabflux_agent_token.prod",
            json!({ "project": "fleet/agents", "agent_id": agent_id, "token_id": token_id, "cluster_name": "prod" }),
        ),
        (
            "gitlabflux_flux_bootstrap.this",
            json!({ "namespace": "flux-system", "cluster_name": "prod" }),
        ),
        (
            "gitlabflux_flux_tenant.team_a",
            json!({ "namespace": "team-a", "name": "team-a", "cluster_name": "prod" }),
        ),
    ];
    let mut found = identities(&source);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let found: Vec<(&str, Value)> = found.iter().map(|(a, i)| (a.as_str(), i.clone())).collect();
    assert_eq!(found, expected);

    let target = imported_by_identity(
        &named_cluster_config(&sandbox),
        &expected,
        &["5 imported, 0 added, 1 changed, 0 destroyed"],
    );
    assert_inventory_recorded(&target);
    let tenant = target.resource("gitlabflux_flux_tenant.team_a");
    assert_eq!(tenant["cluster_name"], "prod");
    // The token's import found its Secret in that cluster, so nothing was delivered again.
    let token = target.resource("gitlabflux_agent_token.prod");
    assert_eq!(token["token_id"], token_id);
    assert_eq!(
        token["kubernetes_secret"]["name"],
        source.resource("gitlabflux_agent_token.prod")["kubernetes_secret"]["name"]
    );
}

on_terraform!(
    on_terraform_1_15,
    V1_15,
    every_resource_is_imported_by_identity,
    an_agent_made_by_hand_is_imported_by_identity,
    an_identity_names_the_cluster_it_is_in,
    an_imported_bootstrap_records_what_it_applied_and_needs_flux
);
