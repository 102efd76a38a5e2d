//! Horizontal sharding of the Flux controllers, rendered the way the Flux Operator builds
//! it: the main source-, kustomize- and helm-controller (and the image controllers when the
//! distribution ships them, and source-watcher from Flux 2.9 on) ignore sharded objects
//! (`--watch-label-selector=!<key>`), and each shard gets a copy named `<controller>-<shard>`
//! that watches only its own objects (`--watch-label-selector=<key>=<shard>`), with its own
//! `app` label and pod selector. Shards of the controllers that serve artifacts
//! (source-controller, source-watcher) get their own Service and advertise it in
//! `--storage-adv-addr`, so the artifacts they serve are fetched from the right pod.
//!
//! Copies are made of Deployments and those Services only: cluster roles,
//! service accounts, network policies and quotas are shared with the main controllers, and
//! notification-controller is never sharded. Copies carry the annotation
//! `sharding.fluxcd.io/role: shard`, as the operator's do.
//!
//! [`layout`] reads the shard layout back from live Deployments for `gitlabflux_flux_status`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::options::{RenderOptions, Sharding, Storage};
use super::stage::Stage;
use crate::flux::error::FluxError;
use crate::flux::manifest;
use crate::flux::placement::{ShardError, check_shards};
use crate::flux::upgrade::is_2_9_or_later;
use crate::kube::syntax::{is_dns_subdomain, is_label_key, is_quantity};

/// The label Flux objects carry to be reconciled by a shard.
pub const DEFAULT_KEY: &str = "sharding.fluxcd.io/key";
/// Marks the controller copies that serve a shard.
pub const ROLE_ANNOTATION: &str = "sharding.fluxcd.io/role";

const SELECTOR_FLAG: &str = "--watch-label-selector";
const STORAGE_ADDR_FLAG: &str = "--storage-adv-addr";
const SOURCE_CONTROLLER: &str = "source-controller";

/// Controllers that can be sharded, in the order their copies are rendered.
pub const SHARDABLE: [&str; 5] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "image-reflector-controller",
    "image-automation-controller",
];

/// Sharded when the distribution is Flux 2.9 or later (the Flux Operator's rule; before,
/// source-watcher took no watch label selector).
const SHARDABLE_FROM_2_9: [&str; 1] = ["source-watcher"];

/// Controllers that serve artifacts from a Service of their name.
const SERVES_ARTIFACTS: [&str; 2] = [SOURCE_CONTROLLER, "source-watcher"];

/// Whether `deployment` gets shard copies.
fn shardable(deployment: &Value) -> bool {
    match manifest::component(deployment) {
        Some(c) if SHARDABLE.contains(&c) => true,
        Some(c) if SHARDABLE_FROM_2_9.contains(&c) => flux_2_9_or_later(deployment),
        _ => false,
    }
}

/// From the object's `app.kubernetes.io/version` label (`v2.9.4`); unlabelled is older.
fn flux_2_9_or_later(object: &Value) -> bool {
    manifest::label(object, "app.kubernetes.io/version").is_some_and(is_2_9_or_later)
}

fn invalid(attribute: &'static str, message: String) -> FluxError {
    FluxError::InvalidOption { attribute, message }
}

/// Checks the key, the shard names (against the longest controller name among
/// `controllers` that gets shard copies) and the storage settings.
pub(super) fn validate(sharding: &Sharding, controllers: &[String]) -> Result<(), FluxError> {
    let longest_controller = controllers
        .iter()
        .filter(|c| SHARDABLE.contains(&c.as_str()) || SHARDABLE_FROM_2_9.contains(&c.as_str()))
        .map(String::len)
        .max()
        .unwrap_or(0);
    if !is_label_key(&sharding.key) {
        return Err(invalid(
            "sharding.key",
            format!(
                "{:?} is not a label key such as {DEFAULT_KEY}",
                sharding.key
            ),
        ));
    }
    let element = |index, message| FluxError::InvalidElement {
        attribute: "sharding.shards",
        index,
        message,
    };
    check_shards(&sharding.shards).map_err(|e| match e {
        ShardError::InvalidShard { index } | ShardError::Duplicate { index } => {
            element(index, e.to_string())
        }
        ShardError::NoShards | ShardError::EmptyName => invalid(
            "sharding.shards",
            "give at least one shard, or remove the sharding block".into(),
        ),
    })?;
    // `<controller>-<shard>` becomes the pods' `app` label, which is limited to 63.
    let room = 63 - longest_controller - 1;
    if let Some(index) = sharding.shards.iter().position(|s| s.len() > room) {
        return Err(element(
            index,
            format!(
                "{:?} is too long: at most {room} characters, so that <controller>-<shard> \
                 stays a valid label value",
                sharding.shards[index]
            ),
        ));
    }
    if let Storage::Persistent { size, class } = &sharding.storage {
        if !is_quantity(size) {
            return Err(invalid(
                "sharding.storage_size",
                format!("{size:?} is not a storage quantity such as 10Gi"),
            ));
        }
        if let Some(class) = class.as_deref()
            && !is_dns_subdomain(class)
        {
            return Err(invalid(
                "sharding.storage_class",
                format!("{class:?} is not a valid StorageClass name"),
            ));
        }
    }
    Ok(())
}

pub fn apply(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(sharding) = &options.sharding else {
        return Ok(());
    };
    let sharded: Vec<usize> = stage
        .components
        .iter()
        .enumerate()
        .filter(|(_, o)| manifest::is_deployment(o) && shardable(o))
        .map(|(index, _)| index)
        .collect();
    let controllers: Vec<String> = sharded
        .iter()
        .map(|&i| manifest::name(&stage.components[i]).to_string())
        .collect();
    validate(sharding, &controllers)?;
    let not_sharded = format!("!{}", sharding.key);
    for &index in &sharded {
        if let Some(args) = manifest::args_mut(&mut stage.components[index]) {
            manifest::set_flag(args, SELECTOR_FLAG, &not_sharded);
        }
    }
    let templates: Vec<Value> = sharded
        .iter()
        .map(|&i| stage.components[i].clone())
        .collect();
    let services: Vec<Value> = stage
        .components
        .iter()
        .filter(|o| manifest::kind(o) == "Service")
        .filter(|o| SERVES_ARTIFACTS.contains(&manifest::name(o)))
        .cloned()
        .collect();
    for shard in &sharding.shards {
        for template in &templates {
            let copy = shard_deployment(template, shard, sharding);
            let served = services
                .iter()
                .find(|service| manifest::name(service) == manifest::name(template));
            if let Some(service) = served {
                stage.components.push(shard_service(service, shard));
            }
            if manifest::name(template) == SOURCE_CONTROLLER
                && let Storage::Persistent { size, class } = &sharding.storage
            {
                stage
                    .components
                    .push(shard_claim(template, shard, size, class.as_deref()));
            }
            stage.components.push(copy);
        }
    }
    Ok(())
}

fn shard_name(name: &str, shard: &str) -> String {
    format!("{name}-{shard}")
}

/// Renames the object and marks it as a shard copy.
fn rename(object: &mut Value, shard: &str) -> String {
    let name = shard_name(manifest::name(object), shard);
    object["metadata"]["name"] = json!(name);
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .map(|m| manifest::map_entry(m, "annotations"));
    if let Some(annotations) = metadata {
        annotations.insert(ROLE_ANNOTATION.into(), json!("shard"));
    }
    name
}

fn shard_deployment(template: &Value, shard: &str, sharding: &Sharding) -> Value {
    let mut copy = template.clone();
    let original = manifest::name(template).to_string();
    let name = rename(&mut copy, shard);
    if let Some(selector) = copy
        .pointer_mut("/spec/selector/matchLabels")
        .and_then(Value::as_object_mut)
    {
        selector.insert("app".into(), json!(name));
    }
    if let Some(labels) = copy
        .pointer_mut("/spec/template/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.insert("app".into(), json!(name));
    }
    if let Some(args) = manifest::args_mut(&mut copy) {
        let selector = format!("{}={shard}", sharding.key);
        manifest::set_flag(args, SELECTOR_FLAG, &selector);
        if SERVES_ARTIFACTS.contains(&original.as_str()) {
            advertise(args, &original, &name);
        }
    }
    if original == SOURCE_CONTROLLER && matches!(sharding.storage, Storage::Persistent { .. }) {
        mount_claim(&mut copy, &name);
    }
    copy
}

/// Points `--storage-adv-addr` at the shard's Service, keeping the namespace and domain
/// the main controller advertises.
fn advertise(args: &mut Vec<Value>, controller: &str, service: &str) {
    let prefix = format!("{STORAGE_ADDR_FLAG}=");
    let current = args
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&prefix))
        .map_or_else(
            || format!("{controller}.$(RUNTIME_NAMESPACE).svc.cluster.local."),
            str::to_string,
        );
    let host_rest = current
        .split_once('.')
        .map_or(String::new(), |(_, rest)| format!(".{rest}"));
    manifest::set_flag(args, STORAGE_ADDR_FLAG, &format!("{service}{host_rest}"));
}

/// Replaces the volume mounted at `/data` with the shard's claim.
fn mount_claim(deployment: &mut Value, claim: &str) {
    let volume = manifest::manager_mut(deployment).and_then(|c| {
        c.get("volumeMounts")?
            .as_array()?
            .iter()
            .find(|m| m["mountPath"] == "/data")?["name"]
            .as_str()
            .map(str::to_string)
    });
    let (Some(volume), Some(spec)) = (volume, manifest::pod_spec_mut(deployment)) else {
        return;
    };
    let replacement = json!({ "name": volume, "persistentVolumeClaim": { "claimName": claim } });
    if let Some(slot) = manifest::array_entry(spec, "volumes")
        .iter_mut()
        .find(|v| v["name"] == volume.as_str())
    {
        *slot = replacement;
    }
}

fn shard_service(service: &Value, shard: &str) -> Value {
    let mut copy = service.clone();
    let name = rename(&mut copy, shard);
    if let Some(selector) = copy
        .pointer_mut("/spec/selector")
        .and_then(Value::as_object_mut)
    {
        selector.insert("app".into(), json!(name));
    }
    copy
}

fn shard_claim(deployment: &Value, shard: &str, size: &str, class: Option<&str>) -> Value {
    let labels = deployment
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": { "requests": { "storage": size } },
    });
    if let Some(class) = class {
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": shard_name(SOURCE_CONTROLLER, shard),
            "namespace": manifest::namespace(deployment),
            "labels": labels,
            "annotations": { ROLE_ANNOTATION: "shard" },
        },
        "spec": spec,
    })
}

/// The shard layout of live controller Deployments, read from their label selectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The sharding key, when any controller shards.
    pub key: Option<String>,
    /// Shard name -> the Deployments serving it, sorted.
    pub shards: BTreeMap<String, Vec<String>>,
}

/// Reads the layout from Deployments (as returned by the API server).
pub fn layout(deployments: &[Value]) -> Layout {
    let mut layout = Layout::default();
    let prefix = format!("{SELECTOR_FLAG}=");
    for deployment in deployments {
        let selector = deployment
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["args"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix(&prefix));
        let Some(selector) = selector else { continue };
        if let Some(key) = selector.strip_prefix('!') {
            layout.key.get_or_insert_with(|| key.to_string());
        } else if let Some((key, shard)) = selector.split_once('=') {
            layout.key.get_or_insert_with(|| key.to_string());
            layout
                .shards
                .entry(shard.to_string())
                .or_default()
                .push(manifest::name(deployment).to_string());
        }
    }
    layout.shards.values_mut().for_each(|names| names.sort());
    layout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::render::{Multitenancy, render};
    use crate::flux::source::Distribution;
    use crate::flux::testutil::{deployment_args, find, fixture, fixture_with_extras, pod_spec};

    fn two_shards() -> Sharding {
        Sharding {
            key: DEFAULT_KEY.into(),
            shards: vec!["shard1".into(), "shard2".into()],
            storage: Storage::Ephemeral,
        }
    }

    fn sharded(sharding: Sharding) -> Vec<Value> {
        let options = RenderOptions {
            sharding: Some(sharding),
            ..RenderOptions::default()
        };
        render(&fixture(), &options).unwrap().objects
    }

    fn names(objects: &[Value], kind: &str) -> Vec<String> {
        let mut names: Vec<String> = objects
            .iter()
            .filter(|o| manifest::kind(o) == kind)
            .map(|o| manifest::name(o).to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn two_shards_yield_the_operator_controller_set() {
        let objects = sharded(two_shards());
        assert_eq!(
            names(&objects, "Deployment"),
            [
                "helm-controller",
                "helm-controller-shard1",
                "helm-controller-shard2",
                "kustomize-controller",
                "kustomize-controller-shard1",
                "kustomize-controller-shard2",
                "notification-controller",
                "source-controller",
                "source-controller-shard1",
                "source-controller-shard2",
            ]
        );
        assert_eq!(
            names(&objects, "Service"),
            [
                "notification-controller",
                "source-controller",
                "source-controller-shard1",
                "source-controller-shard2",
                "webhook-receiver",
            ]
        );
        let plain = render(&fixture(), &RenderOptions::default())
            .unwrap()
            .objects;
        for kind in [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "NetworkPolicy",
            "ResourceQuota",
            "CustomResourceDefinition",
            "Namespace",
        ] {
            assert_eq!(names(&objects, kind), names(&plain, kind), "{kind}");
        }
    }

    #[test]
    fn selectors_labels_and_addresses() {
        let objects = sharded(two_shards());
        for main in [
            "source-controller",
            "kustomize-controller",
            "helm-controller",
        ] {
            let args = deployment_args(&objects, main);
            assert_eq!(
                args.last().map(String::as_str),
                Some("--watch-label-selector=!sharding.fluxcd.io/key"),
                "{main}"
            );
        }
        assert!(
            !deployment_args(&objects, "notification-controller")
                .iter()
                .any(|a| a.starts_with("--watch-label-selector"))
        );
        let shard = find(&objects, "Deployment", "source-controller-shard2").unwrap();
        assert_eq!(
            shard["spec"]["selector"]["matchLabels"],
            json!({ "app": "source-controller-shard2" })
        );
        assert_eq!(
            shard["spec"]["template"]["metadata"]["labels"]["app"],
            json!("source-controller-shard2")
        );
        assert_eq!(
            shard["metadata"]["annotations"][ROLE_ANNOTATION],
            json!("shard")
        );
        assert_eq!(
            deployment_args(&objects, "source-controller-shard2"),
            [
                "--events-addr=http://notification-controller.$(RUNTIME_NAMESPACE).svc.cluster.local./",
                "--watch-all-namespaces=true",
                "--log-level=info",
                "--log-encoding=json",
                "--enable-leader-election",
                "--storage-path=/data",
                "--storage-adv-addr=source-controller-shard2.$(RUNTIME_NAMESPACE).svc.cluster.local.",
                "--watch-label-selector=sharding.fluxcd.io/key=shard2",
            ]
        );
        assert_eq!(
            deployment_args(&objects, "kustomize-controller-shard1").last(),
            Some(&"--watch-label-selector=sharding.fluxcd.io/key=shard1".to_string())
        );
        let service = find(&objects, "Service", "source-controller-shard1").unwrap();
        assert_eq!(
            service["spec"]["selector"],
            json!({ "app": "source-controller-shard1" })
        );
        // The main controllers keep their own selector labels.
        let main = find(&objects, "Deployment", "helm-controller").unwrap();
        assert_eq!(
            main["spec"]["selector"]["matchLabels"],
            json!({ "app": "helm-controller" })
        );
        assert!(
            main.pointer("/metadata/annotations")
                .and_then(|a| a.get(ROLE_ANNOTATION))
                .is_none()
        );
    }

    #[test]
    fn shards_inherit_lockdown_scaling_and_domain() {
        let options = RenderOptions {
            sharding: Some(two_shards()),
            cluster_domain: Some("k8s.example".into()),
            multitenancy: Multitenancy {
                enabled: true,
                ..Multitenancy::default()
            },
            scaling: Some(crate::flux::render::Scaling {
                size: Some(crate::flux::render::Size::Large),
                ..Default::default()
            }),
            ..RenderOptions::default()
        };
        let objects = render(&fixture(), &options).unwrap().objects;
        let shard = deployment_args(&objects, "kustomize-controller-shard1");
        for flag in [
            "--no-cross-namespace-refs=true",
            "--no-remote-bases=true",
            "--concurrent=20",
        ] {
            assert!(shard.contains(&flag.to_string()), "{flag}: {shard:?}");
        }
        assert!(
            deployment_args(&objects, "source-controller-shard1").contains(
                &"--storage-adv-addr=source-controller-shard1.$(RUNTIME_NAMESPACE).svc.k8s.example."
                    .to_string()
            )
        );
        assert_eq!(
            pod_spec(&objects, "helm-controller-shard2")["containers"][0]["resources"]["limits"],
            json!({ "cpu": "3000m", "memory": "3Gi" })
        );
    }

    #[test]
    fn persistent_storage_gives_each_shard_a_claim() {
        let objects = sharded(Sharding {
            storage: Storage::Persistent {
                size: "20Gi".into(),
                class: Some("fast".into()),
            },
            ..two_shards()
        });
        assert_eq!(
            names(&objects, "PersistentVolumeClaim"),
            ["source-controller-shard1", "source-controller-shard2"]
        );
        let claim = find(
            &objects,
            "PersistentVolumeClaim",
            "source-controller-shard1",
        )
        .unwrap();
        assert_eq!(
            claim["spec"],
            json!({ "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": "20Gi" } },
                    "storageClassName": "fast" })
        );
        assert_eq!(claim["metadata"]["namespace"], json!("flux-system"));
        let volumes = &pod_spec(&objects, "source-controller-shard1")["volumes"];
        assert_eq!(
            volumes[0],
            json!({ "name": "data", "persistentVolumeClaim": { "claimName": "source-controller-shard1" } })
        );
        assert_eq!(volumes[1], json!({ "name": "tmp", "emptyDir": {} }));
        // The main source-controller keeps its emptyDir.
        assert_eq!(
            pod_spec(&objects, "source-controller")["volumes"][0],
            json!({ "name": "data", "emptyDir": {} })
        );
    }

    #[test]
    fn image_controllers_are_sharded_when_present() {
        let options = RenderOptions {
            components_extra: vec![
                "image-reflector-controller".into(),
                "image-automation-controller".into(),
            ],
            sharding: Some(two_shards()),
            ..RenderOptions::default()
        };
        let objects = render(&fixture_with_extras(), &options).unwrap().objects;
        let deployments = names(&objects, "Deployment");
        for name in [
            "image-reflector-controller-shard1",
            "image-automation-controller-shard2",
        ] {
            assert!(deployments.contains(&name.to_string()), "{deployments:?}");
        }
        assert!(
            !deployments
                .iter()
                .any(|d| d.starts_with("notification-controller-"))
        );
    }

    /// The extended fixture as Flux `version` ships it, source-watcher with its Service.
    fn with_source_watcher(version: &str) -> Distribution {
        let base = fixture_with_extras();
        let service = find(&base.objects, "Service", SOURCE_CONTROLLER).expect("service");
        let watcher_service: Value = serde_json::from_str(
            &service
                .to_string()
                .replace(SOURCE_CONTROLLER, "source-watcher"),
        )
        .expect("valid");
        let mut objects = base.objects.clone();
        objects.push(watcher_service);
        let text = manifest::to_documents(&objects)
            .expect("serialisable")
            .replace("v2.8.5", version);
        Distribution::from_manifests(text).expect("parses")
    }

    /// As the Flux Operator does: source-watcher is sharded from Flux 2.9 on, and its
    /// shards serve their artifacts from a Service of their own.
    #[test]
    fn source_watcher_is_sharded_from_flux_2_9() {
        let options = RenderOptions {
            components_extra: vec!["source-watcher".into()],
            sharding: Some(two_shards()),
            ..RenderOptions::default()
        };
        let before = render(&with_source_watcher("v2.8.5"), &options)
            .unwrap()
            .objects;
        let deployments = names(&before, "Deployment");
        assert!(!deployments.iter().any(|d| d.starts_with("source-watcher-")));
        let args = deployment_args(&before, "source-watcher");
        assert!(
            !args.iter().any(|a| a.starts_with(SELECTOR_FLAG)),
            "{args:?}"
        );

        let objects = render(&with_source_watcher("v2.9.4"), &options)
            .unwrap()
            .objects;
        let args = deployment_args(&objects, "source-watcher");
        assert!(
            args.contains(&format!("{SELECTOR_FLAG}=!{DEFAULT_KEY}")),
            "{args:?}"
        );
        for shard in ["shard1", "shard2"] {
            let name = format!("source-watcher-{shard}");
            let args = deployment_args(&objects, &name);
            assert!(
                args.contains(&format!("{SELECTOR_FLAG}={DEFAULT_KEY}={shard}")),
                "{args:?}"
            );
            assert!(
                args.contains(&format!(
                    "{STORAGE_ADDR_FLAG}={name}.$(RUNTIME_NAMESPACE).svc.cluster.local."
                )),
                "{args:?}"
            );
            let service = find(&objects, "Service", &name).expect("the shard's Service");
            assert_eq!(service["spec"]["selector"]["app"], name.as_str());
        }
        assert!(flux_2_9_or_later(
            &json!({"metadata": {"labels": {"app.kubernetes.io/version": "v2.10.0"}}})
        ));
        assert!(!flux_2_9_or_later(
            &json!({"metadata": {"labels": {"app.kubernetes.io/version": "v2.8.5"}}})
        ));
        assert!(!flux_2_9_or_later(&json!({"metadata": {}})));
    }

    #[test]
    fn bad_sharding_points_at_the_shard() {
        let render_with = |sharding: Sharding| {
            render(
                &fixture(),
                &RenderOptions {
                    sharding: Some(sharding),
                    ..RenderOptions::default()
                },
            )
        };
        let duplicate = render_with(Sharding {
            shards: vec!["a".into(), "b".into(), "a".into()],
            ..two_shards()
        });
        assert!(matches!(
            duplicate,
            Err(FluxError::InvalidElement { index: 2, .. })
        ));
        let invalid_value = render_with(Sharding {
            shards: vec!["ok".into(), "Shard_1".into()],
            ..two_shards()
        });
        assert!(matches!(
            invalid_value,
            Err(FluxError::InvalidElement { index: 1, .. })
        ));
        let too_long = render_with(Sharding {
            shards: vec!["x".repeat(50)],
            ..two_shards()
        });
        assert!(matches!(
            too_long,
            Err(FluxError::InvalidElement { index: 0, .. })
        ));
        let bad_key = render_with(Sharding {
            key: "sharding.fluxcd.io/".into(),
            ..two_shards()
        });
        assert!(matches!(
            bad_key,
            Err(FluxError::InvalidOption {
                attribute: "sharding.key",
                ..
            })
        ));
        let empty = render_with(Sharding {
            shards: Vec::new(),
            ..two_shards()
        });
        assert!(matches!(
            empty,
            Err(FluxError::InvalidOption {
                attribute: "sharding.shards",
                ..
            })
        ));
    }

    #[test]
    fn layout_reads_back_what_was_rendered() {
        let objects = sharded(two_shards());
        let deployments: Vec<Value> = objects
            .into_iter()
            .filter(manifest::is_deployment)
            .collect();
        let layout = layout(&deployments);
        assert_eq!(layout.key.as_deref(), Some(DEFAULT_KEY));
        assert_eq!(
            layout.shards["shard1"],
            [
                "helm-controller-shard1",
                "kustomize-controller-shard1",
                "source-controller-shard1"
            ]
        );
        assert_eq!(layout.shards.len(), 2);
        assert_eq!(super::layout(&[]), Layout::default());
    }
}
