//! GitLab agents end to end, through the real terraform against the sandbox with simulated
//! controllers: registration with shared access, agentk install, token delivery and
//! zero-downtime rotation, drift repair, import, destroy and bad inputs.

mod common;

use common::agents::{active_tokens, agent_state, fleet_config, one_line, secret_token};
use common::{
    Provider, SandboxProcess, Workspace, block_on, kubectl, kubectl_json, provider_block,
};

fn agent_install_and_token_apply_rotate_repair_and_destroy() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let mut ws = Workspace::new();
    let log = ws.log_trace();
    ws.write(&fleet_config(&sandbox, "v1"));
    ws.apply();
    ws.assert_no_changes();

    // GitLab: the agent, its configuration file, one active token that agentk used.
    let agent = agent_state(&sandbox, "prod").expect("agent registered");
    let tokens = active_tokens(&agent);
    assert_eq!(tokens.len(), 1);
    assert!(
        !tokens[0]["last_used_at"].is_null(),
        "agentk used the token it was given"
    );
    let state = ws.resource("gitlabflux_agent.prod");
    let yaml = state["config_yaml"].as_str().expect("config_yaml");
    let (files, commits_after_apply) = sandbox.gitlab_repo("fleet/agents");
    assert_eq!(
        files[".gitlab/agents/prod/config.yaml"], yaml,
        "config file committed as planned"
    );
    ws.apply();
    assert_eq!(
        sandbox.gitlab_repo("fleet/agents").1,
        commits_after_apply,
        "an unchanged config makes no commit"
    );
    // An in-place config change commits the file and keeps the registration: no second
    // create request for an agent that exists.
    let creates = |sandbox: &SandboxProcess| {
        sandbox.stats()["gitlab"]["POST /api/v4/projects/{id}/cluster_agents"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(creates(&sandbox), 1);
    ws.write(&fleet_config(&sandbox, "v1").replace(
        r#"groups = ["fleet-ci"]"#,
        r#"groups = ["fleet-ci", "fleet-ops"]"#,
    ));
    ws.assert_only_change("gitlabflux_agent.prod", "update");
    ws.apply();
    assert_eq!(
        sandbox.gitlab_repo("fleet/agents").1,
        commits_after_apply + 1
    );
    assert_eq!(creates(&sandbox), 1, "the update posted a create");
    assert_eq!(
        agent_state(&sandbox, "prod").expect("agent")["id"],
        ws.resource("gitlabflux_agent.prod")["agent_id"]
    );
    ws.write(&fleet_config(&sandbox, "v1"));
    ws.apply();
    assert!(
        yaml.contains("impersonate:")
            && yaml.contains("ci-deployer")
            && yaml.contains("ci_job: {}"),
        "{yaml}"
    );
    assert_eq!(state["kubecontext"], "fleet/agents:prod");

    // Cluster: agentk with impersonation-only RBAC, and the token in its Secret.
    let deploy = kubectl_json(
        &sandbox,
        &["get", "deploy", "-n", "gitlab-agent", "gitlab-agent"],
    )
    .expect("agentk Deployment");
    let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--token-file=") && args.contains("--kas-address=ws://"),
        "{args}"
    );
    let role = kubectl_json(
        &sandbox,
        &[
            "get",
            "clusterrole",
            "gitlabflux:gitlab-agent:gitlab-agent:impersonate",
        ],
    )
    .expect("impersonation ClusterRole");
    // Impersonation of users, groups, service accounts and their extras: nothing else.
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
            {"apiGroups": ["authentication.k8s.io"], "resources": ["userextras/*", "uids"], "verbs": ["impersonate"]},
        ])
    );
    let first_token = secret_token(&sandbox).expect("token in Secret");
    assert!(first_token.starts_with("glagent-"));

    // Rotation through the trigger.
    let old_id = tokens[0]["id"].clone();
    ws.write(&fleet_config(&sandbox, "v2"));
    ws.apply();
    let agent = agent_state(&sandbox, "prod").expect("agent");
    let active = active_tokens(&agent);
    assert_eq!(active.len(), 1, "exactly one active token after rotation");
    assert_ne!(active[0]["id"], old_id);
    // Exactly two at once: the new token existed before the old one was revoked (one would
    // mean a gap without a valid token), and GitLab's limit of two was respected.
    assert_eq!(agent["max_active_tokens"].as_u64(), Some(2));
    let old = agent["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == old_id)
        .expect("old token")
        .clone();
    assert_eq!(old["status"], "revoked");
    let confirmed = active[0]["last_used_at"].as_str().expect("new token used");
    let revoked = old["revoked_at"].as_str().expect("revocation time");
    assert!(
        confirmed <= revoked,
        "old token revoked only after the new one was used"
    );
    let second_token = secret_token(&sandbox).expect("token in Secret");
    assert_ne!(second_token, first_token);
    ws.assert_no_changes();

    // The token value is nowhere in state or logs.
    let log = std::fs::read_to_string(log).expect("log");
    for value in [&first_token, &second_token] {
        assert!(!ws.state_file().contains(value.as_str()), "token in state");
        assert!(
            !log.contains(value.as_str()),
            "token in TF_LOG=trace output"
        );
    }

    // Drift: the Secret deleted out of band is repaired with a fresh token.
    kubectl(
        &sandbox,
        &[
            "delete",
            "secret",
            "-n",
            "gitlab-agent",
            "gitlab-agent-token",
        ],
    );
    let changes = ws.planned_changes();
    assert!(
        changes
            .iter()
            .any(|(a, _)| a == "gitlabflux_agent_token.prod"),
        "{changes:?}"
    );
    ws.apply();
    assert!(secret_token(&sandbox).is_some(), "Secret repaired");
    ws.assert_no_changes();

    // Drift: the token revoked out of band is replaced.
    let agent = agent_state(&sandbox, "prod").expect("agent");
    let current = active_tokens(&agent)[0]["id"].as_i64().expect("id");
    let agent_id = agent["id"].as_i64().expect("agent id");
    let revoked = block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::DELETE,
                &format!("/projects/fleet%2Fagents/cluster_agents/{agent_id}/tokens/{current}"),
            )
            .send()
            .await
    })
    .expect("revoke");
    assert_eq!(revoked.status(), 204, "revoked out of band");
    assert!(!ws.planned_changes().is_empty());
    ws.apply();
    assert_eq!(
        active_tokens(&agent_state(&sandbox, "prod").expect("agent")).len(),
        1
    );
    ws.assert_no_changes();

    // Destroy leaves nothing behind.
    ws.destroy();
    assert!(agent_state(&sandbox, "prod").is_none(), "agent deleted");
    let (files, _) = sandbox.gitlab_repo("fleet/agents");
    assert!(
        !files.contains_key(".gitlab/agents/prod/config.yaml"),
        "config file deleted"
    );
    let objects = sandbox.kube_objects().to_string();
    assert!(!objects.contains("gitlab-agent-token"), "Secret deleted");
    assert!(
        !objects.contains("gitlabflux:gitlab-agent:gitlab-agent"),
        "RBAC deleted"
    );
    assert!(
        kubectl_json(
            &sandbox,
            &["get", "deploy", "-n", "gitlab-agent", "gitlab-agent"]
        )
        .is_none()
    );
}

fn imports_reproduce_a_no_change_plan() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let source = Workspace::new();
    source.write(&fleet_config(&sandbox, "v1"));
    source.apply();
    let agent_id = source.resource("gitlabflux_agent.prod")["agent_id"]
        .as_i64()
        .expect("agent id");
    let token_id = source.resource("gitlabflux_agent_token.prod")["token_id"]
        .as_i64()
        .expect("token id");

    let target = Workspace::new();
    target.write(&fleet_config(&sandbox, "v1"));
    target.ok(&[
        "import",
        "-no-color",
        "gitlabflux_agent.prod",
        "fleet/agents:prod",
    ]);
    target.ok(&[
        "import",
        "-no-color",
        "gitlabflux_agent_install.prod",
        "gitlab-agent/gitlab-agent",
    ]);
    target.ok(&[
        "import",
        "-no-color",
        "gitlabflux_agent_token.prod",
        &format!("fleet/agents:{agent_id}:{token_id}"),
    ]);
    target.assert_no_changes();
}

fn bad_inputs_give_attribute_diagnostics_and_create_nothing() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    let groups: Vec<String> = (0..501).map(|i| format!("{{ id = \"g{i}\" }}")).collect();
    ws.write(&format!(
        r#"{}
resource "gitlabflux_agent" "bad_name" {{
  project = "fleet/agents"
  name    = "Prod_1"
}}
resource "gitlabflux_agent" "no_username" {{
  project = "fleet/agents"
  name    = "a"
  config = {{ ci_access = {{ groups = [{{ id = "fleet", access_as = "impersonate" }}] }} }}
}}
resource "gitlabflux_agent" "bad_access" {{
  project = "fleet/agents"
  name    = "b"
  config = {{ ci_access = {{ projects = [{{ id = "fleet/gitops", access_as = "root" }}] }} }}
}}
resource "gitlabflux_agent" "too_many" {{
  project = "fleet/agents"
  name    = "c"
  config = {{ ci_access = {{ groups = [{}] }} }}
}}
resource "gitlabflux_agent_token" "bad_destination" {{
  project  = "fleet/agents"
  agent_id = 1
  name     = "t"
  kubernetes_secret = {{ namespace = "Bad_NS", name = "s", key = "../x" }}
  restart = [{{ namespace = "default", name = "web/x" }}]
}}
resource "gitlabflux_agent_install" "bad_namespace" {{
  namespace    = "-agents"
  token_secret = {{ name = "s" }}
}}
"#,
        provider_block(&sandbox),
        groups.join(", ")
    ));
    let text = ws.run(&["apply", "-auto-approve", "-no-color"]).text();
    assert!(text.contains("Invalid agent name"), "{text}");
    assert!(text.contains("Missing impersonation identity"), "{text}");
    assert!(
        text.contains("config.ci_access.projects[0].access_as must be one of"),
        "{text}"
    );
    assert!(
        text.contains("holds 501 elements; at most 500 are allowed"),
        "{text}"
    );
    // Names Kubernetes would refuse (or that would not even make a URL) fail at plan.
    let flat = one_line(&text);
    for want in [
        "kubernetes_secret.namespace must be a DNS label",
        "kubernetes_secret.key must be a Secret key",
        "restart[0].name must be an object name",
        "namespace must be a DNS label",
    ] {
        assert!(flat.contains(want), "{want}: {flat}");
    }
    let deployments = kubectl_json(&sandbox, &["get", "deployments", "-A"]).expect("list");
    assert_eq!(
        deployments["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was applied to the cluster"
    );
    assert!(
        sandbox.gitlab_state()["agents"]
            .as_array()
            .expect("agents")
            .is_empty()
    );

    // A missing project and a token without the Maintainer role fail on the right attribute.
    let reporter_token = sandbox.add_gitlab_user("reporter", 20);
    let ws = Workspace::new();
    ws.write(&format!(
        r#"{}
resource "gitlabflux_agent" "missing" {{
  project = "fleet/nope"
  name    = "x"
}}
resource "gitlabflux_agent" "forbidden" {{
  project = "fleet/agents"
  name    = "y"
}}
"#,
        Provider::sandbox(&sandbox).gitlab("token", reporter_token)
    ));
    let text = ws.run(&["apply", "-auto-approve", "-no-color"]).text();
    assert!(text.contains("Project fleet/nope does not exist"), "{text}");
    assert!(text.contains("Maintainer"), "{text}");
    assert!(
        sandbox.gitlab_state()["agents"]
            .as_array()
            .expect("agents")
            .is_empty()
    );

    // A configuration branch that does not exist fails before the agent is registered.
    let ws = Workspace::new();
    ws.write(&format!(
        r#"{}
resource "gitlabflux_agent" "no_branch" {{
  project       = "fleet/agents"
  name          = "z"
  config_branch = "nope"
  config        = {{ flux = {{ webhook_receiver_url = "http://receiver" }} }}
}}
"#,
        provider_block(&sandbox)
    ));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = one_line(&out.text());
    assert!(
        text.contains("Configuration branch does not exist")
            && text.contains("goes to branch nope, which fleet/agents does not have"),
        "{text}"
    );
    assert!(
        sandbox.gitlab_state()["agents"]
            .as_array()
            .expect("agents")
            .is_empty(),
        "the agent was not registered"
    );
}

fn the_data_source_finds_an_agent() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    ws.write(&format!(
        r#"{}
resource "gitlabflux_agent" "prod" {{
  project = "fleet/agents"
  name    = "prod"
  config  = {{ flux = {{ webhook_receiver_url = "http://receiver" }} }}
}}
data "gitlabflux_agent" "prod" {{
  project = "fleet/agents"
  name    = gitlabflux_agent.prod.name
}}
output "found" {{
  value = data.gitlabflux_agent.prod
}}
"#,
        provider_block(&sandbox)
    ));
    ws.apply();
    let found = &ws.outputs()["found"]["value"];
    let agent = ws.resource("gitlabflux_agent.prod");
    assert_eq!(found["agent_id"], agent["agent_id"]);
    assert_eq!(found["kubecontext"], "fleet/agents:prod");
    assert!(
        found["config_yaml"]
            .as_str()
            .is_some_and(|y| y.contains("webhook_receiver_url: http://receiver"))
    );
}

fn expose_token_keeps_the_value_in_state_only_when_asked() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    let config = |expose: bool| {
        format!(
            r#"{}
resource "gitlabflux_agent" "ci" {{
  project = "fleet/agents"
  name    = "ci"
}}
resource "gitlabflux_agent_token" "ci" {{
  project      = "fleet/agents"
  agent_id     = gitlabflux_agent.ci.agent_id
  name         = "helm"
  expose_token = {expose}
}}
"#,
            provider_block(&sandbox)
        )
    };
    ws.write(&config(true));
    // The token is planned unknown and sensitive: never shown, even once known.
    let plan = ws.plan_json();
    let change = &plan["resource_changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["address"] == "gitlabflux_agent_token.ci")
        .expect("token change")["change"];
    assert_eq!(change["after_unknown"]["token"], true, "{change:#}");
    assert_eq!(change["after_sensitive"]["token"], true, "{change:#}");
    ws.apply();
    let token = ws.resource("gitlabflux_agent_token.ci")["token"]
        .as_str()
        .expect("exposed token")
        .to_string();
    assert!(token.starts_with("glagent-"));
    ws.assert_no_changes();

    // Turning it off rotates to a token whose value is never stored.
    ws.write(&config(false));
    ws.apply();
    assert!(ws.resource("gitlabflux_agent_token.ci")["token"].is_null());
    assert!(
        !ws.state_file().contains("glagent-"),
        "no token value in state"
    );
    ws.assert_no_changes();
}

/// An agent and a token delivered to `secret_namespace`, restarting Deployment `restart`.
fn token_destination_config(
    sandbox: &SandboxProcess,
    secret_namespace: &str,
    restart: &str,
) -> String {
    format!(
        r#"{}
resource "gitlabflux_agent" "prod" {{
  project = "fleet/agents"
  name    = "prod"
}}

resource "gitlabflux_agent_token" "prod" {{
  project  = gitlabflux_agent.prod.project
  agent_id = gitlabflux_agent.prod.agent_id
  name     = "prod"
  kubernetes_secret = {{
    namespace = "{secret_namespace}"
    name      = "gitlab-agent-token"
  }}
  restart = [{{ namespace = "default", name = "{restart}" }}]
}}
"#,
        provider_block(sandbox)
    )
}

fn a_destination_that_cannot_take_the_token_fails_before_any_token_exists() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    let tokens = || {
        agent_state(&sandbox, "prod")
            .map(|agent| active_tokens(&agent).len())
            .unwrap_or(0)
    };

    ws.write(&token_destination_config(&sandbox, "nowhere", "web"));
    for attempt in 1..=2 {
        let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
        assert!(!out.success(), "attempt {attempt}: {}", out.text());
        let text = one_line(&out.text());
        assert!(
            text.contains("Secret namespace does not exist")
                && text.contains("in namespace nowhere, which does not exist"),
            "attempt {attempt}: {text}"
        );
        assert_eq!(tokens(), 0, "attempt {attempt}: no token was created");
    }

    // The namespace exists now, but the workload to restart does not.
    ws.write(&token_destination_config(&sandbox, "default", "web"));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success(), "{}", out.text());
    let text = one_line(&out.text());
    assert!(
        text.contains("Deployment to restart does not exist")
            && text.contains("Deployment default/web does not exist"),
        "{text}"
    );
    assert_eq!(tokens(), 0, "no token was created");
    assert!(
        kubectl_json(
            &sandbox,
            &["get", "secret", "-n", "default", "gitlab-agent-token"]
        )
        .is_none(),
        "nothing was written to the cluster"
    );
}

fn an_agent_registered_elsewhere_is_taken_over_only_when_asked() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    let created: serde_json::Value = block_on(async {
        sandbox
            .gitlab(
                reqwest::Method::POST,
                "/projects/fleet%2Fagents/cluster_agents",
            )
            .json(&serde_json::json!({ "name": "legacy" }))
            .send()
            .await
            .expect("register by hand")
            .json()
            .await
    })
    .expect("agent JSON");
    let legacy_id = created["id"].as_i64().expect("id");
    let config = |adopt: bool| {
        format!(
            r#"{}
resource "gitlabflux_agent" "legacy" {{
  project        = "fleet/agents"
  name           = "legacy"
  adopt_existing = {adopt}
  config = {{ ci_access = {{ projects = [{{ id = "fleet/gitops" }}] }} }}
}}
"#,
            provider_block(&sandbox)
        )
    };
    let (_, commits) = sandbox.gitlab_repo("fleet/agents");
    ws.write(&config(false));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = one_line(&out.text());
    assert!(
        text.contains("Agent already registered")
            && text.contains(&format!("agent named legacy (id {legacy_id})"))
            && text.contains("terraform import <address> fleet/agents:legacy")
            && text.contains("adopt_existing = true"),
        "{text}"
    );
    assert_eq!(
        sandbox.gitlab_repo("fleet/agents").1,
        commits,
        "no configuration committed for an agent that is not ours"
    );

    ws.write(&config(true));
    ws.apply();
    assert_eq!(
        ws.resource("gitlabflux_agent.legacy")["agent_id"].as_i64(),
        Some(legacy_id)
    );
    ws.assert_no_changes();

    // An agent this provider registered is recognised by its configuration file: state lost
    // (an apply cut short before it was saved) takes it over again without the opt-in.
    ws.ok(&["state", "rm", "gitlabflux_agent.legacy"]);
    ws.write(&config(false));
    ws.apply();
    assert_eq!(
        ws.resource("gitlabflux_agent.legacy")["agent_id"].as_i64(),
        Some(legacy_id)
    );
    ws.assert_no_changes();
}

fn an_agentk_installed_by_something_else_is_taken_over_only_when_asked() {
    let sandbox = SandboxProcess::start(&["--simulate-controllers"]);
    let ws = Workspace::new();
    let helm_like = ws.path().join("agentk.yaml");
    std::fs::write(
        &helm_like,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: gitlab-agent}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gitlab-agent, namespace: gitlab-agent}\n\
         spec:\n  selector: {matchLabels: {app: agentk}}\n  template:\n    metadata: {labels: {app: agentk}}\n\
         \x20   spec: {containers: [{name: agent, image: agentk:helm}]}\n",
    )
    .expect("manifest");
    kubectl(
        &sandbox,
        &[
            "apply",
            "--server-side",
            "-f",
            &helm_like.display().to_string(),
        ],
    );
    let config = |adopt: bool| {
        format!(
            r#"{}
resource "gitlabflux_agent_install" "prod" {{
  kas_address    = "wss://kas.example.com"
  token_secret   = {{ name = "gitlab-agent-token" }}
  adopt_existing = {adopt}
}}
"#,
            provider_block(&sandbox)
        )
    };
    ws.write(&config(false));
    let out = ws.run(&["apply", "-auto-approve", "-no-color"]);
    assert!(!out.success());
    let text = one_line(&out.text());
    assert!(
        text.contains("Objects exist that this resource did not create")
            && text.contains("Deployment gitlab-agent/gitlab-agent"),
        "{text}"
    );
    let image = |sandbox: &SandboxProcess| {
        kubectl_json(
            sandbox,
            &["get", "deploy", "-n", "gitlab-agent", "gitlab-agent"],
        )
        .expect("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
            .clone()
    };
    assert_eq!(image(&sandbox), "agentk:helm", "left alone");

    ws.write(&config(true));
    ws.apply();
    assert_ne!(image(&sandbox), "agentk:helm", "taken over");
    ws.assert_no_changes();
}

/// Flux 2.9 admits only the webhook receiver's port: a receiver URL that names another
/// Service port is told of when the configuration is validated, on that attribute.
fn a_receiver_url_flux_2_9_would_block_is_warned_of() {
    let sandbox = SandboxProcess::start(&[]);
    let ws = Workspace::new();
    let config = |url: &str| {
        format!(
            r#"{provider}
resource "gitlabflux_agent" "prod" {{
  project = "fleet/agents"
  name    = "prod"
  config = {{
    flux = {{ webhook_receiver_url = "{url}" }}
  }}
}}
"#,
            provider = provider_block(&sandbox)
        )
    };
    let warnings = |url: &str| -> Vec<serde_json::Value> {
        ws.write(&config(url));
        let out = ws.ok(&["validate", "-json", "-no-color"]);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        report["diagnostics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["severity"] == "warning")
            .filter(|d| {
                d["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("webhook receiver URL"))
            })
            .cloned()
            .collect()
    };
    let blocked = warnings("http://notification-controller.flux-system.svc.cluster.local/hook/x");
    let note = blocked.first().expect("the receiver note");
    assert_eq!(note["address"], "gitlabflux_agent.prod", "{note:#}");
    assert!(
        note["detail"].as_str().unwrap_or_default().contains("9292"),
        "{note:#}"
    );
    let admitted = warnings("http://webhook-receiver.flux-system.svc.cluster.local/hook/x");
    assert!(admitted.is_empty(), "{admitted:#?}");
}

on_both_terraforms!(
    agent_install_and_token_apply_rotate_repair_and_destroy,
    imports_reproduce_a_no_change_plan,
    bad_inputs_give_attribute_diagnostics_and_create_nothing,
    the_data_source_finds_an_agent,
    expose_token_keeps_the_value_in_state_only_when_asked,
    a_destination_that_cannot_take_the_token_fails_before_any_token_exists,
    an_agent_registered_elsewhere_is_taken_over_only_when_asked,
    an_agentk_installed_by_something_else_is_taken_over_only_when_asked,
    a_receiver_url_flux_2_9_would_block_is_warned_of,
);
