//! The `gitlabflux_flux_tenant` list resource (`terraform query`, Terraform 1.14+): the
//! tenants in the provider's default cluster or one of its `clusters`, found by the tenant
//! label on their Kustomizations, each importable as a `gitlabflux_flux_tenant`.

use async_trait::async_trait;
use serde::Deserialize;

use super::context::{ClusterChoice, ProviderData, kube_client, on_cluster};
use super::support::kube_error;
use crate::flux::objects::tenants;
use crate::tfplug::{Attribute, Block, Ctx, DiagResult, Found, ListResource, Schema, Value};

pub struct FluxTenantList;

#[derive(Default, Deserialize)]
struct Query {
    namespace: Option<String>,
    cluster_name: Option<String>,
}

#[async_trait]
impl ListResource<ProviderData> for FluxTenantList {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_tenant"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("namespace").optional().description(
                    "Only the tenant whose Kustomization is in this namespace (its first \
                     namespace).",
                ),
                Attribute::string("cluster_name").optional().description(
                    "One of the provider's `clusters` to list; default: the provider's \
                     `kubernetes`. Results import with this `cluster_name`.",
                ),
            ])
            .description("The Flux tenants in a cluster, as `gitlabflux_flux_tenant` made them."),
        )
    }

    async fn list(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Vec<Found>> {
        let query: Query = if config.is_null() {
            Query::default()
        } else {
            config.decode()?
        };
        let cluster_name = query.cluster_name.as_deref();
        let client = kube_client(ctx, ClusterChoice::named(cluster_name)).await?;
        let found = tenants(&client).await.map_err(kube_error)?;
        Ok(found
            .into_iter()
            .filter(|(namespace, _)| query.namespace.as_ref().is_none_or(|n| n == namespace))
            .map(|(namespace, name)| Found {
                display_name: format!("tenant {name} in {namespace}"),
                import_id: on_cluster(
                    format!("{namespace}/{name}"),
                    cluster_name.unwrap_or_default(),
                ),
            })
            .collect())
    }
}
