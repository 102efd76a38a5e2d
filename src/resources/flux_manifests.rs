//! Data source `gitlabflux_flux_manifests`: what `gitlabflux_flux_bootstrap` would apply and
//! commit, rendered without touching a cluster.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::context::ProviderData;
use super::flux_inputs::{FluxInputs, render_attributes};
use super::support::{Model, with_defaults};
use crate::tfplug::{Attribute, Block, Ctx, DataSource, DiagResult, Schema, Type, Value};

pub struct FluxManifests;

/// What the data source renders.
#[derive(Serialize)]
struct Manifests {
    files: BTreeMap<String, String>,
    sha256: String,
}

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

    /// The inputs come back as rendered, with the schema's defaults where the configuration
    /// left them out.
    async fn read(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Value> {
        let inputs: FluxInputs = with_defaults(&self.schema(), config).decode()?;
        let (rendered, _) = inputs.render(ctx).await?;
        Value::encode(&Model {
            inputs,
            own: Manifests {
                files: rendered.files,
                sha256: rendered.sha256,
            },
        })
    }
}
