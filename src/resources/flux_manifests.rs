//! Data source `gitlabflux_flux_manifests`: what `gitlabflux_flux_bootstrap` would apply and
//! commit, rendered without touching a cluster.

use async_trait::async_trait;

use super::context::ProviderData;
use super::flux_bootstrap::render_config;
use super::flux_inputs::render_attributes;
use super::support::set;
use crate::tfplug::{Attribute, Block, Ctx, DataSource, DiagResult, Schema, Type, Value};

pub struct FluxManifests;

#[async_trait]
impl DataSource<ProviderData> for FluxManifests {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_manifests"
    }

    fn schema(&self) -> Schema {
        let mut attributes = render_attributes();
        attributes.extend([
            Attribute::new("files", Type::map(Type::String))
                .computed()
                .description(
                    "File path -> YAML: gotk-components.yaml, gotk-sync.yaml, kustomization.yaml.",
                ),
            Attribute::string("sha256").computed().description(
                "SHA-256 over the files in name order, each framed as name, NUL byte, length \
                     (u64 big-endian) and content.",
            ),
        ]);
        Schema::new(
            0,
            Block::new(attributes)
                .description("The manifests a Flux bootstrap with these inputs applies, for review or your own pipeline."),
        )
    }

    async fn read(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Value> {
        let (rendered, _) = render_config(ctx, config).await?;
        let mut state = config.clone();
        set(
            &mut state,
            "files",
            Value::Map(
                rendered
                    .files
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect(),
            ),
        );
        set(&mut state, "sha256", rendered.sha256.as_str().into());
        Ok(state)
    }
}
