//! The `gitlabflux` provider: its configuration (`gitlab`, `kubernetes`), validated at
//! configure time with environment fallbacks, and the registry of resources, data sources and
//! functions.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::flux::Distributions;
use crate::gitlab::GitlabClient;
use crate::kube::Clusters;
use crate::resources;
use crate::resources::support::{string, strings};
use crate::secret::Secret;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    AttrPath, Attribute, Block, ConfigureInfo, DataSource, DiagResult, Diagnostic, Diagnostics,
    Function, Provider, Resource, Schema, Value,
};

/// Registry address users write as `gitlabflux/gitlabflux`.
pub const REGISTRY_ADDRESS: &str = "registry.terraform.io/gitlabflux/gitlabflux";
pub const DEFAULT_GITLAB_URL: &str = "https://gitlab.com";
pub const DEFAULT_MAX_RETRIES: i64 = 5;
const MAX_RETRIES_LIMIT: i64 = 20;

/// How to reach GitLab, after environment fallbacks.
#[derive(Clone, Debug)]
pub struct GitlabSettings {
    /// Without a trailing slash; the API is at `<base_url>/api/v4`.
    pub base_url: String,
    pub token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub max_retries: u32,
}

/// A Kubernetes connection as configured (the provider default or a resource's `cluster`).
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

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecSettings {
    pub api_version: String,
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

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

pub struct GitlabFluxProvider;

#[async_trait]
impl Provider for GitlabFluxProvider {
    type Data = ProviderData;

    fn type_name(&self) -> &'static str {
        "gitlabflux"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::object(
                    "gitlab",
                    vec![
                        Attribute::string("base_url").optional().validator(http_url).description(
                            "GitLab URL; the API is at `<base_url>/api/v4`. Env: `GITLAB_BASE_URL`. \
                             Default `https://gitlab.com`.",
                        ),
                        Attribute::string("token")
                            .optional()
                            .sensitive()
                            .description("Personal, group or project access token. Env: `GITLAB_TOKEN`."),
                        Attribute::string("ca_file")
                            .optional()
                            .description("PEM CA bundle for a GitLab with a private CA."),
                        Attribute::number("max_retries")
                            .optional()
                            .validator(validators::int_between(0, MAX_RETRIES_LIMIT))
                            .description("Retries for 429, 5xx and connection errors. Default 5."),
                    ],
                )
                .optional()
                .description("GitLab connection."),
                Attribute::object("kubernetes", cluster_connection_attributes())
                    .optional()
                    .description(
                        "Default cluster connection. Resources that touch a cluster can override \
                         it with their own `cluster` attribute.",
                    ),
            ])
            .description(
                "Declare a cluster's GitLab agent and Flux GitOps setup as code: agents shared \
                 through impersonation, Flux with multi-tenancy lockdown, sharding, tenants and \
                 key rotation.",
            ),
        )
    }

    async fn configure(&self, config: &Value, info: &ConfigureInfo) -> DiagResult<ProviderData> {
        let mut diags = Diagnostics::new();
        let gitlab = parse_gitlab(
            config.get_attr("gitlab").unwrap_or(&Value::Null),
            &mut diags,
        );
        let kubernetes = parse_cluster(
            config.get_attr("kubernetes").unwrap_or(&Value::Null),
            &AttrPath::root().attr("kubernetes"),
            true,
            &mut diags,
        );
        diags.into_result()?;
        let gitlab = match gitlab {
            Some(settings) => Some(GitlabClient::new(&settings, info.stop.clone()).map_err(
                |e| {
                    Diagnostics::from(
                        Diagnostic::error(e.summary(), e.detail())
                            .at(AttrPath::root().attr("gitlab")),
                    )
                },
            )?),
            None => None,
        };
        Ok(ProviderData {
            gitlab,
            clusters: Clusters::new(kubernetes, info.stop.clone()),
            distributions: Distributions::default(),
        })
    }

    fn resources(&self) -> Vec<Arc<dyn Resource<ProviderData>>> {
        resources::all()
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource<ProviderData>>> {
        resources::data_sources()
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        resources::functions()
    }
}

/// A string attribute of an object, `None` when null.
fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn parse_gitlab(obj: &Value, diags: &mut Diagnostics) -> Option<GitlabSettings> {
    if !obj.is_wholly_known() {
        return None;
    }
    let path = AttrPath::root().attr("gitlab");
    let base_url = string(obj, "base_url")
        .or_else(|| env_nonempty("GITLAB_BASE_URL"))
        .unwrap_or_else(|| DEFAULT_GITLAB_URL.to_string());
    let base_url = base_url.trim_end_matches('/').to_string();
    let base_url = base_url
        .strip_suffix("/api/v4")
        .unwrap_or(&base_url)
        .to_string();
    if !is_http_url(&base_url) {
        diags.error_at(
            path.clone().attr("base_url"),
            "Invalid GitLab URL",
            "gitlab.base_url (or GITLAB_BASE_URL) must be an http:// or https:// URL such as \
             https://gitlab.example.com.",
        );
    }
    let token = string(obj, "token")
        .or_else(|| env_nonempty("GITLAB_TOKEN"))
        .map(Secret::new);
    let ca_file = string(obj, "ca_file").map(|p| expand_home(&p));
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        diags.error_at(
            path.clone().attr("ca_file"),
            "CA file not found",
            format!(
                "gitlab.ca_file points at {}, which is not a readable file.",
                ca.display()
            ),
        );
    }
    let max_retries = obj
        .get_attr("max_retries")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_MAX_RETRIES)
        .clamp(0, MAX_RETRIES_LIMIT) as u32;
    Some(GitlabSettings {
        base_url,
        token,
        ca_file,
        max_retries,
    })
}

/// Validator form of [`is_http_url`], so bad URLs are reported at validation time.
fn http_url(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
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

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        !host.is_empty() && !host.contains(char::is_whitespace)
    })
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Parses a cluster connection object. `with_env` applies the provider-level environment
/// fallbacks (`KUBE_CONFIG_PATH`, `KUBE_CTX`); a resource's `cluster` override does not.
pub fn parse_cluster(
    obj: &Value,
    path: &AttrPath,
    with_env: bool,
    diags: &mut Diagnostics,
) -> Option<ClusterSettings> {
    if !obj.is_wholly_known() {
        return None;
    }
    let env = |var: &str| if with_env { env_nonempty(var) } else { None };
    let exec = obj
        .get_attr("exec")
        .filter(|e| !e.is_null())
        .map(|e| ExecSettings {
            api_version: string(e, "api_version").unwrap_or_default(),
            command: string(e, "command").unwrap_or_default(),
            args: strings(e, "args"),
            env: e
                .get_attr("env")
                .and_then(Value::as_map)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        });
    let settings = ClusterSettings {
        config_path: string(obj, "config_path")
            .or_else(|| env("KUBE_CONFIG_PATH"))
            .map(|p| expand_home(&p)),
        config_context: string(obj, "config_context").or_else(|| env("KUBE_CTX")),
        host: string(obj, "host"),
        token: string(obj, "token").map(Secret::new),
        cluster_ca_certificate: string(obj, "cluster_ca_certificate"),
        client_certificate: string(obj, "client_certificate"),
        client_key: string(obj, "client_key").map(Secret::new),
        insecure: obj
            .get_attr("insecure")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        exec,
    };
    check_cluster(&settings, path, diags);
    Some(settings)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfplug::value::decode_json;

    fn config(json: &str) -> Value {
        let ty = GitlabFluxProvider.schema().value_type();
        decode_json(json.as_bytes(), &ty).expect("valid config JSON")
    }

    fn configure(json: &str) -> DiagResult<ProviderData> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(GitlabFluxProvider.configure(&config(json), &ConfigureInfo::default()))
    }

    #[test]
    fn gitlab_url_is_normalised() {
        let cfg = config(
            r#"{"gitlab": {"base_url": "https://gitlab.example.com/api/v4/", "token": "t", "ca_file": null, "max_retries": 2}}"#,
        );
        let mut diags = Diagnostics::new();
        let gitlab = parse_gitlab(cfg.get_attr("gitlab").expect("gitlab"), &mut diags)
            .expect("gitlab settings");
        assert!(diags.is_empty());
        assert_eq!(gitlab.base_url, "https://gitlab.example.com");
        assert_eq!(gitlab.max_retries, 2);
        assert_eq!(gitlab.token.as_ref().map(Secret::expose), Some("t"));
        assert!(configure(r#"{"gitlab": {"base_url": "https://gitlab.example.com", "token": "t", "ca_file": null, "max_retries": null}}"#).is_ok());
    }

    #[test]
    fn bad_settings_point_at_their_attribute() {
        let err = configure(
            r#"{"gitlab": {"base_url": "gitlab.example.com", "token": null, "ca_file": "/nonexistent/ca.pem", "max_retries": null},
                "kubernetes": {"config_path": null, "config_context": null, "host": "https://k", "token": null,
                  "cluster_ca_certificate": null, "client_certificate": "pem", "client_key": null, "insecure": null,
                  "exec": {"api_version": "v0", "command": "", "args": null, "env": null}}}"#,
        );
        let Err(err) = err else {
            panic!("invalid settings were accepted")
        };
        let paths: Vec<String> = err
            .iter()
            .filter_map(|d| d.attribute.as_ref().map(ToString::to_string))
            .collect();
        for want in [
            "gitlab.base_url",
            "gitlab.ca_file",
            "kubernetes.client_key",
            "kubernetes.exec.api_version",
            "kubernetes.exec.command",
        ] {
            assert!(
                paths.iter().any(|p| p == want),
                "missing {want} in {paths:?}"
            );
        }
    }

    #[test]
    fn unknown_configuration_defers_instead_of_failing() {
        let mut cfg = config(r#"{"gitlab": null, "kubernetes": null}"#);
        if let Value::Object(fields) = &mut cfg {
            fields.insert("gitlab".into(), Value::unknown());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let data = rt
            .block_on(GitlabFluxProvider.configure(&cfg, &ConfigureInfo::default()))
            .expect("unknown config is not an error");
        assert!(data.gitlab.is_none());
    }
}
