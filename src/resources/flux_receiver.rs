//! `gitlabflux_flux_receiver`: a Flux `generic-oidc` Receiver that GitLab CI jobs call with
//! their ID tokens to have Flux reconcile now, with no shared secret. The claim rules are
//! typed attributes; [`crate::flux::receiver`] turns them into CEL validations.
//! Import ID: `<namespace>/<name>` of the Receiver (`@<cluster_name>` after it in one of the
//! provider's `clusters`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_identity_attribute, cluster_name_attribute, connection_known, import_target, kube,
    kube_client, on_cluster,
};
use super::flux_inputs::flux_error;
use super::support::{
    ADOPT_EXISTING, Model, adopt_error, duration_validator, engine_error, kube_error, lifecycle,
    split_import_id, with_defaults,
};
use crate::flux::receiver::{
    self, ClaimRules, DEFAULT_AUDIENCE, RECEIVER_API, Receiver, Target, supports_oidc, webhook_path,
};
use crate::kube::engine::{Lifecycle, Observed, inventory_id, observe};
use crate::kube::{KubeClient, KubeError, ObjRef};
use crate::tfplug::{
    ApplyRequest, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, IdentityAttribute,
    IdentitySchema, Nesting, NewState, PlanContext, Resource, Schema, Value,
};

pub struct FluxReceiver;

const FLUX_NAMESPACE: &str = "flux-system";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TargetModel {
    kind: String,
    name: String,
    namespace: Option<String>,
}

/// What the receiver is: the attributes [`receiver::render`] reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ReceiverSpec {
    name: String,
    namespace: String,
    /// Planned as the provider's GitLab URL when unset.
    issuer_url: Option<String>,
    audience: String,
    projects: Vec<String>,
    refs: Option<Vec<String>>,
    protected_only: bool,
    environments: Option<Vec<String>>,
    resources: Vec<TargetModel>,
}

/// The receiver's lifecycle settings and results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ReceiverOwn {
    wait: bool,
    timeout: String,
    adopt_existing: bool,
    /// Carried through: [`kube`] reads the connection from the value itself.
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    webhook_path: Option<String>,
    in_sync: Option<bool>,
}

type State = Model<ReceiverSpec, ReceiverOwn>;

impl ReceiverSpec {
    fn receiver(&self) -> Receiver {
        Receiver {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            issuer_url: self.issuer_url.clone().unwrap_or_default(),
            audience: self.audience.clone(),
            rules: ClaimRules {
                projects: self.projects.clone(),
                refs: self.refs.clone().unwrap_or_default(),
                protected_only: self.protected_only,
                environments: self.environments.clone().unwrap_or_default(),
            },
            resources: self
                .resources
                .iter()
                .map(|t| Target {
                    kind: t.kind.clone(),
                    name: t.name.clone(),
                    namespace: t.namespace.clone(),
                })
                .collect(),
        }
    }

    /// The attributes of a receiver read back from the cluster.
    fn of(receiver: &Receiver) -> Self {
        let list = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
        Self {
            name: receiver.name.clone(),
            namespace: receiver.namespace.clone(),
            issuer_url: Some(receiver.issuer_url.clone()),
            audience: receiver.audience.clone(),
            projects: receiver.rules.projects.clone(),
            refs: list(&receiver.rules.refs),
            protected_only: receiver.rules.protected_only,
            environments: list(&receiver.rules.environments),
            resources: receiver
                .resources
                .iter()
                .map(|t| TargetModel {
                    kind: t.kind.clone(),
                    name: t.name.clone(),
                    namespace: t.namespace.clone(),
                })
                .collect(),
        }
    }

    fn objects(&self) -> DiagResult<Vec<serde_json::Value>> {
        Ok(vec![
            receiver::render(&self.receiver()).map_err(flux_error)?,
        ])
    }
}

impl ReceiverOwn {
    fn lifecycle(&self) -> Lifecycle {
        // The receiver lives in a namespace it does not own: teardown never deletes one.
        lifecycle(self.wait, &self.timeout, true).adopting(self.adopt_existing)
    }
}

/// Refuses a cluster whose Flux has no `generic-oidc` receivers. At plan, a cluster without
/// Flux yet (its bootstrap may come in the same apply) or whose CRDs these credentials may
/// not read passes: the apply checks again.
async fn require_oidc_receivers(client: &KubeClient, plan_time: bool) -> DiagResult<()> {
    let supported = match supports_oidc(client).await {
        Err(KubeError::Forbidden { .. }) if plan_time => return Ok(()),
        found => found.map_err(kube_error)?,
    };
    let why = match supported {
        Some(true) => return Ok(()),
        None if plan_time => return Ok(()),
        None => "Flux is not installed in this cluster: it has no Receiver CRD.",
        Some(false) => {
            "This cluster's Flux predates generic-oidc receivers: its Receiver CRD does not \
             list the type."
        }
    };
    Err(Diagnostic::error(
        "Flux cannot serve this receiver",
        format!(
            "{why} generic-oidc receivers come with notification-controller v1.9, in Flux \
             2.9. Upgrade the cluster's Flux to v2.9.4 or later first (an upgrade in the same \
             configuration: apply it with -target on the bootstrap, then the receiver)."
        ),
    )
    .into())
}

impl FluxReceiver {
    async fn apply(
        &self,
        ctx: &Ctx<ProviderData>,
        planned: &Value,
        create: bool,
    ) -> DiagResult<NewState> {
        let mut state = State::decode(planned)?;
        let objects = state.inputs.objects()?;
        let client = kube(ctx, planned).await?;
        require_oidc_receivers(&client, false).await?;
        let lifecycle = state.own.lifecycle();
        if create {
            lifecycle
                .claim(&client, &objects)
                .await
                .map_err(adopt_error)?;
        }
        // One object, whose name and namespace force replacement: nothing to prune.
        lifecycle
            .apply(&client, &objects, &[])
            .await
            .map_err(engine_error)?;
        state.own.webhook_path = Some(webhook_path(&state.inputs.name, &state.inputs.namespace));
        state.own.in_sync = Some(true);
        NewState::encode(&state)
    }
}

fn attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("name")
            .required()
            .requires_replace()
            .description("Receiver name. With the namespace it makes the webhook path."),
        Attribute::string("namespace")
            .default(FLUX_NAMESPACE)
            .requires_replace()
            .description("Namespace of the Receiver. Under multi-tenancy lockdown it reconciles objects of its own namespace only."),
        Attribute::string("issuer_url")
            .optional()
            .computed()
            .description("OIDC issuer whose ID tokens are accepted: the GitLab URL exactly as the tokens' `iss` claim spells it. Default: the provider's `gitlab.base_url`."),
        Attribute::string("audience")
            .default(DEFAULT_AUDIENCE)
            .description("The `aud` the CI job's `id_tokens:` entry asks for."),
        Attribute::string_list("projects")
            .required()
            .description("Projects whose pipelines may trigger the receiver, as the `project_path` claim carries them (`group/subgroup/project`). At least one: GitLab issues ID tokens to every project on the instance."),
        Attribute::string_list("refs")
            .optional()
            .description("Branches (`main`) or full refs (`refs/tags/v1.2.0`) whose pipelines may trigger it, matched against the `ref_path` claim so a tag cannot pass for a branch of the same name. Default: any."),
        Attribute::bool("protected_only")
            .default(true)
            .description("Accept only pipelines on protected branches or tags (`ref_protected`)."),
        Attribute::string_list("environments")
            .optional()
            .description("Accept only jobs that deploy to one of these environments (the `environment` claim, present only for such jobs). Default: any job."),
        Attribute::nested(
            "resources",
            Nesting::List,
            vec![
                Attribute::string("kind").required().description("A kind the Receiver reconciles, such as `OCIRepository`, `GitRepository` or `Kustomization`."),
                Attribute::string("name").required().description("Object name, or `*` for every object of the kind in the namespace."),
                Attribute::string("namespace").optional().description("Default: the receiver's namespace."),
            ],
        )
        .required()
        .description("The Flux objects a verified call asks to reconcile (`reconcile.fluxcd.io/requestedAt`)."),
        Attribute::bool("wait").default(true).description("Wait until the Receiver is Ready."),
        Attribute::string("timeout")
            .default("2m")
            .validator(duration_validator)
            .description("Bound for the wait and for teardown."),
        Attribute::bool("adopt_existing").default(false).description(ADOPT_EXISTING),
        Attribute::object("cluster", cluster_connection_attributes())
            .optional()
            .description("Cluster of the receiver, overriding the provider's `kubernetes`."),
        cluster_name_attribute(),
        Attribute::string("webhook_path")
            .computed()
            .description("Path notification-controller serves the receiver at (`/hook/<sha256 of name and namespace>`): append it to the URL that exposes Flux's `webhook-receiver` Service."),
        Attribute::bool("in_sync").computed().description("Whether the cluster's Receiver matches this resource."),
    ]
}

#[async_trait]
impl Resource<ProviderData> for FluxReceiver {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_receiver"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("namespace", &["namespace"])
                    .description("Namespace of the Receiver."),
                IdentityAttribute::string("name", &["name"]).description("Receiver name."),
                cluster_identity_attribute(),
            ],
            import_id: |parts| match parts {
                [namespace, name, cluster] => on_cluster(format!("{namespace}/{name}"), cluster),
                _ => parts.join("/"),
            },
        })
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(attributes()).description(
                "A Flux Receiver of type `generic-oidc` (Flux 2.9+) that GitLab CI jobs call with \
                 their ID token to have Flux reconcile now: no shared secret, and only the \
                 projects, refs and environments named here get through.",
            ),
        )
    }

    async fn validate(&self, _ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        if config.is_wholly_known() {
            let mut spec = with_defaults(&self.schema(), config).decode::<ReceiverSpec>()?;
            // The default issuer is the provider's, not known here.
            spec.issuer_url
                .get_or_insert_with(|| "https://gitlab.example".into());
            spec.objects()?;
        }
        Ok(())
    }

    async fn modify_plan(&self, ctx: &Ctx<ProviderData>, plan: &mut PlanContext) -> DiagResult<()> {
        #[derive(Serialize, Deserialize)]
        struct Naming {
            name: Option<String>,
            namespace: Option<String>,
            issuer_url: Option<String>,
            webhook_path: Option<String>,
        }
        let configured: Naming = plan.config.decode()?;
        let mut naming: Naming = plan.planned.decode()?;
        // While the provider's GitLab is not known, neither is the default issuer.
        let provider_gitlab = ctx.provider()?.gitlab.as_ref();
        if configured.issuer_url.is_none()
            && plan.config.knows(&["issuer_url"])
            && let Some(gitlab) = provider_gitlab
        {
            naming.issuer_url = Some(gitlab.base_url().trim_end_matches('/').to_string());
        }
        if let (Some(name), Some(namespace)) = (&naming.name, &naming.namespace) {
            naming.webhook_path = Some(webhook_path(name, namespace));
        }
        plan.set_planned_part(&naming)?;
        // Results such as `in_sync` are unknown on a create; the inputs are what must be.
        if !plan.config.is_wholly_known() {
            return Ok(());
        }
        let mut state = State::decode(&plan.planned)?;
        state.inputs.objects()?;
        if plan.knows(&["cluster", "cluster_name"])
            && connection_known(ctx, state.own.cluster_name.as_deref())
        {
            require_oidc_receivers(&kube(ctx, &plan.planned).await?, true).await?;
        }
        if !plan.is_create() {
            // Drift found by read is repaired by planning the cluster back in sync.
            state.own.in_sync = Some(true);
            plan.set_planned(&state)?;
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned, true).await
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned, false).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let mut state = State::decode(&current.state)?;
        let objects = state.inputs.objects()?;
        let client = kube(ctx, &current.state).await?;
        state.own.in_sync = match observe(&client, &objects).await.map_err(engine_error)? {
            Observed::Gone => return Ok(None),
            found => Some(found == Observed::InSync),
        };
        Ok(Some(NewState::encode(&state)?))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let state = State::decode(&prior.state)?;
        let client = kube(ctx, &prior.state).await?;
        let applied: Vec<String> = state
            .inputs
            .objects()?
            .iter()
            .filter_map(inventory_id)
            .collect();
        state
            .own
            .lifecycle()
            .teardown(&client, &applied)
            .await
            .map_err(engine_error)
    }

    /// The lifecycle settings take the schema's defaults, filled in by the server.
    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        #[derive(Serialize)]
        struct Found<'a> {
            cluster_name: Option<&'a str>,
            webhook_path: String,
            in_sync: bool,
        }
        let (id, cluster_name) = import_target(id);
        let (namespace, name) = split_import_id(
            id,
            '/',
            "<namespace>/<name>[@<cluster_name>]",
            "flux-system/gitlab-ci",
        )?;
        let client = kube_client(ctx, ClusterChoice::named(cluster_name)).await?;
        let object = ObjRef::new(RECEIVER_API, "Receiver", Some(namespace), name);
        let live = client
            .get(&object)
            .await
            .map_err(kube_error)?
            .ok_or_else(|| {
                Diagnostics::from(Diagnostic::error(
                    "Receiver not found",
                    format!("There is no Receiver {name} in namespace {namespace}."),
                ))
            })?;
        let found = receiver::observe(&live).map_err(|why| {
            Diagnostics::from(Diagnostic::error(
                "Not a receiver this provider manages",
                format!(
                    "Receiver {namespace}/{name} cannot be imported: {why}. Only generic-oidc \
                     receivers with one OIDC provider and the claim rules this resource writes \
                     can be; delete it and let this resource create it instead."
                ),
            ))
        })?;
        NewState::encode(&Model {
            inputs: ReceiverSpec::of(&found),
            own: Found {
                cluster_name,
                webhook_path: webhook_path(name, namespace),
                in_sync: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::support::{round_trip, test_state};

    #[test]
    fn the_model_round_trips_through_the_schema_and_reads_back_as_itself() {
        let schema = FluxReceiver.schema();
        let state = test_state(
            &schema,
            json!({
                "name": "gitlab-ci",
                "issuer_url": "https://gitlab.example.com",
                "projects": ["fleet/gitops"],
                "refs": ["main"],
                "resources": [{ "kind": "OCIRepository", "name": "apps" }],
                "webhook_path": "/hook/x",
                "in_sync": true,
            }),
        );
        let model = round_trip(&schema, &state, State::decode);
        let receiver = model.inputs.receiver();
        assert_eq!(receiver.namespace, "flux-system");
        assert!(receiver.rules.protected_only);
        assert_eq!(ReceiverSpec::of(&receiver), model.inputs);
    }
}
