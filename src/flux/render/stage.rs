//! What the render stages work on: the [`Stage`] (the objects being rendered, split by the
//! file they end up in), the signature every stage has ([`Transform`]), and the walks over
//! it that more than one stage needs.

use serde_json::Value;

use super::options::RenderOptions;
use crate::flux::error::FluxError;
use crate::flux::manifest;

/// The objects being rendered, split by the file they end up in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stage {
    /// What the distribution ships (gotk-components.yaml).
    pub components: Vec<Value>,
    /// The `flux-system` source and Kustomization (gotk-sync.yaml).
    pub sync: Vec<Value>,
    /// The namespace the distribution was published for, before any rewrite.
    pub source_namespace: String,
}

impl Stage {
    /// Every object, in the order of the files.
    pub fn objects(self) -> Vec<Value> {
        let mut objects = self.components;
        objects.extend(self.sync);
        objects
    }
}

/// One rendering step.
pub type Transform = fn(&mut Stage, &RenderOptions) -> Result<(), FluxError>;

/// Calls `f` with the component and manager args of every controller Deployment.
pub fn for_each_manager_args(stage: &mut Stage, mut f: impl FnMut(&str, &mut Vec<Value>)) {
    for object in stage
        .components
        .iter_mut()
        .filter(|o| manifest::is_deployment(o))
    {
        let component = manifest::component(object)
            .unwrap_or_else(|| manifest::name(object))
            .to_string();
        if let Some(args) = manifest::args_mut(object) {
            f(&component, args);
        }
    }
}
