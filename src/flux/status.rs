//! How Flux is doing in a cluster: each controller's readiness and version, the readiness
//! and revision of the `flux-system` source and Kustomization, and the shard layout (which
//! controllers serve each shard, how many Flux objects carry its label). Read with one list
//! of Deployments, up to three gets (the source by kind, the Kustomization) and one list per
//! Flux kind.

use serde::Serialize;
use serde_json::Value as Json;

use super::objects::{count_by_label, find};
use super::render::shards::layout;
use crate::kube::{KubeClient, KubeError, ObjRef, readiness};

const SOURCE_KINDS: [(&str, &str); 2] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
];

/// What a status read finds; serialises as the `gitlabflux_flux_status` attributes.
#[derive(Serialize)]
pub struct FluxStatus {
    pub controllers: Vec<Controller>,
    pub source: Option<ObjectStatus>,
    pub kustomization: Option<ObjectStatus>,
    pub ready: bool,
    #[serde(flatten)]
    pub shards: ShardLayout,
}

#[derive(Serialize)]
pub struct Controller {
    pub name: Option<String>,
    pub ready: bool,
    pub version: Option<String>,
}

#[derive(Serialize)]
pub struct ObjectStatus {
    pub kind: Option<String>,
    pub ready: bool,
    pub message: Option<String>,
    pub revision: Option<String>,
}

#[derive(Serialize)]
pub struct ShardLayout {
    pub sharding_key: Option<String>,
    pub shards: Vec<ShardStatus>,
    pub unsharded_objects: usize,
}

#[derive(Serialize)]
pub struct ShardStatus {
    pub name: String,
    pub controllers: Vec<String>,
    pub ready: bool,
    pub objects: usize,
}

/// Readiness by the apply engine's rule, and the Ready condition's message.
fn ready(obj: &Json) -> (bool, Option<String>) {
    let message = readiness::condition(obj, "Ready")
        .and_then(|c| c["message"].as_str())
        .map(str::to_string);
    (readiness::flux(obj).is_ok(), message)
}

fn deployment_ready(d: &Json) -> bool {
    readiness::deployment(d).is_ok()
}

fn image_version(d: &Json) -> Option<String> {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .and_then(|i| i.rsplit_once(':'))
        .map(|(_, tag)| tag.to_string())
}

fn text(v: &Json) -> Option<String> {
    v.as_str().map(str::to_string)
}

impl ObjectStatus {
    fn of(o: &Json) -> Self {
        let (ready, message) = ready(o);
        Self {
            kind: text(&o["kind"]),
            ready,
            message,
            revision: text(&o["status"]["artifact"]["revision"])
                .or_else(|| text(&o["status"]["lastAppliedRevision"])),
        }
    }
}

/// Reads the status of the Flux installed in `namespace`.
pub async fn read(client: &KubeClient, namespace: &str) -> Result<FluxStatus, KubeError> {
    let deployments = client
        .list(
            "apps/v1",
            "Deployment",
            Some(namespace),
            Some("app.kubernetes.io/part-of=flux"),
        )
        .await?;
    let controllers = deployments
        .iter()
        .map(|d| Controller {
            name: text(&d["metadata"]["name"]),
            ready: deployment_ready(d),
            version: image_version(d),
        })
        .collect();
    let mut source = None;
    for (api_version, kind) in SOURCE_KINDS {
        let r = ObjRef::new(api_version, kind, Some(namespace), "flux-system");
        if let Ok(Some(found)) = client.get(&r).await {
            source = Some(found);
            break;
        }
    }
    let ks_ref = ObjRef::new(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        Some(namespace),
        "flux-system",
    );
    let kustomization = client.get(&ks_ref).await.ok().flatten();
    let all_ready = !deployments.is_empty()
        && deployments.iter().all(deployment_ready)
        && source.as_ref().is_some_and(|s| ready(s).0)
        && kustomization.as_ref().is_some_and(|k| ready(k).0);
    let shards = shard_layout(client, &deployments).await?;
    Ok(FluxStatus {
        controllers,
        source: source.as_ref().map(ObjectStatus::of),
        kustomization: kustomization.as_ref().map(ObjectStatus::of),
        ready: all_ready,
        shards,
    })
}

/// The shard layout, from one listing of Flux objects.
async fn shard_layout(client: &KubeClient, deployments: &[Json]) -> Result<ShardLayout, KubeError> {
    let found = layout(deployments);
    let objects = find(client, None).await?;
    let counts = found
        .key
        .as_deref()
        .map(|key| count_by_label(&objects, key))
        .unwrap_or_default();
    let count = |shard: Option<&str>| counts.get(&shard.map(str::to_string)).copied();
    let shards = found
        .shards
        .iter()
        .map(|(shard, controllers)| ShardStatus {
            name: shard.clone(),
            controllers: controllers.clone(),
            ready: deployments
                .iter()
                .filter(|d| {
                    controllers
                        .iter()
                        .any(|c| d["metadata"]["name"] == c.as_str())
                })
                .all(deployment_ready),
            objects: count(Some(shard)).unwrap_or(0),
        })
        .collect();
    let unsharded_objects = match found.key {
        Some(_) => count(None).unwrap_or(0),
        None => objects.len(),
    };
    Ok(ShardLayout {
        sharding_key: found.key,
        shards,
        unsharded_objects,
    })
}
