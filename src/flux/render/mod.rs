//! Pure rendering of a Flux distribution into the objects and files a bootstrap applies.
//!
//! Rendering is a pipeline ([`PIPELINE`]) of small stages over a [`Stage`] (the component
//! objects and the sync objects, kept apart because they become separate files). Each stage
//! owns one option, validates it, and edits the objects in place. No I/O happens here, and
//! every step is deterministic, so the same distribution and options always give
//! byte-identical files and the same `sha256`.
//!
//! Rendering does not order objects for applying: [`Rendered::objects`] keeps the order of
//! the files, and the Kubernetes apply engine decides the apply order on its own.
//!
//! The module is layered one way:
//! - [`options`]: [`RenderOptions`] and the types of its attributes (plain data);
//! - [`stage`]: the [`Stage`] the stages edit and the walks over it they share;
//! - one file per stage: [`install`] (what `flux install`'s flags set: components, network
//!   policies, namespace, registry, pull secret, tolerations, log level, cluster domain),
//!   [`lockdown`] (multi-tenancy), [`scaling`], [`shards`] (horizontal sharding), [`sync`]
//!   and [`patch`];
//! - this file: the pipeline that runs the stages in order and writes the files.
//!
//! Stages import [`options`], [`stage`] and the Flux-wide helpers ([`crate::flux::manifest`],
//! [`crate::kube::syntax`], [`crate::flux::interval`], [`crate::flux::placement`] for shard
//! names, and [`crate::flux::upgrade::is_2_9_or_later`] for what changed in 2.9); none
//! imports the pipeline or another stage (their tests render through [`render`]). Outside
//! the pipeline, [`crate::flux::tenant`] reuses the [`sync`] stage's source object and
//! checks, and [`crate::flux::status`] reads live shards back with [`shards::layout`].

pub mod install;
pub mod lockdown;
pub mod options;
pub mod patch;
pub mod scaling;
pub mod shards;
pub mod stage;
pub mod sync;

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::flux::error::FluxError;
use crate::flux::manifest;
use crate::flux::source::Distribution;

pub use options::{
    DEFAULT_COMPONENTS, DEFAULT_NAMESPACE, Multitenancy, Patch, PatchKind, Ref, RenderOptions,
    Scaling, Sharding, Size, Storage, SyncKind, SyncSpec, Target, Verify, selected_components,
};
pub use stage::{Stage, Transform};

/// The render result.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Every object, in the order of the files: the components, then the sync objects, each
    /// in the order the stages left them (the distribution's, with additions appended). This
    /// is a stable output order, not an apply order: the apply engine
    /// ([`crate::kube::engine`]) alone decides what is applied, pruned and deleted first.
    pub objects: Vec<Value>,
    /// `gotk-components.yaml`, `gotk-sync.yaml` (with sync) and `kustomization.yaml`.
    pub files: BTreeMap<String, String>,
    /// Hex SHA-256 over `files` (see [`files_sha256`]).
    pub sha256: String,
}

/// The steps, in order. Selection comes first so later steps only touch kept objects;
/// sharding copies controllers after every per-controller setting, so shards inherit them;
/// patches come last so they see, and can override, everything else.
pub const PIPELINE: &[(&str, Transform)] = &[
    ("components", install::select_components),
    ("network_policy", install::network_policy),
    ("namespace", install::namespace),
    ("registry", install::registry),
    ("image_pull_secret", install::image_pull_secret),
    ("toleration_keys", install::tolerations),
    ("log_level", install::log_level),
    ("cluster_domain", install::cluster_domain),
    ("multitenancy", lockdown::apply),
    ("scaling", scaling::apply),
    ("sharding", shards::apply),
    ("sync", sync::append),
    ("patches", patch::apply_all),
];

pub const COMPONENTS_FILE: &str = "gotk-components.yaml";
pub const SYNC_FILE: &str = "gotk-sync.yaml";
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

/// The checks that need no distribution, so they can run when the configuration is
/// validated instead of at apply; rendering repeats them.
pub fn validate_options(options: &RenderOptions) -> Result<(), FluxError> {
    if let Some(scaling) = &options.scaling {
        scaling::validate(scaling)?;
    }
    if let Some(sharding) = &options.sharding {
        let selected = selected_components(options);
        shards::validate(sharding, &selected)?;
    }
    Ok(())
}

/// Renders `distribution` with `options`.
pub fn render(distribution: &Distribution, options: &RenderOptions) -> Result<Rendered, FluxError> {
    let stage = staged(distribution, options)?;
    let files = files(&stage, distribution, options)?;
    let sha256 = files_sha256(&files);
    Ok(Rendered {
        objects: stage.objects(),
        files,
        sha256,
    })
}

/// The objects [`render`] renders, without writing them out as files: what a refresh
/// compares with the cluster (writing a distribution's YAML is most of a render's cost).
pub fn render_objects(
    distribution: &Distribution,
    options: &RenderOptions,
) -> Result<Vec<Value>, FluxError> {
    Ok(staged(distribution, options)?.objects())
}

fn staged(distribution: &Distribution, options: &RenderOptions) -> Result<Stage, FluxError> {
    let components = distribution.objects.clone();
    let mut stage = Stage {
        source_namespace: source_namespace(&components),
        components,
        sync: Vec::new(),
    };
    for (_, transform) in PIPELINE {
        transform(&mut stage, options)?;
    }
    Ok(stage)
}

/// The distribution's own namespace: the name of its Namespace object.
fn source_namespace(objects: &[Value]) -> String {
    objects
        .iter()
        .find(|object| manifest::kind(object) == "Namespace")
        .map(|object| manifest::name(object).to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn files(
    stage: &Stage,
    distribution: &Distribution,
    options: &RenderOptions,
) -> Result<BTreeMap<String, String>, FluxError> {
    let mut files = BTreeMap::new();
    let mut resources = vec![COMPONENTS_FILE];
    let header = components_header(distribution, options);
    let body = manifest::to_documents(&stage.components)?;
    files.insert(COMPONENTS_FILE.to_string(), format!("{header}{body}"));
    if !stage.sync.is_empty() {
        let body = manifest::to_documents(&stage.sync)?;
        files.insert(SYNC_FILE.to_string(), format!("{GENERATED}{body}"));
        resources.push(SYNC_FILE);
    }
    files.insert(KUSTOMIZATION_FILE.to_string(), kustomization(&resources));
    Ok(files)
}

const GENERATED: &str =
    "# This manifest was generated by terraform-provider-gitlabflux. DO NOT EDIT.\n";

/// The same header `flux bootstrap` writes, so people reading the repository see what runs.
fn components_header(distribution: &Distribution, options: &RenderOptions) -> String {
    let mut header = GENERATED.to_string();
    if let Some(version) = &distribution.version {
        header.push_str(&format!("# Flux Version: {version}\n"));
    }
    let selected = selected_components(options);
    header.push_str(&format!("# Components: {}\n", selected.join(",")));
    header
}

fn kustomization(resources: &[&str]) -> String {
    let mut out = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for resource in resources {
        out.push_str(&format!("- {resource}\n"));
    }
    out
}

/// SHA-256 over the files in name order, each framed as name, NUL, length (u64 big-endian),
/// content, so no two different file maps hash alike.
pub fn files_sha256(files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (name, content) in files {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update((content.len() as u64).to_be_bytes());
        hasher.update(content.as_bytes());
    }
    crate::digest::hex(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::testutil::{deployment_args, find, fixture, fixture_text};

    #[test]
    fn default_render_keeps_the_fixture_objects_in_their_order() {
        let rendered = render(&fixture(), &RenderOptions::default()).unwrap();
        let original = manifest::parse_documents(&fixture_text()).unwrap();
        // No apply ordering: the distribution's objects, as and where it ships them.
        assert_eq!(rendered.objects, original);
    }

    #[test]
    fn objects_come_in_the_order_of_the_files() {
        let options = RenderOptions {
            sync: Some(crate::flux::testutil::git_sync()),
            ..RenderOptions::default()
        };
        let rendered = render(&fixture(), &options).unwrap();
        let mut in_files = manifest::parse_documents(&rendered.files[COMPONENTS_FILE]).unwrap();
        in_files.extend(manifest::parse_documents(&rendered.files[SYNC_FILE]).unwrap());
        assert_eq!(rendered.objects, in_files);
        // Without options the controllers keep the distribution's args.
        let fixture_objects = manifest::parse_documents(&fixture_text()).unwrap();
        assert_eq!(
            deployment_args(&rendered.objects, "helm-controller"),
            deployment_args(&fixture_objects, "helm-controller")
        );
    }

    #[test]
    fn files_round_trip_and_kustomization_matches_flux() {
        let rendered = render(&fixture(), &RenderOptions::default()).unwrap();
        assert_eq!(
            rendered.files.keys().collect::<Vec<_>>(),
            vec![COMPONENTS_FILE, KUSTOMIZATION_FILE]
        );
        assert_eq!(
            rendered.files[KUSTOMIZATION_FILE],
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n"
        );
        let components = &rendered.files[COMPONENTS_FILE];
        assert!(components.contains("# Flux Version: v2.8.5\n"));
        assert!(components.contains(
            "# Components: helm-controller,kustomize-controller,notification-controller,source-controller\n"
        ));
        let reparsed = manifest::parse_documents(components).unwrap();
        let original = manifest::parse_documents(&fixture_text()).unwrap();
        assert_eq!(reparsed, original);
    }

    #[test]
    fn rendering_is_deterministic() {
        let options = RenderOptions {
            registry: Some("registry.example.com/flux".into()),
            toleration_keys: vec!["b".into(), "a".into()],
            multitenancy: Multitenancy {
                enabled: true,
                ..Multitenancy::default()
            },
            sync: Some(crate::flux::testutil::git_sync()),
            ..RenderOptions::default()
        };
        let first = render(&fixture(), &options).unwrap();
        for _ in 0..3 {
            let again = render(&fixture(), &options).unwrap();
            assert_eq!(again.files, first.files);
            assert_eq!(again.sha256, first.sha256);
            assert_eq!(again.objects, first.objects);
        }
        assert_eq!(first.sha256, files_sha256(&first.files));
        let other = render(&fixture(), &RenderOptions::default()).unwrap();
        assert_ne!(other.sha256, first.sha256);
        assert!(find(&first.objects, "GitRepository", "flux-system").is_some());
    }
}
