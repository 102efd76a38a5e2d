//! The agent domain: a GitLab agent for Kubernetes from registration to the pods that run
//! it. Resources call in here with typed inputs and get typed facts back; this layer calls
//! the GitLab client and the Kubernetes engine, never the other way round.
//!
//! - [`config`]: the `.gitlab/agents/<name>/config.yaml` model (CI and user access with
//!   impersonation, observability, the Flux receiver), rendered and parsed.
//! - [`registration`]: the agent in its project and its configuration file, committed
//!   atomically and only when it changes.
//! - [`install`]: agentk in a cluster (namespace, service account, RBAC, Deployment) applied,
//!   pruned and torn down by the kube engine, and read back for drift.
//! - [`token`]: the steps of an agent token's zero-downtime rotation, delivered to the
//!   cluster Secret agentk mounts.

pub mod config;
mod error;
pub mod install;
pub mod registration;
pub mod token;

pub use error::AgentError;
