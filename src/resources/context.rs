//! What every resource is handed: the configured provider's clients ([`ProviderData`]), the
//! cluster-connection attributes that the provider's `kubernetes` block and every resource's
//! `cluster` override share, and the accessors that pick the right client for a resource.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::flux::Distributions;
use crate::gitlab::GitlabClient;
use crate::kube::{ClusterSettings, Clusters, ExecSettings, KubeClient};
use crate::secret::Secret;
use crate::tfplug::{AttrPath, Attribute, Ctx, DiagResult, Diagnostic, Diagnostics, Value};

/// What resources get from the configured provider: shared, pooled clients.
pub struct ProviderData {
    /// `None` when the configuration was unknown at plan time; resources then plan with
    /// unknown computed values instead of failing.
    pub gitlab: Option<GitlabClient>,
    /// One client per distinct cluster connection (the default and every `cluster` override).
    pub clusters: Clusters,
    /// Flux distributions loaded once for every bootstrap and data source.
    pub distributions: Distributions,
}

/// The attributes of a cluster connection: the provider's `kubernetes` block and every
/// resource's `cluster` override share them.
pub fn cluster_connection_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("config_path")
            .optional()
            .description("Path to a kubeconfig file. Env: `KUBE_CONFIG_PATH`. `~` is expanded."),
        Attribute::string("config_context")
            .optional()
            .description("Context to use from the kubeconfig. Env: `KUBE_CTX`."),
        Attribute::string("host")
            .optional()
            .validator(http_url)
            .description("API server URL, instead of a kubeconfig."),
        Attribute::string("token")
            .optional()
            .sensitive()
            .description("Bearer token for `host`."),
        Attribute::string("cluster_ca_certificate")
            .optional()
            .description("PEM CA bundle that signed the API server certificate."),
        Attribute::string("client_certificate")
            .optional()
            .description("PEM client certificate; needs `client_key`."),
        Attribute::string("client_key")
            .optional()
            .sensitive()
            .description("PEM private key for `client_certificate`."),
        Attribute::bool("insecure")
            .optional()
            .description("Skip API server certificate verification. Never use in production."),
        Attribute::object(
            "exec",
            vec![
                Attribute::string("api_version")
                    .required()
                    .description("`client.authentication.k8s.io/v1` or `v1beta1`."),
                Attribute::string("command")
                    .required()
                    .description("Credential plugin to run."),
                Attribute::string_list("args")
                    .optional()
                    .description("Its arguments."),
                Attribute::string_map("env")
                    .optional()
                    .description("Extra environment."),
            ],
        )
        .optional()
        .description("Get credentials from an exec plugin (e.g. a cloud CLI)."),
    ]
}

/// Validator form of [`is_http_url`], so bad URLs are reported at validation time.
pub(crate) fn http_url(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    if let Some(url) = v.as_str()
        && !is_http_url(url)
    {
        diags.error_at(
            path.clone(),
            "Invalid URL",
            format!(
                "{path} must be an http:// or https:// URL, such as https://gitlab.example.com."
            ),
        );
    }
}

pub(crate) fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    })
}

pub(crate) fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// A cluster connection as configured: the provider's `kubernetes` block or a resource's
/// `cluster` override (the attributes of [`cluster_connection_attributes`]). The client's
/// [`ClusterSettings`] is what it resolves to: environment fallbacks applied, `~` expanded,
/// checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterModel {
    pub config_path: Option<String>,
    pub config_context: Option<String>,
    pub host: Option<String>,
    pub token: Option<Secret>,
    pub cluster_ca_certificate: Option<String>,
    pub client_certificate: Option<String>,
    pub client_key: Option<Secret>,
    pub insecure: Option<bool>,
    pub exec: Option<ExecModel>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecModel {
    pub api_version: String,
    pub command: String,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
}

impl ClusterModel {
    /// The client settings, checked, with diagnostics under `path`. `with_env` applies the
    /// provider-level environment fallbacks (`KUBE_CONFIG_PATH`, `KUBE_CTX`); a resource's
    /// `cluster` override does not.
    pub fn settings(
        &self,
        path: &AttrPath,
        with_env: bool,
        diags: &mut Diagnostics,
    ) -> ClusterSettings {
        let env = |var: &str| if with_env { env_nonempty(var) } else { None };
        let exec = self.exec.as_ref().map(|e| ExecSettings {
            api_version: e.api_version.clone(),
            command: e.command.clone(),
            args: e.args.clone().unwrap_or_default(),
            env: e.env.clone().unwrap_or_default().into_iter().collect(),
        });
        let settings = ClusterSettings {
            config_path: self
                .config_path
                .clone()
                .or_else(|| env("KUBE_CONFIG_PATH"))
                .map(|p| expand_home(&p)),
            config_context: self.config_context.clone().or_else(|| env("KUBE_CTX")),
            host: self.host.clone(),
            token: self.token.clone(),
            cluster_ca_certificate: self.cluster_ca_certificate.clone(),
            client_certificate: self.client_certificate.clone(),
            client_key: self.client_key.clone(),
            insecure: self.insecure.unwrap_or(false),
            exec,
        };
        check_cluster(&settings, path, diags);
        settings
    }
}

fn check_cluster(s: &ClusterSettings, path: &AttrPath, diags: &mut Diagnostics) {
    if s.client_certificate.is_some() != s.client_key.is_some() {
        diags.error_at(
            path.clone().attr("client_key"),
            "Incomplete client certificate",
            "client_certificate and client_key must be set together.",
        );
    }
    if let Some(host) = &s.host
        && !is_http_url(host)
    {
        diags.error_at(
            path.clone().attr("host"),
            "Invalid API server URL",
            "host must be an https:// (or http://) URL of the Kubernetes API server.",
        );
    }
    if let Some(exec) = &s.exec {
        const API_VERSIONS: [&str; 2] = [
            "client.authentication.k8s.io/v1",
            "client.authentication.k8s.io/v1beta1",
        ];
        if !API_VERSIONS.contains(&exec.api_version.as_str()) {
            diags.error_at(
                path.clone().attr("exec").attr("api_version"),
                "Unsupported exec API version",
                format!(
                    "exec.api_version must be one of {}.",
                    API_VERSIONS.join(", ")
                ),
            );
        }
        if exec.command.trim().is_empty() {
            diags.error_at(
                path.clone().attr("exec").attr("command"),
                "Missing exec command",
                "exec.command must name the credential plugin to run.",
            );
        }
    }
}

/// An environment variable, `None` when unset or empty.
pub(crate) fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// The GitLab client, or a diagnostic when the provider's GitLab settings are not known yet.
pub fn gitlab(ctx: &Ctx<ProviderData>) -> DiagResult<&GitlabClient> {
    ctx.provider()?.gitlab.as_ref().ok_or_else(|| {
        Diagnostic::error(
            "GitLab connection not available",
            "The provider's gitlab settings were unknown when the provider was configured. \
             Make them known before this resource is applied (for example with -target).",
        )
        .into()
    })
}

/// The Kubernetes client for a resource: its `cluster` override, else the provider default.
pub async fn kube_client(
    ctx: &Ctx<ProviderData>,
    cluster: Option<&ClusterModel>,
) -> DiagResult<KubeClient> {
    let path = AttrPath::root().attr("cluster");
    let mut diags = Diagnostics::new();
    let settings = cluster.map(|c| c.settings(&path, false, &mut diags));
    diags.into_result()?;
    ctx.provider()?
        .clusters
        .client(settings.as_ref())
        .await
        .map_err(|e| Diagnostic::error(e.summary(), e.detail()).at(path).into())
}

/// [`kube_client`] for a resource value that has a `cluster` attribute.
pub async fn kube(ctx: &Ctx<ProviderData>, resource: &Value) -> DiagResult<KubeClient> {
    #[derive(Deserialize)]
    struct WithCluster {
        cluster: Option<ClusterModel>,
    }
    let with: WithCluster = if resource.is_null() {
        WithCluster { cluster: None }
    } else {
        resource.decode()?
    };
    kube_client(ctx, with.cluster.as_ref()).await
}
