//! The `gitlabflux_flux_tenant` list resource (`terraform query`, Terraform 1.14+): the
//! tenants in the provider's default cluster, found by the tenant label on their
//! Kustomizations, each importable as a `gitlabflux_flux_tenant`.

use async_trait::async_trait;
use serde::Deserialize;

use super::context::{ProviderData, kube};
use super::support::kube_error;
use crate::flux::objects::tenants;
use crate::tfplug::{Attribute, Block, Ctx, DiagResult, Found, ListResource, Schema, Value};

pub struct FluxTenantList;

#[derive(Deserialize)]
struct Query {
    namespace: Option<String>,
}

#[async_trait]
impl ListResource<ProviderData> for FluxTenantList {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_tenant"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![Attribute::string("namespace").optional().description(
                "Only the tenant whose Kustomization is in this namespace (its first namespace).",
            )])
            .description(
                "The Flux tenants in the provider's default cluster (`kubernetes`), as \
                 `gitlabflux_flux_tenant` made them.",
            ),
        )
    }

    async fn list(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Vec<Found>> {
        let query: Query = if config.is_null() {
            Query { namespace: None }
        } else {
            config.decode()?
        };
        // Import reads the provider's default cluster, so the query does too.
        let client = kube(ctx, &Value::Null).await?;
        let found = tenants(&client).await.map_err(kube_error)?;
        Ok(found
            .into_iter()
            .filter(|(namespace, _)| query.namespace.as_ref().is_none_or(|n| n == namespace))
            .map(|(namespace, name)| Found {
                display_name: format!("tenant {name} in {namespace}"),
                import_id: format!("{namespace}/{name}"),
            })
            .collect())
    }
}
