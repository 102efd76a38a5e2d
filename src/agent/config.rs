//! The GitLab agent configuration file, `.gitlab/agents/<name>/config.yaml`: a typed model,
//! rendering to YAML (deterministic, so unchanged configurations make no commit) and parsing
//! back (so `terraform import` can reconstruct the `config` attribute).

use serde::{Deserialize, Serialize};

/// The first line of every file we write: tells people editing it in GitLab where it comes
/// from.
pub const HEADER: &str = "# Managed by Terraform (gitlabflux_agent): edits here are overwritten.\n";

/// At most this many projects and this many groups per `ci_access` / `user_access`.
pub const MAX_ENTRIES: usize = 500;

/// Where GitLab reads an agent's configuration.
pub fn config_file_path(agent_name: &str) -> String {
    format!(".gitlab/agents/{agent_name}/config.yaml")
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_access: Option<CiAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_access: Option<UserAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Observability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux: Option<Flux>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiAccess {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<CiAccessEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<CiAccessEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiAccessEntry {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_namespace: Option<String>,
    // GitLab writes `access_as: {ci_job: {}}`, not a YAML tag.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_yaml_ng::with::singleton_map"
    )]
    pub access_as: Option<AccessAs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_branches_only: Option<bool>,
}

/// How CI jobs act in the cluster. GitLab writes it as a one-key map (`agent: {}`,
/// `impersonate: {...}`, `ci_job: {}`, `ci_user: {}`), which is serde's external tagging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessAs {
    Agent(Empty),
    Impersonate(Impersonate),
    CiJob(Empty),
    CiUser(Empty),
}

impl AccessAs {
    /// The `access_as` keyword users write in Terraform.
    pub fn keyword(&self) -> &'static str {
        match self {
            AccessAs::Agent(_) => "agent",
            AccessAs::Impersonate(_) => "impersonate",
            AccessAs::CiJob(_) => "ci_job",
            AccessAs::CiUser(_) => "ci_user",
        }
    }
}

/// Renders as `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impersonate {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ImpersonateExtra>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateExtra {
    pub key: String,
    pub val: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAccess {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_yaml_ng::with::singleton_map"
    )]
    pub access_as: Option<UserAccessAs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<IdEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<IdEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UserAccessAs {
    Agent(Empty),
    User(Empty),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdEntry {
    pub id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observability {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_level: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flux {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_receiver_url: Option<String>,
}

/// The port Flux 2.9's `allow-webhooks` NetworkPolicy admits to notification-controller: its
/// webhook receiver. The `webhook-receiver` Service forwards its port 80 there.
pub const FLUX_RECEIVER_PORT: u16 = 9292;
const RECEIVER_SERVICE: &str = "webhook-receiver";

/// Whether `url` reaches Flux's webhook receiver through what Flux 2.9's network policy still
/// admits: the `webhook-receiver` Service, or port [`FLUX_RECEIVER_PORT`] itself. An address
/// outside the cluster (an ingress, say) also passes when it names that port; anything else
/// may be an in-cluster Service port the policy now blocks.
pub fn reaches_flux_receiver(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let service = parsed
        .host_str()
        .and_then(|host| host.split('.').next())
        .is_some_and(|first| first == RECEIVER_SERVICE);
    service || parsed.port() == Some(FLUX_RECEIVER_PORT)
}

#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    #[error("the agent configuration file is not valid YAML for an agent: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    #[error("cannot render the agent configuration: {0}")]
    Render(serde_yaml_ng::Error),
}

impl AgentConfig {
    /// The file content: header line plus YAML. Deterministic for equal configurations.
    pub fn render(&self) -> Result<String, AgentConfigError> {
        let yaml = serde_yaml_ng::to_string(self).map_err(AgentConfigError::Render)?;
        Ok(format!("{HEADER}{yaml}"))
    }

    /// Reads a file written by us or by hand (comments are ignored by YAML).
    pub fn parse(text: &str) -> Result<Self, AgentConfigError> {
        if text.trim_start_matches(HEADER).trim().is_empty() {
            return Ok(Self::default());
        }
        Ok(serde_yaml_ng::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentConfig {
        AgentConfig {
            ci_access: Some(CiAccess {
                groups: vec![CiAccessEntry {
                    id: "fleet".into(),
                    access_as: Some(AccessAs::Impersonate(Impersonate {
                        username: "ci-deployer".into(),
                        groups: vec!["fleet-ci".into()],
                        ..Impersonate::default()
                    })),
                    ..CiAccessEntry::default()
                }],
                projects: vec![CiAccessEntry {
                    id: "fleet/gitops".into(),
                    default_namespace: Some("apps".into()),
                    access_as: Some(AccessAs::CiJob(Empty {})),
                    environments: vec!["production".into()],
                    protected_branches_only: Some(true),
                }],
            }),
            user_access: None,
            observability: Some(Observability {
                logging: Some(Logging {
                    level: Some("debug".into()),
                    grpc_level: None,
                }),
            }),
            flux: Some(Flux {
                webhook_receiver_url: Some(
                    "http://webhook-receiver.flux-system.svc.cluster.local".into(),
                ),
            }),
        }
    }

    #[test]
    fn renders_gitlabs_format() {
        let text = sample().render().expect("renders");
        assert!(text.starts_with(HEADER));
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
        let group = &yaml["ci_access"]["groups"][0];
        assert_eq!(group["id"].as_str(), Some("fleet"));
        assert_eq!(
            group["access_as"]["impersonate"]["username"].as_str(),
            Some("ci-deployer")
        );
        assert_eq!(
            group["access_as"]["impersonate"]["groups"][0].as_str(),
            Some("fleet-ci")
        );
        let project = &yaml["ci_access"]["projects"][0];
        assert!(
            project["access_as"]["ci_job"]
                .as_mapping()
                .is_some_and(|m| m.is_empty())
        );
        assert_eq!(project["protected_branches_only"].as_bool(), Some(true));
        assert!(
            yaml.get("user_access").is_none(),
            "absent sections are not written"
        );
    }

    #[test]
    fn parse_inverts_render_and_rendering_is_stable() {
        let config = sample();
        let text = config.render().expect("renders");
        let parsed = AgentConfig::parse(&text).expect("parses");
        assert_eq!(parsed, config);
        assert_eq!(parsed.render().expect("renders"), text);
        assert_eq!(
            AgentConfig::parse(HEADER).expect("empty"),
            AgentConfig::default()
        );
    }

    #[test]
    fn unknown_keys_are_reported() {
        assert!(AgentConfig::parse("ci_access:\n  projectz: []\n").is_err());
    }

    #[test]
    fn only_the_receiver_service_or_its_port_reach_flux_2_9s_receiver() {
        for url in [
            "http://webhook-receiver.flux-system.svc.cluster.local/hook/abc",
            "http://webhook-receiver.flux-system/hook/abc",
            "http://10.0.0.7:9292/hook/abc",
        ] {
            assert!(reaches_flux_receiver(url), "{url}");
        }
        for url in [
            "http://notification-controller.flux-system.svc.cluster.local/hook/abc",
            "http://webhook-receiver-old.flux-system/hook/abc",
            "not a url",
        ] {
            assert!(!reaches_flux_receiver(url), "{url}");
        }
    }
}
