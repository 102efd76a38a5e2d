//! The stages that do what `flux install`'s own flags do: component selection
//! (`--components`, `--components-extra`, with the feature gate source-watcher's consumers
//! need), network policies, namespace, image registry and
//! pull secret, tolerations, log level and cluster domain. Each one validates its own option
//! and is a no-op when the option is unset, so the default render reproduces the
//! distribution.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::options::{RenderOptions, selected_components};
use super::stage::{Stage, for_each_manager_args};
use crate::flux::error::FluxError;
use crate::flux::manifest::{self, INSTANCE_LABEL};
use crate::kube::syntax::{is_dns_label, is_dns_subdomain};

/// Keeps shared objects (no component label) and the selected controllers' objects.
pub fn select_components(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let available: BTreeSet<&str> = stage
        .components
        .iter()
        .filter_map(manifest::component)
        .collect();
    let selected = selected_components(options);
    if let Some(unknown) = selected.iter().find(|c| !available.contains(c.as_str())) {
        let attribute = if options.components_extra.contains(unknown) {
            "components_extra"
        } else {
            "components"
        };
        return Err(FluxError::UnknownComponent {
            attribute,
            name: unknown.clone(),
            available: available.iter().map(|c| c.to_string()).collect(),
        });
    }
    stage.components.retain(|object| {
        manifest::component(object).is_none_or(|c| selected.iter().any(|s| s == c))
    });
    if selected.iter().any(|c| c == SOURCE_WATCHER) {
        gate_external_artifacts(stage);
    }
    Ok(())
}

const SOURCE_WATCHER: &str = "source-watcher";
/// The controllers that consume source-watcher's ExternalArtifacts, behind this gate.
const EXTERNAL_ARTIFACT_CONSUMERS: [&str; 2] = ["kustomize-controller", "helm-controller"];
const EXTERNAL_ARTIFACT_GATE: &str = "ExternalArtifact";
const FEATURE_GATES_FLAG: &str = "--feature-gates";

/// Turns the ExternalArtifact gate on in kustomize- and helm-controller, as `flux install`
/// does when it installs source-watcher. A gate the distribution already sets, either way,
/// is kept as it is; other gates of the flag stay beside it.
fn gate_external_artifacts(stage: &mut Stage) {
    let consumers = stage.components.iter_mut().filter(|o| {
        manifest::is_deployment(o)
            && manifest::component(o).is_some_and(|c| EXTERNAL_ARTIFACT_CONSUMERS.contains(&c))
    });
    for deployment in consumers {
        if let Some(args) = manifest::args_mut(deployment) {
            add_feature_gate(args, EXTERNAL_ARTIFACT_GATE);
        }
    }
}

/// `gate=true` added to the controller's `--feature-gates` flag, or a flag of its own.
fn add_feature_gate(args: &mut Vec<Value>, gate: &str) {
    let prefix = format!("{FEATURE_GATES_FLAG}=");
    let current = args
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&prefix))
        .map(str::to_string);
    let gates = match current {
        Some(gates) if gates.split(',').any(|g| g.split('=').next() == Some(gate)) => return,
        Some(gates) if !gates.is_empty() => format!("{gates},{gate}=true"),
        _ => format!("{gate}=true"),
    };
    manifest::set_flag(args, FEATURE_GATES_FLAG, &gates);
}

pub fn network_policy(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    if !options.network_policy {
        stage
            .components
            .retain(|object| manifest::kind(object) != "NetworkPolicy");
    }
    Ok(())
}

fn invalid(attribute: &'static str, message: String) -> FluxError {
    FluxError::InvalidOption { attribute, message }
}

/// Moves everything from the distribution's namespace to `options.namespace`: object
/// namespaces, the Namespace itself, the `-<namespace>` suffix of cluster-scoped names
/// (`crd-controller-flux-system`, as `flux install --namespace` names them) and role
/// references to them, ServiceAccount subjects, the instance label and `.<ns>.svc`
/// addresses in controller args and env.
pub fn namespace(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let new = options.namespace.as_str();
    if !is_dns_label(new) {
        return Err(invalid(
            "namespace",
            format!("{new:?} is not a valid namespace name (DNS-1123 label)"),
        ));
    }
    let old = stage.source_namespace.clone();
    if old == new {
        return Ok(());
    }
    for object in &mut stage.components {
        rename_namespace(object, &old, new);
    }
    Ok(())
}

fn rename_namespace(object: &mut Value, old: &str, new: &str) {
    let is_namespace = manifest::kind(object) == "Namespace";
    let old_suffix = format!("-{old}");
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if metadata.get("namespace").and_then(Value::as_str) == Some(old) {
            metadata.insert("namespace".into(), json!(new));
        }
        rename_name(metadata, is_namespace, old, &old_suffix, new);
    }
    if let Some(role_ref) = object.get_mut("roleRef").and_then(Value::as_object_mut) {
        rename_name(role_ref, false, old, &old_suffix, new);
    }
    for subject in object
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if subject.get("namespace").and_then(Value::as_str) == Some(old) {
            subject["namespace"] = json!(new);
        }
    }
    rewrite_strings(object, old, new);
}

fn rename_name(map: &mut Map<String, Value>, whole: bool, old: &str, suffix: &str, new: &str) {
    let Some(name) = map.get("name").and_then(Value::as_str) else {
        return;
    };
    let renamed = if whole && name == old {
        new.to_string()
    } else if let Some(stem) = name.strip_suffix(suffix) {
        format!("{stem}-{new}")
    } else {
        return;
    };
    map.insert("name".into(), json!(renamed));
}

/// The instance label anywhere (object and pod template) and `.<old>.svc` in any string,
/// which is how a namespace shows up in addresses inside args and env values.
fn rewrite_strings(value: &mut Value, old: &str, new: &str) {
    let old_svc = format!(".{old}.svc");
    let new_svc = format!(".{new}.svc");
    walk_strings(value, None, &mut |key, text| {
        if key == Some(INSTANCE_LABEL) && text == old {
            Some(new.to_string())
        } else if text.contains(&old_svc) {
            Some(text.replace(&old_svc, &new_svc))
        } else {
            None
        }
    });
}

/// Visits every string (with its map key, if any) and replaces it when `f` says so.
fn walk_strings(
    value: &mut Value,
    key: Option<&str>,
    f: &mut dyn FnMut(Option<&str>, &str) -> Option<String>,
) {
    match value {
        Value::String(text) => {
            if let Some(replacement) = f(key, text) {
                *text = replacement;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk_strings(v, None, f)),
        Value::Object(map) => map
            .iter_mut()
            .for_each(|(k, v)| walk_strings(v, Some(k), f)),
        _ => {}
    }
}

/// `ghcr.io/fluxcd/<name>:<tag>` becomes `<registry>/<name>:<tag>`; whatever registry the
/// distribution names is replaced, so a mirrored distribution can be re-pointed too.
pub fn registry(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(registry) = options.registry.as_deref() else {
        return Ok(());
    };
    let registry = registry.trim_end_matches('/');
    if registry.is_empty() || registry.contains(char::is_whitespace) || registry.contains("://") {
        return Err(invalid(
            "distribution.registry",
            format!("{registry:?} is not an image registry such as registry.example.com/fluxcd"),
        ));
    }
    for_each_container(stage, |container| {
        if let Some(image) = container.get("image").and_then(Value::as_str) {
            let repository_and_tag = image.rsplit('/').next().unwrap_or(image);
            let image = format!("{registry}/{repository_and_tag}");
            container.insert("image".into(), json!(image));
        }
    });
    Ok(())
}

fn for_each_container(stage: &mut Stage, mut f: impl FnMut(&mut Map<String, Value>)) {
    for object in stage
        .components
        .iter_mut()
        .filter(|o| manifest::is_deployment(o))
    {
        for container in manifest::containers_mut(object) {
            f(container);
        }
    }
}

fn for_each_pod_spec(stage: &mut Stage, mut f: impl FnMut(&mut Map<String, Value>)) {
    for object in stage
        .components
        .iter_mut()
        .filter(|o| manifest::is_deployment(o))
    {
        if let Some(spec) = manifest::pod_spec_mut(object) {
            f(spec);
        }
    }
}

/// Adds `item` to the list at `key` unless an equal entry is there already.
fn add_unique(spec: &mut Map<String, Value>, key: &str, item: Value) {
    let list = manifest::array_entry(spec, key);
    if !list.contains(&item) {
        list.push(item);
    }
}

pub fn image_pull_secret(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(secret) = options.image_pull_secret.as_deref() else {
        return Ok(());
    };
    if !is_dns_subdomain(secret) {
        return Err(invalid(
            "image_pull_secret",
            format!("{secret:?} is not a valid Secret name"),
        ));
    }
    for_each_pod_spec(stage, |spec| {
        add_unique(spec, "imagePullSecrets", json!({ "name": secret }));
    });
    Ok(())
}

pub fn tolerations(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    if let Some(bad) = options
        .toleration_keys
        .iter()
        .find(|k| k.is_empty() || k.contains(char::is_whitespace))
    {
        return Err(invalid(
            "toleration_keys",
            format!("{bad:?} is not a taint key"),
        ));
    }
    for_each_pod_spec(stage, |spec| {
        for key in &options.toleration_keys {
            add_unique(
                spec,
                "tolerations",
                json!({ "key": key, "operator": "Exists" }),
            );
        }
    });
    Ok(())
}

const LOG_LEVELS: [&str; 3] = ["debug", "info", "error"];

pub fn log_level(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(level) = options.log_level.as_deref() else {
        return Ok(());
    };
    if !LOG_LEVELS.contains(&level) {
        return Err(invalid(
            "log_level",
            format!("{level:?} is not one of {}", LOG_LEVELS.join(", ")),
        ));
    }
    for_each_manager_args(stage, |_, args| {
        manifest::set_flag(args, "--log-level", level)
    });
    Ok(())
}

const DEFAULT_DOMAIN: &str = ".svc.cluster.local.";

/// Replaces `cluster.local` in the in-cluster addresses controllers advertise and call
/// (`--storage-adv-addr`, `--events-addr`).
pub fn cluster_domain(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(domain) = options.cluster_domain.as_deref() else {
        return Ok(());
    };
    let domain = domain.trim_end_matches('.');
    if !is_dns_subdomain(domain) {
        return Err(invalid(
            "cluster_domain",
            format!("{domain:?} is not a DNS domain such as cluster.local"),
        ));
    }
    let replacement = format!(".svc.{domain}.");
    for_each_manager_args(stage, |_, args| {
        for arg in args.iter_mut() {
            if let Some(text) = arg.as_str().filter(|t| t.contains(DEFAULT_DOMAIN)) {
                *arg = json!(text.replace(DEFAULT_DOMAIN, &replacement));
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::render::{DEFAULT_COMPONENTS, render};
    use crate::flux::testutil::{deployment_args, find, fixture, fixture_with_extras, pod_spec};

    fn options() -> RenderOptions {
        RenderOptions::default()
    }

    fn deployments(objects: &[Value]) -> Vec<&str> {
        let mut names: Vec<&str> = objects
            .iter()
            .filter(|o| manifest::is_deployment(o))
            .map(manifest::name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn selects_components() {
        let rendered = render(
            &fixture(),
            &RenderOptions {
                components: vec!["source-controller".into(), "kustomize-controller".into()],
                ..options()
            },
        )
        .unwrap();
        assert_eq!(
            deployments(&rendered.objects),
            vec!["kustomize-controller", "source-controller"]
        );
        assert!(
            find(
                &rendered.objects,
                "CustomResourceDefinition",
                "helmreleases.helm.toolkit.fluxcd.io"
            )
            .is_none()
        );
        assert!(find(&rendered.objects, "ServiceAccount", "helm-controller").is_none());
        assert!(find(&rendered.objects, "Service", "webhook-receiver").is_none());
        // Shared objects stay.
        assert!(
            find(
                &rendered.objects,
                "ClusterRole",
                "crd-controller-flux-system"
            )
            .is_some()
        );
        assert!(
            rendered.files["gotk-components.yaml"]
                .contains("# Components: kustomize-controller,source-controller\n")
        );
    }

    #[test]
    fn extra_components_need_the_distribution_to_ship_them() {
        let err = render(
            &fixture(),
            &RenderOptions {
                components_extra: vec!["image-reflector-controller".into()],
                ..options()
            },
        )
        .unwrap_err();
        assert_eq!(
            err,
            FluxError::UnknownComponent {
                attribute: "components_extra",
                name: "image-reflector-controller".into(),
                available: DEFAULT_COMPONENTS
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            }
        );
        assert!(
            err.detail()
                .contains("helm-controller, kustomize-controller")
        );
        let err = render(
            &fixture(),
            &RenderOptions {
                components: vec!["sauce-controller".into()],
                ..options()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, FluxError::UnknownComponent { attribute: "components", ref name, .. } if name == "sauce-controller")
        );

        let rendered = render(
            &fixture_with_extras(),
            &RenderOptions {
                components_extra: vec!["source-watcher".into()],
                ..options()
            },
        )
        .unwrap();
        assert_eq!(deployments(&rendered.objects).len(), 5);
        assert!(find(&rendered.objects, "Deployment", "source-watcher").is_some());
        assert!(
            find(
                &rendered.objects,
                "Deployment",
                "image-reflector-controller"
            )
            .is_none()
        );
    }

    /// What `flux install` does beside source-watcher: its consumers get the gate, once, and
    /// a gate the distribution sets is left as it is.
    #[test]
    fn source_watcher_gates_external_artifacts_in_its_consumers() {
        let gate = "--feature-gates=ExternalArtifact=true".to_string();
        let with_watcher = RenderOptions {
            components_extra: vec!["source-watcher".into()],
            ..options()
        };
        let rendered = render(&fixture_with_extras(), &with_watcher).unwrap();
        for consumer in ["kustomize-controller", "helm-controller"] {
            let args = deployment_args(&rendered.objects, consumer);
            assert_eq!(args.iter().filter(|a| **a == gate).count(), 1, "{args:?}");
        }
        for other in [
            "source-controller",
            "notification-controller",
            "source-watcher",
        ] {
            let args = deployment_args(&rendered.objects, other);
            assert!(
                !args.iter().any(|a| a.starts_with("--feature-gates")),
                "{args:?}"
            );
        }
        let without = render(&fixture_with_extras(), &options()).unwrap();
        let args = deployment_args(&without.objects, "kustomize-controller");
        assert!(
            !args.iter().any(|a| a.starts_with("--feature-gates")),
            "{args:?}"
        );

        let mut args = vec![json!("--feature-gates=OOMWatch=true")];
        add_feature_gate(&mut args, "ExternalArtifact");
        assert_eq!(
            args,
            vec![json!("--feature-gates=OOMWatch=true,ExternalArtifact=true")]
        );
        let mut args = vec![json!("--feature-gates=ExternalArtifact=false")];
        add_feature_gate(&mut args, "ExternalArtifact");
        assert_eq!(args, vec![json!("--feature-gates=ExternalArtifact=false")]);
    }

    #[test]
    fn rewrites_registry() {
        let rendered = render(
            &fixture(),
            &RenderOptions {
                registry: Some("registry.example.com:5000/mirror/".into()),
                ..options()
            },
        )
        .unwrap();
        let image =
            pod_spec(&rendered.objects, "source-controller")["containers"][0]["image"].clone();
        assert_eq!(
            image,
            json!("registry.example.com:5000/mirror/source-controller:v1.8.2")
        );
        assert!(!rendered.files["gotk-components.yaml"].contains("ghcr.io/fluxcd"));
        let err = render(
            &fixture(),
            &RenderOptions {
                registry: Some("https://x".into()),
                ..options()
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            FluxError::InvalidOption {
                attribute: "distribution.registry",
                ..
            }
        ));
    }

    #[test]
    fn adds_pull_secret_and_tolerations_to_every_controller() {
        let rendered = render(
            &fixture(),
            &RenderOptions {
                image_pull_secret: Some("regcred".into()),
                toleration_keys: vec!["dedicated".into(), "gpu".into()],
                ..options()
            },
        )
        .unwrap();
        for name in DEFAULT_COMPONENTS {
            let spec = pod_spec(&rendered.objects, name);
            assert_eq!(
                spec["imagePullSecrets"],
                json!([{ "name": "regcred" }]),
                "{name}"
            );
            assert_eq!(
                spec["tolerations"],
                json!([
                    { "key": "dedicated", "operator": "Exists" },
                    { "key": "gpu", "operator": "Exists" }
                ]),
                "{name}"
            );
        }
    }

    #[test]
    fn sets_log_level_once() {
        let rendered = render(
            &fixture(),
            &RenderOptions {
                log_level: Some("debug".into()),
                ..options()
            },
        )
        .unwrap();
        for name in DEFAULT_COMPONENTS {
            let args = deployment_args(&rendered.objects, name);
            let levels: Vec<&String> = args
                .iter()
                .filter(|a| a.starts_with("--log-level"))
                .collect();
            assert_eq!(levels, vec!["--log-level=debug"], "{name}");
        }
        let err = render(
            &fixture(),
            &RenderOptions {
                log_level: Some("verbose".into()),
                ..options()
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            FluxError::InvalidOption {
                attribute: "log_level",
                ..
            }
        ));
    }

    #[test]
    fn replaces_cluster_domain() {
        let rendered = render(
            &fixture(),
            &RenderOptions {
                cluster_domain: Some("k8s.example.".into()),
                ..options()
            },
        )
        .unwrap();
        let args = deployment_args(&rendered.objects, "source-controller");
        assert!(args.contains(&"--events-addr=http://notification-controller.$(RUNTIME_NAMESPACE).svc.k8s.example./".to_string()));
        assert!(
            args.contains(
                &"--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.k8s.example."
                    .to_string()
            )
        );
        assert!(!rendered.files["gotk-components.yaml"].contains("cluster.local"));
    }

    #[test]
    fn drops_network_policies() {
        let with = render(&fixture(), &options()).unwrap();
        let count = |objects: &[Value]| {
            objects
                .iter()
                .filter(|o| manifest::kind(o) == "NetworkPolicy")
                .count()
        };
        assert_eq!(count(&with.objects), 3);
        let without = render(
            &fixture(),
            &RenderOptions {
                network_policy: false,
                ..options()
            },
        )
        .unwrap();
        assert_eq!(count(&without.objects), 0);
        assert_eq!(without.objects.len(), with.objects.len() - 3);
    }

    #[test]
    fn moves_everything_to_the_namespace() {
        let rendered = render(
            &fixture(),
            &RenderOptions {
                namespace: "gitops".into(),
                ..options()
            },
        )
        .unwrap();
        let text = &rendered.files["gotk-components.yaml"];
        assert!(!text.contains("flux-system"), "every mention is rewritten");
        assert!(find(&rendered.objects, "Namespace", "gitops").is_some());
        let binding = find(
            &rendered.objects,
            "ClusterRoleBinding",
            "crd-controller-gitops",
        )
        .unwrap();
        assert_eq!(binding["roleRef"]["name"], json!("crd-controller-gitops"));
        assert!(
            binding["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["namespace"] == json!("gitops"))
        );
        let deployment = find(&rendered.objects, "Deployment", "helm-controller").unwrap();
        assert_eq!(deployment["metadata"]["namespace"], json!("gitops"));
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["labels"][INSTANCE_LABEL],
            json!("gitops")
        );
        let err = render(
            &fixture(),
            &RenderOptions {
                namespace: "Flux_System".into(),
                ..options()
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            FluxError::InvalidOption {
                attribute: "namespace",
                ..
            }
        ));
    }
}
