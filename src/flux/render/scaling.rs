//! Vertical scaling of the Flux controllers: the Flux Operator's cluster-size presets
//! (`small`, `medium`, `large`), explicit overrides of the same knobs, and in-memory
//! kustomize builds.
//!
//! The presets reproduce the Flux Operator's size profiles flag for flag and limit for limit,
//! so a cluster moved between the operator and this provider keeps its tuning:
//!
//! | size   | kustomize/helm                          | source-controller                  |
//! |--------|-----------------------------------------|------------------------------------|
//! | small  | 5 workers, requeue 10s, 1000m / 512Mi   | helm cache 10, 1000m / 512Mi       |
//! | medium | 10 workers, requeue 5s, 2000m / 1Gi     | 5 workers, helm cache 50, 2000m/1Gi|
//! | large  | 20 workers, requeue 5s, 3000m / 3Gi     | 10 workers, helm cache 100, 2000m/2Gi |
//!
//! (`small` also sizes notification- and the image controllers, as the operator does.)
//! Explicit values win over the preset: `concurrent`, `requeue_dependency`, `cpu_limit` and
//! `memory_limit` apply to the reconcilers that scale (source-, kustomize-, helm-controller),
//! `kube_api_qps`/`kube_api_burst` to every controller. The stage runs before sharding, so
//! shard controllers inherit exactly the main controllers' settings.

use serde_json::{Value, json};

use super::options::{RenderOptions, Scaling, Size};
use super::stage::Stage;
use crate::flux::error::FluxError;
use crate::flux::interval::validate_interval;
use crate::flux::manifest;
use crate::kube::syntax::is_quantity;

/// The reconcilers whose throughput the knobs tune.
pub const SCALED: [&str; 3] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
];

const APPLIERS: [&str; 2] = ["kustomize-controller", "helm-controller"];

/// What one preset does to one controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tuning {
    flags: Vec<(&'static str, String)>,
    /// `(requests cpu, requests memory, limits cpu, limits memory)`.
    resources: Option<[&'static str; 4]>,
}

fn helm_cache(entries: u32) -> Vec<(&'static str, String)> {
    vec![
        ("--helm-cache-max-size", entries.to_string()),
        ("--helm-cache-ttl", "720m".into()),
        ("--helm-cache-purge-interval", "60m".into()),
    ]
}

fn applier_flags(concurrent: u32, requeue: &str) -> Vec<(&'static str, String)> {
    vec![
        ("--concurrent", concurrent.to_string()),
        ("--requeue-dependency", requeue.into()),
    ]
}

/// The Flux Operator's profile for `component` at `size`.
fn preset(size: Size, component: &str) -> Tuning {
    let applier = APPLIERS.contains(&component);
    let source = component == "source-controller";
    match size {
        Size::Small => Tuning {
            flags: if applier {
                applier_flags(5, "10s")
            } else if source {
                helm_cache(10)
            } else {
                Vec::new()
            },
            resources: Some(["100m", "64Mi", "1000m", "512Mi"]),
        },
        Size::Medium if applier => Tuning {
            flags: applier_flags(10, "5s"),
            resources: Some(["100m", "128Mi", "2000m", "1Gi"]),
        },
        Size::Medium if source => Tuning {
            flags: [helm_cache(50), vec![("--concurrent", "5".into())]].concat(),
            resources: Some(["100m", "128Mi", "2000m", "1Gi"]),
        },
        Size::Large if applier => Tuning {
            flags: applier_flags(20, "5s"),
            resources: Some(["100m", "256Mi", "3000m", "3Gi"]),
        },
        Size::Large if source => Tuning {
            flags: [helm_cache(100), vec![("--concurrent", "10".into())]].concat(),
            resources: Some(["100m", "256Mi", "2000m", "2Gi"]),
        },
        Size::Medium | Size::Large => Tuning::default(),
    }
}

fn invalid(attribute: &'static str, message: String) -> FluxError {
    FluxError::InvalidOption { attribute, message }
}

pub(super) fn validate(scaling: &Scaling) -> Result<(), FluxError> {
    let positive = [
        ("scaling.concurrent", scaling.concurrent),
        ("scaling.kube_api_qps", scaling.kube_api_qps),
        ("scaling.kube_api_burst", scaling.kube_api_burst),
    ];
    for (attribute, value) in positive {
        if let Some(v) = value.filter(|v| !(1..=100_000).contains(v)) {
            return Err(invalid(
                attribute,
                format!("{v} is out of range: use a number from 1 to 100000"),
            ));
        }
    }
    if let (Some(qps), Some(burst)) = (scaling.kube_api_qps, scaling.kube_api_burst)
        && burst < qps
    {
        return Err(invalid(
            "scaling.kube_api_burst",
            format!(
                "{burst} is below kube_api_qps ({qps}): the burst must allow at least one second of queries"
            ),
        ));
    }
    if let Some(requeue) = &scaling.requeue_dependency {
        validate_interval(requeue).map_err(|_| {
            invalid(
                "scaling.requeue_dependency",
                format!("{requeue:?} is not a Go duration such as 5s or 30s"),
            )
        })?;
    }
    if let Some(cpu) = &scaling.cpu_limit
        && !is_quantity(cpu)
    {
        return Err(invalid(
            "scaling.cpu_limit",
            format!("{cpu:?} is not a CPU quantity such as 2000m or 2"),
        ));
    }
    if let Some(memory) = &scaling.memory_limit
        && !is_quantity(memory)
    {
        return Err(invalid(
            "scaling.memory_limit",
            format!("{memory:?} is not a memory quantity such as 512Mi or 2Gi"),
        ));
    }
    Ok(())
}

pub fn apply(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(scaling) = &options.scaling else {
        return Ok(());
    };
    validate(scaling)?;
    for deployment in stage
        .components
        .iter_mut()
        .filter(|o| manifest::is_deployment(o))
    {
        let component = manifest::component(deployment)
            .unwrap_or_else(|| manifest::name(deployment))
            .to_string();
        let mut tuning = scaling
            .size
            .map(|size| preset(size, &component))
            .unwrap_or_default();
        overrides(scaling, &component, &mut tuning.flags);
        if let Some(args) = manifest::args_mut(deployment) {
            for (flag, value) in &tuning.flags {
                manifest::set_flag(args, flag, value);
            }
        }
        set_resources(deployment, scaling, &component, tuning.resources);
        if scaling.in_memory_builds && component == "kustomize-controller" {
            memory_backed_tmp(deployment);
        }
    }
    Ok(())
}

fn overrides(scaling: &Scaling, component: &str, flags: &mut Vec<(&'static str, String)>) {
    let mut set = |flag: &'static str, value: String| {
        flags.retain(|(f, _)| *f != flag);
        flags.push((flag, value));
    };
    if SCALED.contains(&component) {
        if let Some(n) = scaling.concurrent {
            set("--concurrent", n.to_string());
        }
        if let Some(requeue) = &scaling.requeue_dependency {
            set("--requeue-dependency", requeue.clone());
        }
    }
    if let Some(qps) = scaling.kube_api_qps {
        set("--kube-api-qps", qps.to_string());
    }
    if let Some(burst) = scaling.kube_api_burst {
        set("--kube-api-burst", burst.to_string());
    }
}

/// Writes the preset's requests and limits, then the explicit limits on top.
fn set_resources(
    deployment: &mut Value,
    scaling: &Scaling,
    component: &str,
    preset: Option<[&str; 4]>,
) {
    let explicit = SCALED.contains(&component)
        && (scaling.cpu_limit.is_some() || scaling.memory_limit.is_some());
    if preset.is_none() && !explicit {
        return;
    }
    let Some(container) = manifest::manager_mut(deployment) else {
        return;
    };
    let resources = manifest::map_entry(container, "resources");
    if let Some([request_cpu, request_memory, limit_cpu, limit_memory]) = preset {
        resources.insert(
            "requests".into(),
            json!({ "cpu": request_cpu, "memory": request_memory }),
        );
        resources.insert(
            "limits".into(),
            json!({ "cpu": limit_cpu, "memory": limit_memory }),
        );
    }
    if !SCALED.contains(&component) {
        return;
    }
    let limits = manifest::map_entry(resources, "limits");
    if let Some(cpu) = &scaling.cpu_limit {
        limits.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &scaling.memory_limit {
        limits.insert("memory".into(), json!(memory));
    }
}

/// Makes the volume mounted at the manager's `/tmp` a memory-backed emptyDir, adding one
/// named `temp` when the distribution has none.
fn memory_backed_tmp(deployment: &mut Value) {
    let mounted = manifest::manager_mut(deployment).and_then(|container| {
        let mounts = manifest::array_entry(container, "volumeMounts");
        let existing = mounts
            .iter()
            .find(|m| m["mountPath"] == "/tmp")
            .and_then(|m| m["name"].as_str())
            .map(str::to_string);
        existing.or_else(|| {
            mounts.push(json!({ "mountPath": "/tmp", "name": "temp" }));
            Some("temp".to_string())
        })
    });
    let (Some(name), Some(spec)) = (mounted, manifest::pod_spec_mut(deployment)) else {
        return;
    };
    let volumes = manifest::array_entry(spec, "volumes");
    let volume = json!({ "name": name, "emptyDir": { "medium": "Memory" } });
    match volumes.iter_mut().find(|v| v["name"] == name.as_str()) {
        Some(existing) => *existing = volume,
        None => volumes.push(volume),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::render::render;
    use crate::flux::testutil::{deployment_args, fixture, pod_spec};

    fn scaled(scaling: Scaling) -> Vec<Value> {
        let options = RenderOptions {
            scaling: Some(scaling),
            ..RenderOptions::default()
        };
        render(&fixture(), &options).unwrap().objects
    }

    #[test]
    fn every_size_name_reads_as_a_size() {
        let read: Vec<Size> = Size::NAMES
            .iter()
            .map(|name| serde_json::from_value(json!(name)).expect(name))
            .collect();
        assert_eq!(read, [Size::Small, Size::Medium, Size::Large]);
    }

    fn sized(size: Size) -> Vec<Value> {
        scaled(Scaling {
            size: Some(size),
            ..Scaling::default()
        })
    }

    fn resources(objects: &[Value], name: &str) -> Value {
        pod_spec(objects, name)["containers"][0]["resources"].clone()
    }

    fn tail(objects: &[Value], name: &str, from: usize) -> Vec<String> {
        deployment_args(objects, name)[from..].to_vec()
    }

    #[test]
    fn small_matches_the_operator_profile() {
        let objects = sized(Size::Small);
        for name in APPLIERS {
            assert_eq!(
                tail(&objects, name, 5),
                ["--concurrent=5", "--requeue-dependency=10s"],
                "{name}"
            );
        }
        assert_eq!(
            tail(&objects, "source-controller", 7),
            [
                "--helm-cache-max-size=10",
                "--helm-cache-ttl=720m",
                "--helm-cache-purge-interval=60m"
            ]
        );
        // small sizes every controller, notification-controller included.
        for name in crate::flux::render::DEFAULT_COMPONENTS {
            assert_eq!(
                resources(&objects, name),
                json!({ "limits": { "cpu": "1000m", "memory": "512Mi" },
                        "requests": { "cpu": "100m", "memory": "64Mi" } }),
                "{name}"
            );
        }
        assert_eq!(
            deployment_args(&objects, "notification-controller").len(),
            4
        );
    }

    #[test]
    fn medium_and_large_match_the_operator_profiles() {
        let medium = sized(Size::Medium);
        assert_eq!(
            tail(&medium, "kustomize-controller", 5),
            ["--concurrent=10", "--requeue-dependency=5s"]
        );
        assert_eq!(
            tail(&medium, "source-controller", 7),
            [
                "--helm-cache-max-size=50",
                "--helm-cache-ttl=720m",
                "--helm-cache-purge-interval=60m",
                "--concurrent=5"
            ]
        );
        assert_eq!(
            resources(&medium, "helm-controller")["limits"],
            json!({ "cpu": "2000m", "memory": "1Gi" })
        );
        // medium leaves notification-controller as shipped.
        assert_eq!(
            resources(&medium, "notification-controller"),
            resources(&scaled(Scaling::default()), "notification-controller")
        );

        let large = sized(Size::Large);
        assert_eq!(
            tail(&large, "helm-controller", 5),
            ["--concurrent=20", "--requeue-dependency=5s"]
        );
        assert_eq!(
            resources(&large, "kustomize-controller"),
            json!({ "limits": { "cpu": "3000m", "memory": "3Gi" },
                    "requests": { "cpu": "100m", "memory": "256Mi" } })
        );
        assert_eq!(
            resources(&large, "source-controller")["limits"],
            json!({ "cpu": "2000m", "memory": "2Gi" })
        );
        assert_eq!(tail(&large, "source-controller", 10), ["--concurrent=10"]);
    }

    #[test]
    fn explicit_values_override_the_preset() {
        let objects = scaled(Scaling {
            size: Some(Size::Medium),
            concurrent: Some(40),
            requeue_dependency: Some("30s".into()),
            kube_api_qps: Some(100),
            kube_api_burst: Some(500),
            cpu_limit: Some("4".into()),
            memory_limit: Some("6Gi".into()),
            in_memory_builds: false,
        });
        assert_eq!(
            tail(&objects, "kustomize-controller", 5),
            [
                "--concurrent=40",
                "--requeue-dependency=30s",
                "--kube-api-qps=100",
                "--kube-api-burst=500"
            ]
        );
        assert_eq!(
            resources(&objects, "kustomize-controller"),
            json!({ "limits": { "cpu": "4", "memory": "6Gi" },
                    "requests": { "cpu": "100m", "memory": "128Mi" } })
        );
        // Only the API rate reaches controllers outside the scaled set.
        assert_eq!(
            tail(&objects, "notification-controller", 4),
            ["--kube-api-qps=100", "--kube-api-burst=500"]
        );
        assert_eq!(
            resources(&objects, "notification-controller")["limits"]["cpu"],
            json!("1000m")
        );
    }

    #[test]
    fn overrides_without_a_size_keep_the_distribution_requests() {
        let objects = scaled(Scaling {
            concurrent: Some(15),
            memory_limit: Some("2Gi".into()),
            ..Scaling::default()
        });
        assert_eq!(
            resources(&objects, "helm-controller"),
            json!({ "limits": { "cpu": "1000m", "memory": "2Gi" },
                    "requests": { "cpu": "100m", "memory": "64Mi" } })
        );
        assert_eq!(tail(&objects, "source-controller", 7), ["--concurrent=15"]);
    }

    #[test]
    fn in_memory_builds_back_kustomize_tmp_with_memory() {
        let objects = scaled(Scaling {
            in_memory_builds: true,
            ..Scaling::default()
        });
        let spec = pod_spec(&objects, "kustomize-controller");
        assert_eq!(
            spec["volumes"],
            json!([{ "name": "temp", "emptyDir": { "medium": "Memory" } }])
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([{ "mountPath": "/tmp", "name": "temp" }])
        );
        // Only kustomize-controller builds overlays.
        assert_eq!(
            pod_spec(&objects, "helm-controller")["volumes"],
            json!([{ "name": "temp", "emptyDir": {} }])
        );
    }

    #[test]
    fn bad_values_name_their_attribute() {
        let cases = [
            (
                Scaling {
                    concurrent: Some(0),
                    ..Scaling::default()
                },
                "scaling.concurrent",
            ),
            (
                Scaling {
                    kube_api_qps: Some(100),
                    kube_api_burst: Some(50),
                    ..Scaling::default()
                },
                "scaling.kube_api_burst",
            ),
            (
                Scaling {
                    requeue_dependency: Some("soon".into()),
                    ..Scaling::default()
                },
                "scaling.requeue_dependency",
            ),
            (
                Scaling {
                    cpu_limit: Some("two cores".into()),
                    ..Scaling::default()
                },
                "scaling.cpu_limit",
            ),
            (
                Scaling {
                    memory_limit: Some("1GB".into()),
                    ..Scaling::default()
                },
                "scaling.memory_limit",
            ),
        ];
        for (scaling, expected) in cases {
            let options = RenderOptions {
                scaling: Some(scaling),
                ..RenderOptions::default()
            };
            match render(&fixture(), &options) {
                Err(FluxError::InvalidOption { attribute, .. }) => {
                    assert_eq!(attribute, expected)
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
    }
}
