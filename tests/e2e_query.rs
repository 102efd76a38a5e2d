//! List resources (Terraform 1.14+), on Terraform 1.15: `terraform query` finds the agents
//! of a project, the tokens of an agent, the deploy keys a cluster holds and the tenants of
//! a cluster, and `-generate-config-out` turns the results into configuration that imports
//! and plans clean.

mod common;

use common::agents::fleet_config;
use common::{SandboxProcess, Workspace, block_on, flux_2_9_bootstrap, kubectl, provider_block};
use serde_json::{Value, json};

/// The agent fleet plus Flux 2.9.4 with two tenants.
fn fleet(sandbox: &SandboxProcess) -> String {
    let tenant = |name: &str| {
        format!(
            r#"resource "gitlabflux_flux_tenant" "{name}" {{
  name       = "{name}"
  namespaces = ["{name}"]
  source     = {{ url = "https://gitlab.example.com/{name}/deploy.git" }}
  depends_on = [gitlabflux_flux_bootstrap.this]
}}
"#
        )
    };
    format!(
        r#"{fleet}
{bootstrap}{a}{b}"#,
        fleet = fleet_config(sandbox, "v1"),
        bootstrap = flux_2_9_bootstrap(""),
        a = tenant("team-a"),
        b = tenant("team-b"),
    )
}

const QUERY: &str = r#"list "gitlabflux_agent" "agents" {
  provider = gitlabflux
  config {
    project = "fleet/agents"
  }
}

list "gitlabflux_flux_tenant" "tenants" {
  provider = gitlabflux
}
"#;

/// The messages of `terraform query -json`.
fn query_messages(ws: &Workspace) -> Vec<Value> {
    let out = ws.ok(&["query", "-json", "-no-color"]);
    out.stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect()
}

/// The results of `terraform query -json`: (list address, display name, identity).
fn results(ws: &Workspace) -> Vec<(String, String, Value)> {
    found_in(&query_messages(ws))
}

fn found_in(messages: &[Value]) -> Vec<(String, String, Value)> {
    messages
        .iter()
        .filter(|m| m["type"] == "list_resource_found")
        .map(|m| {
            let found = &m["list_resource_found"];
            (
                found["address"].as_str().unwrap_or_default().to_string(),
                found["display_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                found["identity"].clone(),
            )
        })
        .collect()
}

fn register_agent_by_hand(sandbox: &SandboxProcess, name: &str) {
    let status = block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::POST,
                "/projects/fleet%2Fagents/cluster_agents",
            )
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("register by hand")
            .status()
    });
    assert!(status.is_success(), "{status}");
}

/// A query lists the agents of a project (one registered by hand among them) and the
/// tenants of the cluster, with their identities; the configuration it generates imports
/// them and plans clean.
fn a_query_lists_agents_and_tenants_and_generates_importable_configuration() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let source = Workspace::new();
    source.write(&fleet(&sandbox));
    source.apply();
    register_agent_by_hand(&sandbox, "legacy");

    let ws = Workspace::new();
    ws.write(&provider_block(&sandbox));
    std::fs::write(ws.path().join("fleet.tfquery.hcl"), QUERY).expect("write query");
    let mut found = results(&ws);
    found.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        found,
        [
            (
                "list.gitlabflux_agent.agents".to_string(),
                "fleet/agents:legacy".to_string(),
                json!({ "project": "fleet/agents", "name": "legacy" })
            ),
            (
                "list.gitlabflux_agent.agents".to_string(),
                "fleet/agents:prod".to_string(),
                json!({ "project": "fleet/agents", "name": "prod" })
            ),
            (
                "list.gitlabflux_flux_tenant.tenants".to_string(),
                "tenant team-a in team-a".to_string(),
                json!({ "namespace": "team-a", "name": "team-a", "cluster_name": null })
            ),
            (
                "list.gitlabflux_flux_tenant.tenants".to_string(),
                "tenant team-b in team-b".to_string(),
                json!({ "namespace": "team-b", "name": "team-b", "cluster_name": null })
            ),
        ]
    );

    ws.ok(&["query", "-no-color", "-generate-config-out=generated.tf"]);
    let generated =
        std::fs::read_to_string(ws.path().join("generated.tf")).expect("generated config");
    assert!(generated.contains("import {"), "{generated}");
    let out = ws.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        out.stdout
            .contains("4 imported, 0 added, 0 changed, 0 destroyed"),
        "{}\n{generated}",
        out.text()
    );
    ws.assert_no_changes();
}

/// The tokens of an agent are listed by their ids.
fn a_query_lists_the_tokens_of_an_agent() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let source = Workspace::new();
    source.write(&fleet_config(&sandbox, "v1"));
    source.apply();
    let agent = source.resource("gitlabflux_agent.prod");
    let token = source.resource("gitlabflux_agent_token.prod");
    let ws = Workspace::new();
    ws.write(&provider_block(&sandbox));
    let query = format!(
        "list \"gitlabflux_agent_token\" \"tokens\" {{\n  provider = gitlabflux\n  config {{\n    project  = \"fleet/agents\"\n    agent_id = {}\n  }}\n}}\n",
        agent["agent_id"]
    );
    std::fs::write(ws.path().join("tokens.tfquery.hcl"), query).expect("write query");
    let found = results(&ws);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].2,
        json!({ "project": "fleet/agents", "agent_id": agent["agent_id"], "token_id": token["token_id"], "cluster_name": null })
    );
}

/// A deploy key of the project whose private half this cluster holds, and one added by hand.
fn deploy_keys(sandbox: &SandboxProcess) -> String {
    format!(
        r#"{provider}
resource "gitlabflux_deploy_key" "flux" {{
  project           = "fleet/gitops"
  title             = "flux prod"
  known_hosts       = "gitlab.example.com {HOST_KEY}"
  kubernetes_secret = {{ namespace = "flux-system", name = "flux-git" }}
}}
"#,
        provider = provider_block(sandbox)
    )
}

/// A throwaway public key, standing for one a person added by hand.
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGW/+CWCyrMDjw/i56QHqliINRCdRqnBwIFdMdYtxVtT";

fn add_deploy_key_by_hand(sandbox: &SandboxProcess) -> Value {
    block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::POST,
                "/projects/fleet%2Fgitops/deploy_keys",
            )
            .json(&json!({ "title": "laptop", "key": HOST_KEY }))
            .send()
            .await
            .expect("add by hand")
            .json::<Value>()
            .await
            .expect("added key")
    })
}

/// The deploy keys of a project are listed with the Secret holding each: the one the
/// provider delivered is found and its generated configuration imports and plans clean;
/// the one added by hand, whose private half no Secret holds, is named in a warning.
fn a_query_lists_the_deploy_keys_a_secret_of_the_cluster_holds() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    kubectl(&sandbox, &["create", "namespace", "flux-system"]);
    let source = Workspace::new();
    source.write(&deploy_keys(&sandbox));
    source.apply();
    let key = source.resource("gitlabflux_deploy_key.flux");
    let by_hand = add_deploy_key_by_hand(&sandbox);

    let ws = Workspace::new();
    ws.write(&provider_block(&sandbox));
    let query = "list \"gitlabflux_deploy_key\" \"gitops\" {\n  provider = gitlabflux\n  config {\n    project = \"fleet/gitops\"\n  }\n}\n";
    std::fs::write(ws.path().join("keys.tfquery.hcl"), query).expect("write query");
    let messages = query_messages(&ws);
    assert_eq!(
        found_in(&messages),
        [(
            "list.gitlabflux_deploy_key.gitops".to_string(),
            format!(
                "deploy key {} \"flux prod\" in flux-system/flux-git",
                key["deploy_key_id"]
            ),
            json!({
                "project": "fleet/gitops",
                "deploy_key_id": key["deploy_key_id"],
                "secret_namespace": "flux-system",
                "secret_name": "flux-git",
                "cluster_name": null,
            })
        )]
    );
    let warning = messages
        .iter()
        .find(|m| {
            m["type"] == "diagnostic"
                && m["diagnostic"]["severity"] == "warning"
                && m["diagnostic"]["summary"] != "Provider development overrides are in effect"
        })
        .unwrap_or_else(|| panic!("no warning in {messages:#?}"));
    assert_eq!(
        warning["diagnostic"]["summary"],
        "1 deploy key of fleet/gitops is held by no Secret in this cluster"
    );
    let detail = warning["diagnostic"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("{} \"laptop\"", by_hand["id"])),
        "{detail}"
    );

    ws.ok(&["query", "-no-color", "-generate-config-out=generated.tf"]);
    let generated =
        std::fs::read_to_string(ws.path().join("generated.tf")).expect("generated config");
    let out = ws.ok(&["apply", "-auto-approve", "-no-color"]);
    assert!(
        out.stdout
            .contains("1 imported, 0 added, 0 changed, 0 destroyed"),
        "{}\n{generated}",
        out.text()
    );
    ws.assert_no_changes();
    let imported = ws.resource("gitlabflux_deploy_key.gitops_0");
    assert_eq!(imported["fingerprint_sha256"], key["fingerprint_sha256"]);
}

on_terraform!(
    on_terraform_1_15,
    V1_15,
    a_query_lists_agents_and_tenants_and_generates_importable_configuration,
    a_query_lists_the_tokens_of_an_agent,
    a_query_lists_the_deploy_keys_a_secret_of_the_cluster_holds
);
