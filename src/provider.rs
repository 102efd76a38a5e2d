//! The composition root: the `gitlabflux` provider's configuration (`gitlab`, `kubernetes`),
//! validated at configure time with environment fallbacks, the clients built from it, and the
//! registry of resources, data sources and functions. Only the binary imports this module;
//! everything it wires together lives below it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::flux::Distributions;
use crate::gitlab::settings::{
    DEFAULT_GITLAB_URL, DEFAULT_MAX_RETRIES, MAX_RETRIES_LIMIT, normalise_base_url,
};
use crate::gitlab::{GitlabClient, GitlabSettings};
use crate::kube::{ClusterSettings, Clusters};
use crate::resources;
use crate::resources::context::{
    ClusterModel, ProviderData, cluster_connection_attributes, env_nonempty, expand_home, http_url,
    is_http_url,
};
use crate::secret::Secret;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    Action, AttrPath, Attribute, Block, ConfigureInfo, DataSource, DiagResult, Diagnostic,
    Diagnostics, Function, ListResource, Nesting, Provider, Resource, Schema, Value,
};

/// Registry address users write as `gitlabflux/gitlabflux`.
pub const REGISTRY_ADDRESS: &str = "registry.terraform.io/gitlabflux/gitlabflux";

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
                            .validator(validators::int_between(0, i64::from(MAX_RETRIES_LIMIT)))
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
                Attribute::nested("clusters", Nesting::Map, cluster_connection_attributes())
                    .optional()
                    .description(
                        "A fleet's cluster connections by name. Resources pick one with \
                         `cluster_name`, so the credentials stay here and never enter state (an \
                         inline `cluster` object is stored in state, its secrets included). An \
                         entry still unknown at plan time (its cluster is created in the same \
                         run) plans with unknown values.",
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
        let gitlab = known_block::<GitlabModel>(config, "gitlab")?
            .map(|m| m.unwrap_or_default().settings(&mut diags));
        let kubernetes = known_block::<ClusterModel>(config, "kubernetes")?.map(|m| {
            let path = AttrPath::root().attr("kubernetes");
            m.unwrap_or_default().settings(&path, true, &mut diags)
        });
        let named = named_clusters(config, &mut diags);
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
            named,
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

    fn list_resources(&self) -> Vec<Arc<dyn ListResource<ProviderData>>> {
        resources::list_resources()
    }

    fn actions(&self) -> Vec<Arc<dyn Action<ProviderData>>> {
        resources::actions()
    }
}

/// A block of the provider configuration, `None` while any of it is unknown: a connection
/// built from half its settings (or from environment fallbacks standing in for unknown
/// ones) would reach the wrong place, so resources plan with unknown values instead.
fn known_block<T: DeserializeOwned>(config: &Value, name: &str) -> DiagResult<Option<Option<T>>> {
    match config.get_attr(name) {
        Some(block) if !block.is_wholly_known() => Ok(None),
        Some(block) => block.decode().map(Some),
        None => Ok(Some(None)),
    }
}

/// The `clusters` map, each known entry checked; `None` while the map itself is unknown.
fn named_clusters(
    config: &Value,
    diags: &mut Diagnostics,
) -> Option<BTreeMap<String, Option<ClusterSettings>>> {
    let clusters = match config.get_attr("clusters") {
        None => return Some(BTreeMap::new()),
        Some(v) if v.is_null() => return Some(BTreeMap::new()),
        Some(Value::Map(entries)) => entries,
        Some(_) => return None,
    };
    let mut named = BTreeMap::new();
    for (name, entry) in clusters {
        let path = AttrPath::root().attr("clusters").key(name);
        let settings = match entry.is_wholly_known() {
            true => match entry.decode::<ClusterModel>() {
                Ok(model) => Some(model.settings(&path, false, diags)),
                Err(d) => {
                    diags.extend(d);
                    None
                }
            },
            false => None,
        };
        named.insert(name.clone(), settings);
    }
    Some(named)
}

/// The `gitlab` block.
#[derive(Debug, Default, Deserialize)]
struct GitlabModel {
    base_url: Option<String>,
    token: Option<Secret>,
    ca_file: Option<String>,
    max_retries: Option<i64>,
}

impl GitlabModel {
    /// The client settings after environment fallbacks, checked.
    fn settings(self, diags: &mut Diagnostics) -> GitlabSettings {
        let path = AttrPath::root().attr("gitlab");
        let base_url = self
            .base_url
            .or_else(|| env_nonempty("GITLAB_BASE_URL"))
            .unwrap_or_else(|| DEFAULT_GITLAB_URL.to_string());
        let base_url = normalise_base_url(&base_url);
        if !is_http_url(&base_url) {
            diags.error_at(
                path.clone().attr("base_url"),
                "Invalid GitLab URL",
                "gitlab.base_url (or GITLAB_BASE_URL) must be an http:// or https:// URL such as \
                 https://gitlab.example.com.",
            );
        }
        let token = self
            .token
            .or_else(|| env_nonempty("GITLAB_TOKEN").map(Secret::new));
        let ca_file = self.ca_file.map(|p| expand_home(&p));
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
        let max_retries = self.max_retries.map_or(DEFAULT_MAX_RETRIES, |n| {
            n.clamp(0, i64::from(MAX_RETRIES_LIMIT)) as u32
        });
        GitlabSettings {
            base_url,
            token,
            ca_file,
            max_retries,
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
        let gitlab = known_block::<GitlabModel>(&cfg, "gitlab")
            .expect("decodes")
            .flatten()
            .expect("gitlab settings")
            .settings(&mut diags);
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
