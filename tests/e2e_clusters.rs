//! The provider's `clusters` map and `cluster_name`: a fleet's cluster credentials given once
//! to the provider, named by resources, and never written to state; an entry unknown at plan
//! time (its cluster is made in the same run) still plans.

mod common;

use common::agents::one_line;
use common::clusters::{connection, fleet_on_named_cluster as config, provider_with_named_cluster};
use common::{SandboxProcess, Workspace, kubectl_json};

/// A provider reaching the sandbox's cluster as `prod` only. `prod_host` is an HCL expression.
fn provider(sandbox: &SandboxProcess, prod_host: &str) -> String {
    provider_with_named_cluster(sandbox, "prod", prod_host)
}

fn named_clusters_keep_credentials_out_of_state() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let (server, token, _) = connection(&sandbox);
    let ws = Workspace::new();
    ws.write(&config(
        &sandbox,
        &provider(&sandbox, &format!("{server:?}")),
        "prod",
    ));
    ws.apply();
    ws.assert_no_changes();
    let agentk = kubectl_json(
        &sandbox,
        &["get", "deploy", "-n", "gitlab-agent", "gitlab-agent"],
    );
    assert!(agentk.is_some(), "agentk landed in the named cluster");
    let state = ws.state_file();
    assert!(state.contains("\"cluster_name\": \"prod\""), "{state}");
    assert!(!state.contains(&token), "the cluster token is not in state");
    ws.destroy();
}

fn an_unknown_name_or_both_forms_are_refused_on_the_attribute() {
    let sandbox = SandboxProcess::start(&[]);
    let (server, _, _) = connection(&sandbox);
    let ws = Workspace::new();
    let provider = provider(&sandbox, &format!("{server:?}"));
    ws.write(&config(&sandbox, &provider, "staging"));
    let d = ws.error(&["apply", "-auto-approve"], "No such cluster");
    let detail = one_line(d["detail"].as_str().unwrap_or_default());
    assert!(detail.contains("it has: prod"), "{detail}");
    assert!(
        d["snippet"]["code"]
            .as_str()
            .unwrap_or_default()
            .contains("cluster_name"),
        "{d:#}"
    );
    let both = config(&sandbox, &provider, "prod").replace(
        "  cluster_name = \"prod\"\n",
        "  cluster_name = \"prod\"\n  cluster      = { host = \"https://elsewhere.example\" }\n",
    );
    ws.write(&both);
    ws.error(&["apply", "-auto-approve"], "Both cluster and cluster_name");
}

fn a_cluster_made_in_the_same_run_plans_with_unknown_values() {
    let sandbox = SandboxProcess::start(&[]);
    let (server, _, _) = connection(&sandbox);
    let ws = Workspace::new();
    // The host comes from a resource not applied yet: unknown when the provider is configured.
    let provider = provider(&sandbox, "terraform_data.cluster.output");
    let made = format!("resource \"terraform_data\" \"cluster\" {{\n  input = {server:?}\n}}\n");
    ws.write(&format!("{made}\n{}", config(&sandbox, &provider, "prod")));
    let out = ws.ok(&["plan", "-no-color"]);
    assert!(
        out.text()
            .contains("gitlabflux_agent_install.prod will be created"),
        "{}",
        out.text()
    );
}

on_both_terraforms!(
    named_clusters_keep_credentials_out_of_state,
    an_unknown_name_or_both_forms_are_refused_on_the_attribute,
    a_cluster_made_in_the_same_run_plans_with_unknown_values,
);
