//! The `gitlabflux_reconcile` action (Terraform 1.14+): ask Flux to reconcile objects now, the
//! way `flux reconcile` does, and report each object as it handles the request and is Ready.
//! Run with `terraform apply -invoke=action.gitlabflux_reconcile.<name>` or from a resource's
//! `action_trigger`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_name_attribute, kube_client,
};
use super::support::{
    dns_label_validator, duration_validator, object_name_validator, parse_duration,
};
use crate::flux::reconcile::{self, ReconcileError, api_version_of};
use crate::kube::ObjRef;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    Action, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, Nesting,
    Progress, Schema, Value,
};

pub struct ReconcileAction;

/// The kinds Flux reconciles on request.
const KINDS: [&str; 7] = [
    "GitRepository",
    "OCIRepository",
    "HelmRepository",
    "Bucket",
    "HelmChart",
    "Kustomization",
    "HelmRelease",
];
const DEFAULT_TIMEOUT: &str = "5m";

#[derive(Deserialize)]
struct ObjectModel {
    kind: String,
    namespace: Option<String>,
    name: String,
}

#[derive(Deserialize)]
struct Config {
    objects: Vec<ObjectModel>,
    timeout: Option<String>,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
}

impl Config {
    fn objects(&self) -> Vec<ObjRef> {
        self.objects
            .iter()
            .filter_map(|o| {
                let api_version = api_version_of(&o.kind)?;
                let namespace = o.namespace.as_deref().unwrap_or("flux-system");
                Some(ObjRef::new(api_version, &o.kind, Some(namespace), &o.name))
            })
            .collect()
    }

    fn timeout(&self) -> Duration {
        let text = self.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT);
        parse_duration(text).unwrap_or(Duration::from_secs(300))
    }
}

/// A reconcile failure, on the object it names when it names one.
fn reconcile_error(e: ReconcileError) -> Diagnostics {
    let d = Diagnostic::error(e.summary(), e.detail());
    match e {
        ReconcileError::Missing { index, .. } => d
            .at(AttrPath::root().attr("objects").index(index as i64))
            .into(),
        _ => d.into(),
    }
}

#[async_trait]
impl Action<ProviderData> for ReconcileAction {
    fn type_name(&self) -> &'static str {
        "gitlabflux_reconcile"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::nested(
                    "objects",
                    Nesting::List,
                    vec![
                        Attribute::string("kind")
                            .required()
                            .validator(validators::one_of(&KINDS))
                            .description("A Flux kind that reconciles on request."),
                        Attribute::string("namespace")
                            .optional()
                            .validator(dns_label_validator)
                            .description("Default: `flux-system`."),
                        Attribute::string("name")
                            .required()
                            .validator(object_name_validator),
                    ],
                )
                .required()
                .description("The Flux objects to reconcile, in order."),
                Attribute::string("timeout")
                    .optional()
                    .validator(duration_validator)
                    .description("How long to wait for every object to be done. Default: `5m`."),
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster of the objects, overriding the provider's `kubernetes`."),
                cluster_name_attribute(),
            ])
            .description(
                "Asks Flux to reconcile objects now (`reconcile.fluxcd.io/requestedAt`, as \
                 `flux reconcile` does) and reports each one as it handles that request and is \
                 Ready; fails naming the objects still pending when `timeout` passes.",
            ),
        )
    }

    async fn invoke(
        &self,
        ctx: &Ctx<ProviderData>,
        config: &Value,
        progress: &Progress,
    ) -> DiagResult<()> {
        let config: Config = config.decode()?;
        let client = kube_client(
            ctx,
            ClusterChoice::of(&config.cluster, &config.cluster_name),
        )
        .await?;
        let objects = config.objects();
        let request = reconcile::request(&client, &objects)
            .await
            .map_err(reconcile_error)?;
        progress.report(format!(
            "Requested a reconcile of {} objects at {}",
            objects.len(),
            request.requested_at
        ));
        let done = |object: &ObjRef| progress.report(format!("{object} reconciled and Ready"));
        reconcile::wait_reporting(&client, &request, config.timeout(), ctx.cancelled(), &done)
            .await
            .map_err(reconcile_error)?;
        progress.report(format!("All {} objects reconciled", objects.len()));
        Ok(())
    }
}
