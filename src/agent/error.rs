//! Failures of the agent domain, each with a diagnostic-ready `summary()` / `detail()` and
//! the input it concerns, so that resources can point Terraform at the right attribute.

use super::config::AgentConfigError;
use crate::gitlab::GitlabError;
use crate::kube::KubeError;
use crate::kube::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The project the agent lives in could not be read.
    #[error("project: {0}")]
    Project(#[source] GitlabError),
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The configuration file cannot be rendered or read back.
    #[error(transparent)]
    Config(#[from] AgentConfigError),
    /// No `kas_address` given, and GitLab reports no agent server.
    #[error("GitLab reports no agent server")]
    NoAgentServer,
    /// The configuration file's branch does not exist: found before the agent was registered.
    #[error("branch {branch} does not exist in {project}")]
    NoBranch { project: String, branch: String },
    /// An agent of that name exists that this resource did not register.
    #[error("agent {name} already exists in {project}")]
    Exists {
        project: String,
        name: String,
        id: i64,
    },
    /// A data source lookup found no agent of that name.
    #[error("project {project} has no agent named {name:?}")]
    AgentNotFound { project: String, name: String },
}

impl AgentError {
    pub fn summary(&self) -> String {
        match self {
            Self::Project(e) | Self::Gitlab(e) => e.summary(),
            Self::Kube(e) => e.summary(),
            Self::Engine(e) => e.summary(),
            Self::Config(AgentConfigError::Parse(_)) => {
                "Unreadable agent configuration file".into()
            }
            Self::Config(AgentConfigError::Render(_)) => "Cannot render agent configuration".into(),
            Self::NoAgentServer => "GitLab has no agent server".into(),
            Self::NoBranch { .. } => "Configuration branch does not exist".into(),
            Self::AgentNotFound { .. } => "Agent not found".into(),
            Self::Exists { .. } => "Agent already registered".into(),
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::Project(e) | Self::Gitlab(e) => e.detail(),
            Self::Kube(e) => e.detail(),
            Self::Engine(e) => e.detail(),
            Self::Config(e) => e.to_string(),
            Self::NoAgentServer => "GitLab's /metadata reports no KAS address (the agent server \
                                    is disabled). Set kas_address."
                .into(),
            Self::NoBranch { project, branch } => format!(
                "The agent's configuration file goes to branch {branch}, which {project} does \
                 not have, so the agent was not registered. Create the branch or fix \
                 config_branch, then apply again."
            ),
            Self::AgentNotFound { project, name } => {
                format!("Project {project} has no agent named \"{name}\".")
            }
            Self::Exists { project, name, id } => format!(
                "{project} already has an agent named {name} (id {id}) that this resource did \
                 not register, so nothing was changed. Bring it under Terraform with \
                 `terraform import <address> {project}:{name}`, or set adopt_existing = true to \
                 take it over (destroying the resource then deletes it and revokes its tokens), \
                 or choose another name."
            ),
        }
    }
}
