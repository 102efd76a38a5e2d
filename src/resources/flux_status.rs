//! Data source `gitlabflux_flux_status`: how Flux is doing in a cluster: each controller's
//! readiness and version, and the readiness and revision of the `flux-system` source and
//! Kustomization.

use async_trait::async_trait;
use serde_json::Value as Json;

use super::support::{kube, kube_error, obj, opt, string};
use crate::kube::ObjRef;
use crate::provider::{ProviderData, cluster_connection_attributes};
use crate::tfplug::{Attribute, Block, Ctx, DataSource, DiagResult, Nesting, Schema, Value};

pub struct FluxStatus;

const SOURCE_KINDS: [(&str, &str); 2] = [
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"),
];

fn ready(obj: &Json) -> (bool, Option<String>) {
    let condition = obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    (
        condition.is_some_and(|c| c["status"] == "True"),
        condition
            .and_then(|c| c["message"].as_str())
            .map(str::to_string),
    )
}

fn deployment_ready(d: &Json) -> bool {
    d["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True")
    }) && d["status"]["observedGeneration"] == d["metadata"]["generation"]
}

fn image_version(d: &Json) -> Option<String> {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .and_then(|i| i.rsplit_once(':'))
        .map(|(_, tag)| tag.to_string())
}

fn object_status(o: Option<&Json>) -> Value {
    match o {
        None => Value::Null,
        Some(o) => {
            let (is_ready, message) = ready(o);
            obj([
                ("kind", opt(o["kind"].as_str())),
                ("ready", is_ready.into()),
                ("message", opt(message)),
                (
                    "revision",
                    opt(o["status"]["artifact"]["revision"]
                        .as_str()
                        .or_else(|| o["status"]["lastAppliedRevision"].as_str())),
                ),
            ])
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
            ])
            .description("Readiness and versions of Flux in a cluster."),
        )
    }

    async fn read(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Value> {
        let client = kube(ctx, config).await?;
        let namespace = string(config, "namespace").unwrap_or_else(|| "flux-system".into());
        let deployments = client
            .list(
                "apps/v1",
                "Deployment",
                Some(&namespace),
                Some("app.kubernetes.io/part-of=flux"),
            )
            .await
            .map_err(kube_error)?;
        let controllers: Vec<Value> = deployments
            .iter()
            .map(|d| {
                obj([
                    ("name", opt(d["metadata"]["name"].as_str())),
                    ("ready", deployment_ready(d).into()),
                    ("version", opt(image_version(d))),
                ])
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
        let mut state = config.clone();
        if let Value::Object(fields) = &mut state {
            fields.insert("namespace".into(), namespace.as_str().into());
            fields.insert(
                "controllers".into(),
                if controllers.is_empty() {
                    Value::List(Vec::new())
                } else {
                    Value::List(controllers)
                },
            );
            fields.insert("source".into(), object_status(source.as_ref()));
            fields.insert(
                "kustomization".into(),
                object_status(kustomization.as_ref()),
            );
            fields.insert("ready".into(), all_ready.into());
        }
        Ok(state)
    }
}
