//! Data source `gitlabflux_flux_status`: how Flux is doing in a cluster: each controller's
//! readiness and version, and the readiness and revision of the `flux-system` source and
//! Kustomization, and the shard layout (which controllers serve each shard, how many Flux
//! objects each shard has).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::context::{ClusterModel, ProviderData, cluster_connection_attributes, kube};
use super::support::kube_error;
use crate::flux::objects::{count_by_label, find};
use crate::flux::render::DEFAULT_NAMESPACE;
use crate::flux::render::shards::layout;
use crate::kube::{KubeClient, ObjRef, readiness};
use crate::tfplug::{Attribute, Block, Ctx, DataSource, DiagResult, Nesting, Schema, Value};

pub struct FluxStatus;

const SOURCE_KINDS: [(&str, &str); 2] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
];

#[derive(Deserialize)]
struct Config {
    namespace: Option<String>,
    /// Carried through: [`kube`] reads the connection from the value itself.
    cluster: Option<ClusterModel>,
}

#[derive(Serialize)]
struct Status {
    namespace: String,
    cluster: Option<ClusterModel>,
    controllers: Vec<Controller>,
    source: Option<ObjectStatus>,
    kustomization: Option<ObjectStatus>,
    ready: bool,
    #[serde(flatten)]
    shards: ShardLayout,
}

#[derive(Serialize)]
struct Controller {
    name: Option<String>,
    ready: bool,
    version: Option<String>,
}

#[derive(Serialize)]
struct ObjectStatus {
    kind: Option<String>,
    ready: bool,
    message: Option<String>,
    revision: Option<String>,
}

#[derive(Serialize)]
struct ShardLayout {
    sharding_key: Option<String>,
    shards: Vec<ShardStatus>,
    unsharded_objects: usize,
}

#[derive(Serialize)]
struct ShardStatus {
    name: String,
    controllers: Vec<String>,
    ready: bool,
    objects: usize,
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

fn object_status_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("kind").computed(),
        Attribute::bool("ready").computed(),
        Attribute::string("message").computed(),
        Attribute::string("revision").computed(),
    ]
}

#[async_trait]
impl DataSource<ProviderData> for FluxStatus {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_status"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("namespace")
                    .optional()
                    .description("Flux's namespace. Default `flux-system`."),
                Attribute::object("cluster", cluster_connection_attributes()).optional(),
                Attribute::nested(
                    "controllers",
                    Nesting::List,
                    vec![
                        Attribute::string("name").computed(),
                        Attribute::bool("ready").computed(),
                        Attribute::string("version").computed(),
                    ],
                )
                .computed()
                .description("Every Flux controller Deployment in the namespace."),
                Attribute::object("source", object_status_attributes())
                    .computed()
                    .description("The `flux-system` source."),
                Attribute::object("kustomization", object_status_attributes())
                    .computed()
                    .description("The `flux-system` Kustomization."),
                Attribute::bool("ready")
                    .computed()
                    .description("All controllers and the sync are ready."),
                Attribute::string("sharding_key")
                    .computed()
                    .description("The label the controllers shard by; null without sharding."),
                Attribute::nested(
                    "shards",
                    Nesting::List,
                    vec![
                        Attribute::string("name").computed(),
                        Attribute::string_list("controllers").computed(),
                        Attribute::bool("ready").computed(),
                        Attribute::number("objects").computed(),
                    ],
                )
                .computed()
                .description("Each shard: the controllers serving it, whether they are ready, and how many Flux objects carry its label."),
                Attribute::number("unsharded_objects")
                    .computed()
                    .description("Flux objects the main controllers reconcile (no shard label)."),
            ])
            .description("Readiness and versions of Flux in a cluster."),
        )
    }

    async fn read(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Value> {
        let client = kube(ctx, config).await?;
        let Config { namespace, cluster } = config.decode()?;
        let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let deployments = client
            .list(
                "apps/v1",
                "Deployment",
                Some(&namespace),
                Some("app.kubernetes.io/part-of=flux"),
            )
            .await
            .map_err(kube_error)?;
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
            let r = ObjRef::new(api_version, kind, Some(&namespace), "flux-system");
            if let Ok(Some(found)) = client.get(&r).await {
                source = Some(found);
                break;
            }
        }
        let ks_ref = ObjRef::new(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            Some(&namespace),
            "flux-system",
        );
        let kustomization = client.get(&ks_ref).await.ok().flatten();
        let all_ready = !deployments.is_empty()
            && deployments.iter().all(deployment_ready)
            && source.as_ref().is_some_and(|s| ready(s).0)
            && kustomization.as_ref().is_some_and(|k| ready(k).0);
        let shards = shard_layout(&client, &deployments).await?;
        Value::encode(&Status {
            namespace,
            cluster,
            controllers,
            source: source.as_ref().map(ObjectStatus::of),
            kustomization: kustomization.as_ref().map(ObjectStatus::of),
            ready: all_ready,
            shards,
        })
    }
}

/// The shard layout, from one listing of Flux objects.
async fn shard_layout(client: &KubeClient, deployments: &[Json]) -> DiagResult<ShardLayout> {
    let found = layout(deployments);
    let objects = find(client, None).await.map_err(kube_error)?;
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
