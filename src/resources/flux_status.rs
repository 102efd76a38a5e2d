//! Data source `gitlabflux_flux_status`: how Flux is doing in a cluster, as
//! [`crate::flux::status`] reads it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_name_attribute, kube_client,
};
use super::support::kube_error;
use crate::flux::render::DEFAULT_NAMESPACE;
use crate::flux::status;
use crate::tfplug::{Attribute, Block, Ctx, DataSource, DiagResult, Nesting, Schema, Value};

pub struct FluxStatus;

#[derive(Deserialize)]
struct Config {
    namespace: Option<String>,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
}

/// The data source's attributes: what was asked, and what was found.
#[derive(Serialize)]
struct Status {
    namespace: String,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    #[serde(flatten)]
    found: status::FluxStatus,
}

fn object_status_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("kind").computed(),
        Attribute::bool("ready").computed(),
        Attribute::string("message").computed(),
        Attribute::string("revision").computed(),
    ]
}

#[async_trait]
impl DataSource<ProviderData> for FluxStatus {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_status"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("namespace")
                    .optional()
                    .description("Flux's namespace. Default `flux-system`."),
                Attribute::object("cluster", cluster_connection_attributes()).optional(),
                cluster_name_attribute(),
                Attribute::nested(
                    "controllers",
                    Nesting::List,
                    vec![
                        Attribute::string("name").computed(),
                        Attribute::bool("ready").computed(),
                        Attribute::string("version").computed(),
                    ],
                )
                .computed()
                .description("Every Flux controller Deployment in the namespace."),
                Attribute::object("source", object_status_attributes())
                    .computed()
                    .description("The `flux-system` source."),
                Attribute::object("kustomization", object_status_attributes())
                    .computed()
                    .description("The `flux-system` Kustomization."),
                Attribute::bool("ready")
                    .computed()
                    .description("All controllers and the sync are ready."),
                Attribute::string("sharding_key")
                    .computed()
                    .description("The label the controllers shard by; null without sharding."),
                Attribute::nested(
                    "shards",
                    Nesting::List,
                    vec![
                        Attribute::string("name").computed(),
                        Attribute::string_list("controllers").computed(),
                        Attribute::bool("ready").computed(),
                        Attribute::number("objects").computed(),
                    ],
                )
                .computed()
                .description("Each shard: the controllers serving it, whether they are ready, and how many Flux objects carry its label."),
                Attribute::number("unsharded_objects")
                    .computed()
                    .description("Flux objects the main controllers reconcile (no shard label)."),
            ])
            .description("Readiness and versions of Flux in a cluster."),
        )
    }

    async fn read(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Value> {
        let Config {
            namespace,
            cluster,
            cluster_name,
        } = config.decode()?;
        let client = kube_client(ctx, ClusterChoice::of(&cluster, &cluster_name)).await?;
        let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let found = status::read(&client, &namespace)
            .await
            .map_err(kube_error)?;
        Value::encode(&Status {
            namespace,
            cluster,
            cluster_name,
            found,
        })
    }
}
