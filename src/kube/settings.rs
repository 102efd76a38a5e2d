//! A Kubernetes connection as configured: the provider's default `kubernetes` block or a
//! resource's `cluster` override. Owned by the client layer, which turns it into a pooled
//! client ([`super::Clusters`]); where the settings came from is the caller's business.

use std::path::PathBuf;

use crate::secret::Secret;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterSettings {
    pub config_path: Option<PathBuf>,
    pub config_context: Option<String>,
    pub host: Option<String>,
    pub token: Option<Secret>,
    pub cluster_ca_certificate: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<Secret>,
    pub insecure: bool,
    pub exec: Option<ExecSettings>,
}

/// A client-go credential plugin (`users[].user.exec` in a kubeconfig).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecSettings {
    pub api_version: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}
