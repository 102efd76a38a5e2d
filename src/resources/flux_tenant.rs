//! `gitlabflux_flux_tenant`: a tenant of a multi-tenant Flux: namespaces, a reconciler
//! service account with admin rights in those namespaces only, and a source + Kustomization
//! that sync the tenant's repository as that account, optionally on a shard.
//! Import ID: `<namespace>/<name>` of the tenant's Kustomization.

use async_trait::async_trait;

use super::context::{ProviderData, cluster_connection_attributes, kube};
use super::flux_bootstrap::flux_error;
use super::flux_inputs::{source_attributes, source_spec};
use super::support::{
    boolean, duration_validator, engine_error, engine_options, engine_timeout, kube_error, obj,
    object, opt, set, split_import_id, string, strings,
};
use crate::flux::render::shards::{DEFAULT_KEY, layout};
use crate::flux::tenant::{self, DEFAULT_CLUSTER_ROLE, LiveTenant, TENANT_LABEL, Tenant};
use crate::flux::{FluxError, Ref, SyncKind};
use crate::kube::engine::{apply_and_prune, drift, inventory_id, teardown};
use crate::kube::{KubeClient, ObjRef};
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, NewState,
    PlanContext, Resource, Schema, Value,
};

pub struct FluxTenant;

const DEFAULT_INTERVAL: &str = "5m";
const FLUX_NAMESPACE: &str = "flux-system";

/// A Flux error as a diagnostic on the tenant attribute that caused it: the tenant's source
/// and interval are top-level attributes; the rest maps as for the bootstrap.
fn tenant_error(e: FluxError) -> Diagnostics {
    let path = match &e {
        FluxError::InvalidSync { .. } => AttrPath::root().attr("source"),
        FluxError::InvalidInterval { .. } => AttrPath::root().attr("interval"),
        _ => return flux_error(e),
    };
    Diagnostic::error(e.summary(), e.detail()).at(path).into()
}

/// Maps the configuration (or state) onto the tenant model.
fn tenant_from(config: &Value) -> DiagResult<Tenant> {
    let mut diags = Diagnostics::new();
    let source = object(config, "source").and_then(|s| source_spec(s, "source", &mut diags));
    diags.into_result()?;
    let mut source = source.ok_or_else(|| {
        Diagnostics::from(
            Diagnostic::error("Missing source", "The tenant needs a source to sync from.")
                .at(AttrPath::root().attr("source")),
        )
    })?;
    source.path = string(config, "path").unwrap_or_else(|| "./".into());
    source.interval = string(config, "interval").unwrap_or_else(|| DEFAULT_INTERVAL.into());
    let name = string(config, "name").unwrap_or_default();
    Ok(Tenant {
        service_account: string(config, "service_account").unwrap_or_else(|| name.clone()),
        name,
        namespaces: strings(config, "namespaces"),
        cluster_role: string(config, "cluster_role").unwrap_or_else(|| DEFAULT_CLUSTER_ROLE.into()),
        source,
        prune: boolean(config, "prune").unwrap_or(true),
        shard: string(config, "shard"),
        sharding_key: string(config, "sharding_key").unwrap_or_else(|| DEFAULT_KEY.into()),
        flux_namespace: string(config, "flux_namespace").unwrap_or_else(|| FLUX_NAMESPACE.into()),
    })
}

fn rendered(state: &Value) -> DiagResult<Vec<serde_json::Value>> {
    tenant::render(&tenant_from(state)?).map_err(tenant_error)
}

/// Warns when no controller in the Flux namespace watches the tenant's shard: its objects
/// would never be reconciled.
async fn warn_unserved_shard(ctx: &Ctx<ProviderData>, client: &KubeClient, tenant: &Tenant) {
    let Some(shard) = &tenant.shard else { return };
    let Ok(deployments) = client
        .list("apps/v1", "Deployment", Some(&tenant.flux_namespace), None)
        .await
    else {
        return;
    };
    if !layout(&deployments).shards.contains_key(shard) {
        ctx.warn(
            Diagnostic::warning(
                "Shard not served",
                format!(
                    "No Flux controller in namespace {} watches shard {shard:?}, so this tenant's \
                     objects wait until one does. Add the shard to the bootstrap's sharding.shards.",
                    tenant.flux_namespace
                ),
            )
            .at(AttrPath::root().attr("shard")),
        );
    }
}

impl FluxTenant {
    async fn apply(
        &self,
        ctx: &Ctx<ProviderData>,
        planned: &Value,
        prior: &Value,
    ) -> DiagResult<NewState> {
        let tenant = tenant_from(planned)?;
        let objects = tenant::render(&tenant).map_err(tenant_error)?;
        let client = kube(ctx, planned).await?;
        warn_unserved_shard(ctx, &client, &tenant).await;
        let previous = strings(prior, "inventory");
        let inventory = apply_and_prune(&client, &objects, &previous, &engine_options(planned))
            .await
            .map_err(engine_error)?;
        let mut state = planned.clone();
        set(&mut state, "inventory", ids(&inventory));
        set(&mut state, "in_sync", true.into());
        Ok(NewState::new(state))
    }
}

fn ids(inventory: &[String]) -> Value {
    Value::List(inventory.iter().map(|s| Value::from(s.as_str())).collect())
}

fn attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("name")
            .required()
            .requires_replace()
            .description("Tenant name: names its source, Kustomization and RoleBindings, and labels its objects."),
        Attribute::string_list("namespaces").required().description(
            "The tenant's namespaces. The first holds the service account, the source and the \
             Kustomization; the tenant is admin of these and nothing else.",
        ),
        Attribute::string("service_account")
            .optional()
            .computed()
            .description("Reconciler service account the Kustomization runs as. Default: `name`."),
        Attribute::string("cluster_role")
            .default(DEFAULT_CLUSTER_ROLE)
            .description("ClusterRole bound in each namespace through a RoleBinding (so it grants only there), as `flux create tenant --cluster-role`."),
        Attribute::object("source", source_attributes())
            .required()
            .description("Where the tenant's manifests come from (a GitRepository or OCIRepository named after the tenant)."),
        Attribute::string("path").default("./").description("Path in the source."),
        Attribute::string("interval").default(DEFAULT_INTERVAL).description("Reconcile interval of the source and the Kustomization."),
        Attribute::bool("prune").default(true).description("Garbage-collect what leaves the tenant's manifests."),
        Attribute::string("shard").optional().description(
            "Shard whose controllers reconcile this tenant: its source and Kustomization get the \
             sharding label. Place tenants with `provider::gitlabflux::shard_for(name, shards)`.",
        ),
        Attribute::string("sharding_key")
            .default(DEFAULT_KEY)
            .description("The bootstrap's `sharding.key`."),
        Attribute::string("flux_namespace")
            .default(FLUX_NAMESPACE)
            .description("Flux's namespace, which no tenant may use."),
        Attribute::bool("wait").default(true).description("Wait for the tenant's source and Kustomization to be ready."),
        Attribute::string("timeout")
            .default("5m")
            .validator(duration_validator)
            .description("Bound for apply waits and teardown."),
        Attribute::bool("keep_namespaces").default(false).description("Keep the namespaces on destroy."),
        Attribute::object("cluster", cluster_connection_attributes())
            .optional()
            .description("Cluster of the tenant, overriding the provider's `kubernetes`."),
        Attribute::string_list("inventory").computed().description("Every object applied, as apiVersion/kind/namespace/name."),
        Attribute::bool("in_sync").computed().description("Whether the cluster matches the tenant."),
    ]
}

#[async_trait]
impl Resource<ProviderData> for FluxTenant {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_tenant"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(attributes()).description(
                "A Flux tenant: namespaces, a reconciler service account that is admin there and \
                 nowhere else, and the source and Kustomization syncing its repository, optionally \
                 on a shard. Works under the bootstrap's multi-tenancy lockdown.",
            ),
        )
    }

    async fn validate(&self, _ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        if config.is_wholly_known() {
            rendered(config)?;
        }
        Ok(())
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        if string(&plan.config, "service_account").is_none()
            && let Some(name) = plan.planned.get_attr("name").filter(|n| n.is_known())
        {
            let name = name.clone();
            set(&mut plan.planned, "service_account", name);
        }
        if plan.is_create() || !plan.planned.is_wholly_known() {
            return Ok(());
        }
        set(&mut plan.planned, "in_sync", true.into());
        if rendered(&plan.prior).ok() == rendered(&plan.planned).ok() {
            let prior = plan
                .prior
                .get_attr("inventory")
                .cloned()
                .unwrap_or(Value::Null);
            set(&mut plan.planned, "inventory", prior);
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned, &Value::Null).await
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned, &req.prior).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let state = current.state;
        let objects = rendered(&state)?;
        let client = kube(ctx, &state).await?;
        let drifted = drift(&client, &objects).await.map_err(engine_error)?;
        if drifted.len() == objects.len() {
            return Ok(None);
        }
        let mut new = state.clone();
        set(&mut new, "in_sync", drifted.is_empty().into());
        Ok(Some(NewState::new(new)))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let state = &prior.state;
        let client = kube(ctx, state).await?;
        let keep = boolean(state, "keep_namespaces").unwrap_or(false);
        teardown(
            &client,
            &strings(state, "inventory"),
            keep,
            engine_timeout(state),
        )
        .await
        .map_err(engine_error)
    }

    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (namespace, name) = split_import_id(id, '/', "<namespace>/<name>", "team-a/team-a")?;
        let client = kube(ctx, &Value::Null).await?;
        let live = live_tenant(&client, namespace, name).await?;
        let tenant = tenant::observe(&live, DEFAULT_KEY, FLUX_NAMESPACE).ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Not a tenant",
                format!(
                    "Kustomization {namespace}/{name} has no GitRepository or OCIRepository \
                     source in its namespace, so it was not made as a tenant."
                ),
            ))
        })?;
        let objects = tenant::render(&tenant).map_err(tenant_error)?;
        let inventory: Vec<String> = objects.iter().filter_map(inventory_id).collect();
        let mut state = tenant_state(&tenant);
        set(&mut state, "inventory", ids(&inventory));
        Ok(NewState::new(state))
    }
}

/// Reads the objects a tenant is reconstructed from.
async fn live_tenant(client: &KubeClient, namespace: &str, name: &str) -> DiagResult<LiveTenant> {
    let ks_ref = ObjRef::new(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        Some(namespace),
        name,
    );
    let kustomization = client
        .get(&ks_ref)
        .await
        .map_err(kube_error)?
        .ok_or_else(|| {
            Diagnostics::from(Diagnostic::error(
                "Tenant not found",
                format!("There is no Kustomization {name} in namespace {namespace}."),
            ))
        })?;
    let source_kind = kustomization["spec"]["sourceRef"]["kind"]
        .as_str()
        .unwrap_or("GitRepository")
        .to_string();
    let source_name = kustomization["spec"]["sourceRef"]["name"]
        .as_str()
        .unwrap_or(name)
        .to_string();
    let source_ref = ObjRef::new(
        "source.toolkit.fluxcd.io/v1",
        &source_kind,
        Some(namespace),
        &source_name,
    );
    let source = client.get(&source_ref).await.map_err(kube_error)?;
    let selector = format!("{TENANT_LABEL}={name}");
    let namespaces = client
        .list("v1", "Namespace", None, Some(&selector))
        .await
        .map_err(kube_error)?
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let binding_ref = ObjRef::new(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        Some(namespace),
        format!("{name}-reconciler"),
    );
    let role_binding = client.get(&binding_ref).await.map_err(kube_error)?;
    Ok(LiveTenant {
        kustomization,
        source,
        namespaces,
        role_binding,
    })
}

/// A full state for `tenant`, with the lifecycle settings at their defaults.
fn tenant_state(tenant: &Tenant) -> Value {
    let source = &tenant.source;
    // The default reference (branch `main`, tag `latest`) is what an omitted `ref` means.
    let is_default = matches!(
        (&source.kind, &source.reference),
        (SyncKind::GitRepository, Ref::Branch(b)) if b == "main"
    ) || matches!(
        (&source.kind, &source.reference),
        (SyncKind::OciRepository, Ref::Tag(t)) if t == "latest"
    );
    let reference = |field: &str| -> Value {
        let value = match (&source.reference, field) {
            (Ref::Branch(v), "branch")
            | (Ref::Tag(v), "tag")
            | (Ref::Semver(v), "semver")
            | (Ref::Digest(v), "digest") => Some(v.as_str()),
            _ => None,
        };
        opt(value)
    };
    let verify = source.verify.as_ref().map_or(Value::Null, |v| {
        obj([
            ("provider", v.provider.as_str().into()),
            ("secret_name", v.secret_name.as_str().into()),
        ])
    });
    obj([
        ("name", tenant.name.as_str().into()),
        (
            "namespaces",
            Value::List(
                tenant
                    .namespaces
                    .iter()
                    .map(|n| n.as_str().into())
                    .collect(),
            ),
        ),
        ("service_account", tenant.service_account.as_str().into()),
        ("cluster_role", tenant.cluster_role.as_str().into()),
        (
            "source",
            obj([
                ("kind", source.kind.as_str().into()),
                ("url", source.url.as_str().into()),
                (
                    "ref",
                    if is_default {
                        Value::Null
                    } else {
                        obj([
                            ("branch", reference("branch")),
                            ("tag", reference("tag")),
                            ("semver", reference("semver")),
                            ("digest", reference("digest")),
                        ])
                    },
                ),
                ("secret_name", opt(source.secret_name.as_deref())),
                ("verify", verify),
            ]),
        ),
        ("path", source.path.as_str().into()),
        ("interval", source.interval.as_str().into()),
        ("prune", tenant.prune.into()),
        ("shard", opt(tenant.shard.as_deref())),
        ("sharding_key", tenant.sharding_key.as_str().into()),
        ("flux_namespace", tenant.flux_namespace.as_str().into()),
        ("wait", true.into()),
        ("timeout", "5m".into()),
        ("keep_namespaces", false.into()),
        ("cluster", Value::Null),
        ("inventory", Value::Null),
        ("in_sync", true.into()),
    ])
}
