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
use crate::tfplug::{
    AttrPath, Attribute, Ctx, DiagResult, Diagnostic, Diagnostics, IdentityAttribute, Value,
};

/// What resources get from the configured provider: shared, pooled clients.
pub struct ProviderData {
    /// `None` when the configuration was unknown at plan time; resources then plan with
    /// unknown computed values instead of failing.
    pub gitlab: Option<GitlabClient>,
    /// One client per distinct cluster connection (the default and every `cluster` override).
    pub clusters: Clusters,
    /// The provider's `clusters`, by name: `None` for the whole map while it is unknown, and
    /// for an entry whose connection is unknown (a cluster created in the same run).
    pub named: Option<BTreeMap<String, Option<ClusterSettings>>>,
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

/// Which cluster a resource names: its inline `cluster` connection, one of the provider's
/// `clusters` by `cluster_name`, or (neither) the provider's `kubernetes` default.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterChoice<'a> {
    pub cluster: Option<&'a ClusterModel>,
    pub cluster_name: Option<&'a str>,
}

impl<'a> ClusterChoice<'a> {
    /// A model's `cluster` and `cluster_name`.
    pub fn of(cluster: &'a Option<ClusterModel>, cluster_name: &'a Option<String>) -> Self {
        Self {
            cluster: cluster.as_ref(),
            cluster_name: cluster_name.as_deref(),
        }
    }

    /// One of the provider's `clusters` by name, or the default.
    pub fn named(cluster_name: Option<&'a str>) -> Self {
        Self {
            cluster: None,
            cluster_name,
        }
    }
}

/// An import ID's parts: the resource's own ID and, after `@`, one of the provider's
/// `clusters` by name (`flux-system@prod-eu`); without it, the provider's default cluster.
/// No resource's own ID holds an `@`: project paths and Kubernetes names cannot.
pub fn import_target(id: &str) -> (&str, Option<&str>) {
    match id.rsplit_once('@') {
        Some((own, cluster)) if !own.is_empty() && !cluster.is_empty() => (own, Some(cluster)),
        _ => (id, None),
    }
}

/// The import ID of `own` in the cluster named `cluster_name` ("" for the default).
pub fn on_cluster(own: String, cluster_name: &str) -> String {
    if cluster_name.is_empty() {
        own
    } else {
        format!("{own}@{cluster_name}")
    }
}

/// The identity part naming the cluster by `cluster_name` (null for the default cluster
/// and for an inline `cluster`, whose credentials an identity cannot carry).
pub fn cluster_identity_attribute() -> IdentityAttribute {
    IdentityAttribute::string("cluster_name", &["cluster_name"])
        .optional_for_import()
        .description(
            "One of the provider's `clusters`, when the resource names one by `cluster_name`.",
        )
}

/// The attribute a resource names one of the provider's `clusters` with.
pub fn cluster_name_attribute() -> Attribute {
    Attribute::string("cluster_name").optional().description(
        "One of the provider's `clusters` by name, instead of `cluster`: its credentials stay \
         in the provider configuration, out of state.",
    )
}

/// The Kubernetes client for a resource: its `cluster` override, or the provider's named
/// cluster, else the provider default.
pub async fn kube_client(
    ctx: &Ctx<ProviderData>,
    choice: ClusterChoice<'_>,
) -> DiagResult<KubeClient> {
    let path = AttrPath::root().attr("cluster");
    let mut diags = Diagnostics::new();
    let settings = match (choice.cluster, choice.cluster_name) {
        (Some(_), Some(_)) => {
            return Err(Diagnostic::error(
                "Both cluster and cluster_name",
                "Name one of the provider's clusters with cluster_name, or give the connection \
                 inline with cluster, not both.",
            )
            .at(AttrPath::root().attr("cluster_name"))
            .into());
        }
        (Some(c), None) => Some(c.settings(&path, false, &mut diags)),
        (None, Some(name)) => Some(named_cluster(ctx, name)?),
        (None, None) => None,
    };
    diags.into_result()?;
    let at = if choice.cluster_name.is_some() {
        AttrPath::root().attr("cluster_name")
    } else {
        path
    };
    ctx.provider()?
        .clusters
        .client(settings.as_ref())
        .await
        .map_err(|e| Diagnostic::error(e.summary(), e.detail()).at(at).into())
}

/// Whether the connection a resource names is known (false while the provider's entry for
/// its `cluster_name` is unknown: the cluster is created in the same run).
pub fn connection_known(ctx: &Ctx<ProviderData>, cluster_name: Option<&str>) -> bool {
    let Some(name) = cluster_name else {
        return true;
    };
    ctx.provider()
        .ok()
        .and_then(|p| p.named.as_ref())
        .is_some_and(|named| named.get(name).is_some_and(Option::is_some))
}

fn named_cluster(ctx: &Ctx<ProviderData>, name: &str) -> DiagResult<ClusterSettings> {
    let at = AttrPath::root().attr("cluster_name");
    let unknown = || {
        Diagnostics::from(
            Diagnostic::error(
                "Cluster connection not known yet",
                format!(
                    "The provider's clusters[\"{name}\"] was unknown when the provider was \
                     configured (its cluster is created in this run). Apply the cluster first, \
                     or this resource with a later apply."
                ),
            )
            .at(at.clone()),
        )
    };
    let Some(named) = ctx.provider()?.named.as_ref() else {
        return Err(unknown());
    };
    match named.get(name) {
        Some(Some(settings)) => Ok(settings.clone()),
        Some(None) => Err(unknown()),
        None => {
            let names: Vec<&str> = named.keys().map(String::as_str).collect();
            Err(Diagnostic::error(
                "No such cluster",
                format!(
                    "cluster_name = \"{name}\" names no entry of the provider's clusters (it has: \
                     {}).",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ),
            )
            .at(at)
            .into())
        }
    }
}

/// [`kube_client`] for a resource value that has `cluster` and `cluster_name` attributes.
pub async fn kube(ctx: &Ctx<ProviderData>, resource: &Value) -> DiagResult<KubeClient> {
    #[derive(Default, Deserialize)]
    struct WithCluster {
        cluster: Option<ClusterModel>,
        cluster_name: Option<String>,
    }
    let with: WithCluster = if resource.is_null() {
        WithCluster::default()
    } else {
        resource.decode()?
    };
    let choice = ClusterChoice {
        cluster: with.cluster.as_ref(),
        cluster_name: with.cluster_name.as_deref(),
    };
    kube_client(ctx, choice).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_id_names_its_cluster_after_an_at() {
        assert_eq!(import_target("flux-system"), ("flux-system", None));
        assert_eq!(
            import_target("team-a/team-a@prod-eu"),
            ("team-a/team-a", Some("prod-eu"))
        );
        assert_eq!(
            import_target("fleet/gitops:12:flux-system/flux-git@prod"),
            ("fleet/gitops:12:flux-system/flux-git", Some("prod"))
        );
        // An `@` with nothing on one side names no cluster.
        assert_eq!(import_target("flux-system@"), ("flux-system@", None));
        assert_eq!(import_target("@prod"), ("@prod", None));
        for (own, cluster) in [("flux-system", ""), ("team-a/team-a", "prod-eu")] {
            let id = on_cluster(own.to_string(), cluster);
            assert_eq!(
                import_target(&id),
                (own, Some(cluster).filter(|c| !c.is_empty()))
            );
        }
    }
}
