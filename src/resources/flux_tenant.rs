//! `gitlabflux_flux_tenant`: a tenant of a multi-tenant Flux: namespaces, a reconciler
//! service account with admin rights in those namespaces only, and a source + Kustomization
//! that sync the tenant's repository as that account, optionally on a shard.
//! Import ID: `<namespace>/<name>` of the tenant's Kustomization (`@<cluster_name>` after it
//! in one of the provider's `clusters`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_identity_attribute, cluster_name_attribute, import_target, kube, kube_client,
    on_cluster,
};
use super::flux_inputs::{
    CredentialsPlace, SourceModel, configured_source, credentials_in_place, flux_error,
    namespace_object, release_replaced_credentials, remove_credentials, source_attributes,
};
use super::support::{
    ADOPT_EXISTING, Model, RECONCILE_ON_CHANGE, adopt_error, duration_validator, engine_error,
    kube_error, lifecycle, reconcile_applied, split_import_id, with_defaults,
};
use crate::flux::FluxError;
use crate::flux::credentials::deliver;
use crate::flux::objects::{live_tenant, served_shards};
use crate::flux::render::shards::DEFAULT_KEY;
use crate::flux::tenant::{self, DEFAULT_CLUSTER_ROLE, Tenant};
use crate::kube::KubeClient;
use crate::kube::engine::{Lifecycle, Observed, inventory_id, observe};
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics,
    IdentityAttribute, IdentitySchema, NewState, PlanContext, Resource, Schema, Value,
};

pub struct FluxTenant;

const DEFAULT_INTERVAL: &str = "5m";
const FLUX_NAMESPACE: &str = "flux-system";

/// What the tenant is: the attributes [`tenant::render`] reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TenantSpec {
    name: String,
    namespaces: Vec<String>,
    /// Planned as `name` when unset; only the configuration being validated lacks it.
    service_account: Option<String>,
    cluster_role: String,
    source: SourceModel,
    path: String,
    interval: String,
    prune: bool,
    shard: Option<String>,
    sharding_key: String,
    flux_namespace: String,
}

/// The tenant's lifecycle settings and results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TenantOwn {
    wait: bool,
    reconcile_on_change: bool,
    timeout: String,
    keep_namespaces: bool,
    adopt_existing: bool,
    /// Carried through: [`kube`] reads the connection from the value itself.
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    inventory: Option<Vec<String>>,
    in_sync: Option<bool>,
}

type State = Model<TenantSpec, TenantOwn>;

impl TenantSpec {
    fn tenant(&self) -> DiagResult<Tenant> {
        let source = self.source.with_secret_default(&self.name).spec(
            "source",
            &self.path,
            &self.interval,
        )?;
        Ok(Tenant {
            name: self.name.clone(),
            namespaces: self.namespaces.clone(),
            service_account: self
                .service_account
                .clone()
                .unwrap_or_else(|| self.name.clone()),
            cluster_role: self.cluster_role.clone(),
            source,
            prune: self.prune,
            shard: self.shard.clone(),
            sharding_key: self.sharding_key.clone(),
            flux_namespace: self.flux_namespace.clone(),
        })
    }

    /// The attributes of a tenant read back from the cluster.
    fn of(tenant: &Tenant) -> Self {
        Self {
            name: tenant.name.clone(),
            namespaces: tenant.namespaces.clone(),
            service_account: Some(tenant.service_account.clone()),
            cluster_role: tenant.cluster_role.clone(),
            source: SourceModel::of(&tenant.source),
            path: tenant.source.path.clone(),
            interval: tenant.source.interval.clone(),
            prune: tenant.prune,
            shard: tenant.shard.clone(),
            sharding_key: tenant.sharding_key.clone(),
            flux_namespace: tenant.flux_namespace.clone(),
        }
    }

    fn objects(&self) -> DiagResult<Vec<serde_json::Value>> {
        tenant::render(&self.tenant()?).map_err(tenant_error)
    }
}

impl TenantOwn {
    fn lifecycle(&self) -> Lifecycle {
        lifecycle(self.wait, &self.timeout, self.keep_namespaces).adopting(self.adopt_existing)
    }
}

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

/// The objects a plan or state renders, `None` when it does not render.
fn rendered(value: &Value) -> Option<Vec<serde_json::Value>> {
    value.decode::<TenantSpec>().ok()?.objects().ok()
}

/// Warns when no controller in the Flux namespace watches the tenant's shard: its objects
/// would never be reconciled. A failed lookup is no reason to fail the apply.
async fn warn_unserved_shard(ctx: &Ctx<ProviderData>, client: &KubeClient, tenant: &Tenant) {
    let Some(shard) = &tenant.shard else { return };
    let Ok(served) = served_shards(client, &tenant.flux_namespace).await else {
        return;
    };
    if !served.contains(shard) {
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
    /// Applies the planned tenant, pruning what `previous` (the prior inventory) held
    /// beyond it.
    async fn apply(
        &self,
        ctx: &Ctx<ProviderData>,
        req: &ApplyRequest,
        previous: &[String],
    ) -> DiagResult<NewState> {
        let started = std::time::Instant::now();
        let planned = &req.planned;
        let mut state = State::decode(planned)?;
        let tenant = state.inputs.tenant()?;
        let objects = tenant::render(&tenant).map_err(tenant_error)?;
        let client = kube(ctx, planned).await?;
        warn_unserved_shard(ctx, &client, &tenant).await;
        let lifecycle = state.own.lifecycle();
        if previous.is_empty() {
            lifecycle
                .claim(&client, &objects)
                .await
                .map_err(adopt_error)?;
        }
        let configured = configured_source(&self.schema(), &req.config)?;
        let credentials = match &configured {
            Some(source) => source.credentials("source")?,
            None => None,
        };
        if let (Some(credentials), Some(secret)) =
            (credentials, tenant.source.secret_name.as_deref())
        {
            let namespace = tenant.primary_namespace();
            deliver(
                &client,
                namespace_object(&objects, namespace),
                namespace,
                secret,
                &credentials,
            )
            .await
            .map_err(kube_error)?;
        }
        let inventory = lifecycle
            .apply(&client, &objects, previous)
            .await
            .map_err(engine_error)?;
        let own = &state.own;
        if own.reconcile_on_change {
            reconcile_applied(ctx, &client, &objects, own.wait, &own.timeout, started).await?;
        }
        state.own.inventory = Some(inventory);
        state.own.in_sync = Some(true);
        NewState::encode(&state)
    }
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
        Attribute::bool("reconcile_on_change").default(true).description(RECONCILE_ON_CHANGE),
        Attribute::string("timeout")
            .default("5m")
            .validator(duration_validator)
            .description("Bound for apply waits and teardown."),
        Attribute::bool("keep_namespaces").default(false).description("Keep the namespaces on destroy."),
        Attribute::bool("adopt_existing").default(false).description(ADOPT_EXISTING),
        Attribute::object("cluster", cluster_connection_attributes())
            .optional()
            .description("Cluster of the tenant, overriding the provider's `kubernetes`."),
        cluster_name_attribute(),
        Attribute::string_list("inventory").computed().description("Every object applied, as apiVersion/kind/namespace/name."),
        Attribute::bool("in_sync").computed().description("Whether the cluster matches the tenant."),
    ]
}

#[async_trait]
impl Resource<ProviderData> for FluxTenant {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_tenant"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("namespace", &["namespaces", "0"])
                    .description("The tenant's first namespace, which holds its Kustomization."),
                IdentityAttribute::string("name", &["name"]).description("Tenant name."),
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
                "A Flux tenant: namespaces, a reconciler service account that is admin there and \
                 nowhere else, and the source and Kustomization syncing its repository, optionally \
                 on a shard. Works under the bootstrap's multi-tenancy lockdown.",
            ),
        )
    }

    async fn validate(&self, _ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        if config.is_wholly_known() {
            let spec = with_defaults(&self.schema(), config).decode::<TenantSpec>()?;
            spec.objects()?;
            spec.source.credentials("source")?;
        }
        Ok(())
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        /// The account and what names it; the rest of the plan may not be known yet.
        #[derive(Serialize, Deserialize)]
        struct Naming {
            name: Option<String>,
            service_account: Option<String>,
        }
        // An unknown account decodes as absent too, but Terraform requires the plan to keep
        // a configured value, unknown or not: only a null one takes the name.
        let configured: Naming = plan.config.decode()?;
        if configured.service_account.is_none()
            && plan.config.knows(&["service_account"])
            && let Some(name) = plan.planned.decode::<Naming>()?.name
        {
            plan.set_planned_part(&Naming {
                service_account: Some(name.clone()),
                name: Some(name),
            })?;
        }
        if plan.is_create() || !plan.planned.is_wholly_known() {
            return Ok(());
        }
        let mut state = State::decode(&plan.planned)?;
        state.own.in_sync = Some(true);
        if rendered(&plan.prior) == rendered(&plan.planned) {
            state.own.inventory = plan.prior.decode::<TenantOwn>()?.inventory;
        }
        plan.set_planned(&state)
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req, &[]).await
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let prior: TenantOwn = req.prior.decode()?;
        let previous = prior.inventory.unwrap_or_default();
        let applied = self.apply(ctx, &req, &previous).await?;
        let (was, now): (TenantSpec, TenantSpec) = (req.prior.decode()?, req.planned.decode()?);
        let (was_tenant, now_tenant) = (was.tenant()?, now.tenant()?);
        let client = kube(ctx, &req.planned).await?;
        release_replaced_credentials(
            &client,
            CredentialsPlace {
                source: &was.source,
                spec: &was_tenant.source,
                namespace: was_tenant.primary_namespace(),
            },
            Some(CredentialsPlace {
                source: &now.source,
                spec: &now_tenant.source,
                namespace: now_tenant.primary_namespace(),
            }),
        )
        .await?;
        Ok(applied)
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
        if state.own.in_sync == Some(true) {
            let tenant = state.inputs.tenant()?;
            state.own.in_sync = Some(
                credentials_in_place(
                    &client,
                    &state.inputs.source,
                    &tenant.source,
                    tenant.primary_namespace(),
                )
                .await?,
            );
        }
        Ok(Some(NewState::encode(&state)?))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let own: TenantOwn = prior.state.decode()?;
        let client = kube(ctx, &prior.state).await?;
        let spec: TenantSpec = prior.state.decode()?;
        let tenant = spec.tenant()?;
        remove_credentials(
            &client,
            &spec.source,
            &tenant.source,
            tenant.primary_namespace(),
        )
        .await?;
        own.lifecycle()
            .teardown(&client, own.inventory.as_deref().unwrap_or_default())
            .await
            .map_err(engine_error)
    }

    /// The lifecycle settings take the schema's defaults, filled in by the server.
    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        #[derive(Serialize)]
        struct Found<'a> {
            cluster_name: Option<&'a str>,
            inventory: Vec<String>,
            in_sync: bool,
        }
        let (id, cluster_name) = import_target(id);
        let (namespace, name) = split_import_id(
            id,
            '/',
            "<namespace>/<name>[@<cluster_name>]",
            "team-a/team-a",
        )?;
        let client = kube_client(ctx, ClusterChoice::named(cluster_name)).await?;
        let live = live_tenant(&client, namespace, name)
            .await
            .map_err(kube_error)?
            .ok_or_else(|| {
                Diagnostics::from(Diagnostic::error(
                    "Tenant not found",
                    format!("There is no Kustomization {name} in namespace {namespace}."),
                ))
            })?;
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
        NewState::encode(&Model {
            inputs: TenantSpec::of(&tenant),
            own: Found {
                cluster_name,
                inventory: objects.iter().filter_map(inventory_id).collect(),
                in_sync: true,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flux::Ref;
    use crate::resources::support::{round_trip, test_state};

    #[test]
    fn the_model_round_trips_through_the_schema() {
        let schema = FluxTenant.schema();
        let state = test_state(
            &schema,
            json!({
                "name": "team-a",
                "namespaces": ["team-a", "team-a-apps"],
                "service_account": "team-a",
                "source": { "url": "https://gitlab.example.com/a.git", "ref": { "tag": "v1" } },
                "shard": "s1",
                "inventory": ["v1/Namespace/_/team-a"],
                "in_sync": false,
            }),
        );
        let model = round_trip(&schema, &state, State::decode);
        let tenant = model.inputs.tenant().expect("tenant");
        assert_eq!(tenant.source.reference, Ref::Tag("v1".into()));
        assert_eq!(tenant.source.interval, "5m");
        assert!(tenant.prune);
    }

    #[test]
    fn a_tenant_read_back_gives_the_attributes_it_was_made_from() {
        let schema = FluxTenant.schema();
        for source in [
            json!({ "url": "https://gitlab.example.com/a.git" }),
            json!({ "url": "https://gitlab.example.com/a.git", "ref": { "branch": "dev" } }),
            json!({ "kind": "OCIRepository", "url": "oci://r/a", "verify": { "secret_name": "k" } }),
        ] {
            let state = test_state(
                &schema,
                json!({ "name": "a", "namespaces": ["a"], "service_account": "a", "source": source }),
            );
            let spec: TenantSpec = state.decode().expect("decodes");
            let tenant = spec.tenant().expect("tenant");
            assert_eq!(TenantSpec::of(&tenant), spec, "{source}");
        }
    }

    /// The plan of a create whose proposed state is `config`.
    fn create_plan(config: Value) -> PlanContext {
        PlanContext {
            prior: Value::Null,
            config: config.clone(),
            planned: config,
            requires_replace: Vec::new(),
            prior_private: Vec::new(),
            planned_private: Vec::new(),
        }
    }

    async fn modify(plan: &mut PlanContext) {
        let ctx = Ctx::new(None, tokio_util::sync::CancellationToken::new());
        FluxTenant.modify_plan(&ctx, plan).await.expect("planned");
    }

    #[tokio::test]
    async fn the_service_account_is_planned_while_other_attributes_are_unknown() {
        let schema = FluxTenant.schema();
        let config = test_state(&schema, json!({ "name": "a", "source": { "url": "u" } }));
        let mut plan = create_plan(config);
        plan.mark_unknown(&["namespaces", "service_account", "in_sync"]);
        modify(&mut plan).await;
        #[derive(Deserialize)]
        struct Naming {
            service_account: Option<String>,
        }
        let naming: Naming = plan.planned.decode().expect("decodes");
        assert_eq!(naming.service_account.as_deref(), Some("a"));
        assert!(!plan.knows(&["namespaces"]), "still unknown");
    }

    #[tokio::test]
    async fn a_configured_account_still_unknown_stays_unknown() {
        let schema = FluxTenant.schema();
        let mut config = test_state(&schema, json!({ "name": "a", "source": { "url": "u" } }));
        if let Value::Object(fields) = &mut config {
            fields.insert("service_account".into(), Value::unknown());
        }
        let mut plan = create_plan(config);
        modify(&mut plan).await;
        // Terraform refuses a plan that replaces a configured value, even an unknown one.
        assert!(!plan.knows(&["service_account"]));
    }
}
