//! A provider that reaches the sandbox's cluster only through its `clusters` map, as a fleet
//! configuration does: resources name it by `cluster_name`.

use base64::Engine as _;
use serde_json::Value;

use super::SandboxProcess;
use super::agents::fleet_config;

/// The sandbox cluster's connection, read from its kubeconfig: (server, token, CA PEM).
pub fn connection(sandbox: &SandboxProcess) -> (String, String, String) {
    let text = std::fs::read_to_string(sandbox.url("kubeconfig")).expect("kubeconfig");
    let doc: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let cluster = &doc["clusters"][0]["cluster"];
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().expect("CA"))
        .expect("base64");
    (
        cluster["server"].as_str().expect("server").to_string(),
        doc["users"][0]["user"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
        String::from_utf8(ca).expect("PEM"),
    )
}

/// A provider with GitLab and `clusters = { <name> = ... }`, and no default cluster, so only
/// a resource that names `name` reaches it. `host` is an HCL expression.
pub fn provider_with_named_cluster(sandbox: &SandboxProcess, name: &str, host: &str) -> String {
    let (_, token, ca) = connection(sandbox);
    format!(
        r#"provider "gitlabflux" {{
  gitlab = {{
    base_url = "{gitlab}"
    token    = "{gitlab_token}"
  }}
  clusters = {{
    {name} = {{
      host                   = {host}
      token                  = "{token}"
      cluster_ca_certificate = {ca:?}
    }}
  }}
}}
"#,
        gitlab = sandbox.url("gitlab_url"),
        gitlab_token = sandbox.url("gitlab_token"),
    )
}

/// [`provider_with_named_cluster`] at the sandbox cluster's own address.
pub fn provider_with_sandbox_as(sandbox: &SandboxProcess, name: &str) -> String {
    let (server, _, _) = connection(sandbox);
    provider_with_named_cluster(sandbox, name, &format!("{server:?}"))
}

/// The agent fleet configuration, its cluster resources naming `name`, on `provider`.
pub fn fleet_on_named_cluster(sandbox: &SandboxProcess, provider: &str, name: &str) -> String {
    let fleet = fleet_config(sandbox, "v1");
    let body = &fleet[fleet.find("resource \"gitlabflux_agent\"").expect("agent")..];
    let named = format!("  cluster_name = \"{name}\"\n");
    let body = body
        .replace(
            "resource \"gitlabflux_agent_install\" \"prod\" {\n",
            &format!("resource \"gitlabflux_agent_install\" \"prod\" {{\n{named}"),
        )
        .replace(
            "resource \"gitlabflux_agent_token\" \"prod\" {\n",
            &format!("resource \"gitlabflux_agent_token\" \"prod\" {{\n{named}"),
        );
    format!("{provider}\n{body}")
}
