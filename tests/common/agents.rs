//! The GitLab agent fleet the agent tests and drills share: one agent shared through
//! impersonation, agentk installed, its token delivered and rotated; and readers of what
//! the sandbox holds of it.

use serde_json::Value;

use super::{SandboxProcess, kubectl_json, provider_block};

pub fn agent_state(sandbox: &SandboxProcess, name: &str) -> Option<Value> {
    sandbox.gitlab_state()["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

pub fn active_tokens(agent: &Value) -> Vec<Value> {
    agent["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter(|t| t["status"] == "active")
        .cloned()
        .collect()
}

/// The token value in the cluster Secret.
pub fn secret_token(sandbox: &SandboxProcess) -> Option<String> {
    let secret = kubectl_json(
        sandbox,
        &["get", "secret", "-n", "gitlab-agent", "gitlab-agent-token"],
    )?;
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str()?)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).to_string())
}

pub fn fleet_config(sandbox: &SandboxProcess, trigger: &str) -> String {
    fleet_config_with(
        sandbox,
        trigger,
        "gitlabflux_agent_install.prod.name",
        "30s",
    )
}

/// The fleet configuration, restarting `restart_name` (an HCL expression) after delivery.
pub fn fleet_config_with(
    sandbox: &SandboxProcess,
    trigger: &str,
    restart_name: &str,
    confirm_timeout: &str,
) -> String {
    format!(
        r#"{}
resource "gitlabflux_agent" "prod" {{
  project = "fleet/agents"
  name    = "prod"
  config = {{
    ci_access = {{
      groups = [{{
        id          = "fleet"
        access_as   = "impersonate"
        impersonate = {{ username = "ci-deployer", groups = ["fleet-ci"] }}
      }}]
      projects = [{{ id = "fleet/gitops", access_as = "ci_job" }}]
    }}
  }}
}}

resource "gitlabflux_agent_install" "prod" {{
  token_secret = {{ name = "gitlab-agent-token" }}
}}

resource "gitlabflux_agent_token" "prod" {{
  project  = gitlabflux_agent.prod.project
  agent_id = gitlabflux_agent.prod.agent_id
  name     = "prod"
  kubernetes_secret = {{
    namespace = gitlabflux_agent_install.prod.namespace
    name      = "gitlab-agent-token"
  }}
  restart = [{{
    namespace = gitlabflux_agent_install.prod.namespace
    name      = {restart_name}
  }}]
  rotation = {{
    trigger         = "{trigger}"
    confirm_timeout = "{confirm_timeout}"
  }}
}}
"#,
        provider_block(sandbox)
    )
}

/// Terraform wraps diagnostic text at its terminal width.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
