//! The GitLab client layer: its settings, naming rules, and the REST client the domain
//! modules call (typed endpoints, pagination, retries, rate limits, single-flight caching
//! (`crate::single_flight`)). Nothing above it holds HTTP.

mod agents;
mod client;
pub mod deploy_keys;
pub mod error;
pub mod files;
mod graphql;
pub mod names;
mod repository;
pub mod settings;
mod transport;
pub mod types;
pub mod variables;

#[cfg(test)]
mod tests;

pub use client::GitlabClient;
pub use error::{GitlabError, Missing, Operation, Role};
pub use settings::GitlabSettings;
pub use types::{
    Agent, AgentToken, CiVariable, Commit, CommitAction, CommitActionKind, CommitRequest,
    DeployKey, Metadata, Project, RepoFile,
};
