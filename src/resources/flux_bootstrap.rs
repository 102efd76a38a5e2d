//! `gitlabflux_flux_bootstrap`: Flux in a cluster, rendered from a distribution with the
//! multi-tenancy lockdown and sync settings, applied server-side, optionally committed to a
//! GitLab repository in one commit. Read re-renders and compares with the cluster, so deleted
//! or edited objects plan a repair. Import ID: the namespace
//! (`@<cluster_name>` after it in one of the provider's `clusters`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_identity_attribute, cluster_name_attribute, connection_known, gitlab, import_target,
    kube, kube_client, on_cluster,
};
use super::flux_inputs::{
    CredentialsPlace, FluxInputs, ShardingModel, configured_source, credentials_in_place,
    flux_error, inputs_known, namespace_object, release_replaced_credentials, remove_credentials,
    render_attributes,
};
use super::support::{
    ADOPT_EXISTING, Model, RECONCILE_ON_CHANGE, adopt_error, duration_validator, engine_error,
    kube_error, lifecycle, reconcile_applied, with_defaults,
};
use crate::flux::commit::{CommitTarget, check_target, commit_files};
use crate::flux::credentials::deliver;
use crate::flux::objects::{runs_flux, shard_users};
use crate::flux::render::shards::DEFAULT_KEY;
use crate::flux::upgrade::{
    DROPPED_IN_2_9, is_2_9_or_later, stored_in_dropped_version, substituting_kustomizations,
};
use crate::flux::{FluxError, Rendered, validate_options};
use crate::gitlab::{GitlabError, Missing};
use crate::kube::KubeClient;
use crate::kube::engine::{Lifecycle, Observed, observe, parse_inventory_id, read_ahead};
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics,
    IdentityAttribute, IdentitySchema, NewState, PlanContext, Resource, Schema, Value,
};

pub struct FluxBootstrap;

/// The bootstrap's attributes beyond the render inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Bootstrap {
    git_commit: Option<GitCommit>,
    wait: bool,
    reconcile_on_change: bool,
    keep_namespace: bool,
    adopt_existing: bool,
    timeout: String,
    /// Carried through: [`kube`] reads the connection from the value itself.
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    inventory: Option<Vec<String>>,
    manifests_sha256: Option<String>,
    applied_version: Option<String>,
    in_sync: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GitCommit {
    project: String,
    branch: Option<String>,
    path: String,
    author_name: Option<String>,
    author_email: Option<String>,
    keep_files: bool,
}

type State = Model<FluxInputs, Bootstrap>;

impl Bootstrap {
    fn lifecycle(&self) -> Lifecycle {
        lifecycle(self.wait, &self.timeout, self.keep_namespace).adopting(self.adopt_existing)
    }
}

/// Loads and renders at plan time (the cache makes the apply's second load free), so a
/// mismatched pin, a bad artifact or a bad option fails `plan` in CI rather than the apply.
/// A source that cannot be reached is only a warning here: another resource may create it
/// during the apply, or only the apply's runner may reach it. Returns the Flux version
/// rendered, when there was a render.
async fn check_renders(ctx: &Ctx<ProviderData>, inputs: &FluxInputs) -> DiagResult<Option<String>> {
    match inputs.load(ctx).await? {
        Ok(_) => inputs.render(ctx).await.map(|(_, version)| version),
        Err(e @ (FluxError::Unreachable { .. } | FluxError::Io { .. })) => {
            ctx.warn(
                Diagnostic::warning(
                    "Flux distribution not checked at plan",
                    format!(
                        "{} The apply loads it again and fails if it is still out of reach.",
                        e.detail()
                    ),
                )
                .at(AttrPath::root().attr("distribution").attr("source")),
            );
            Ok(None)
        }
        Err(e) => Err(flux_error(e)),
    }
}

impl GitCommit {
    fn target(&self) -> CommitTarget<'_> {
        CommitTarget {
            project: &self.project,
            branch: self.branch.as_deref(),
            path: &self.path,
            author_name: self.author_name.as_deref(),
            author_email: self.author_email.as_deref(),
        }
    }
}

/// A `git_commit` failure, on the attribute at fault.
fn git_commit_error(e: GitlabError) -> Diagnostics {
    let attr = match &e {
        GitlabError::NotFound {
            what: Missing::Branch { .. },
            ..
        } => "branch",
        _ => "project",
    };
    Diagnostic::error(e.summary(), e.detail())
        .at(AttrPath::root().attr("git_commit").attr(attr))
        .into()
}

/// Checks that `git_commit` can be carried out before the cluster is touched.
async fn check_git(ctx: &Ctx<ProviderData>, git: Option<&GitCommit>) -> DiagResult<()> {
    match git {
        Some(git) => check_target(gitlab(ctx)?, &git.target())
            .await
            .map_err(git_commit_error),
        None => Ok(()),
    }
}

/// Commits (or deletes, with `rendered: None`) the rendered files when `git_commit` is set.
async fn sync_git(
    ctx: &Ctx<ProviderData>,
    git: Option<&GitCommit>,
    rendered: Option<&Rendered>,
    version: Option<&str>,
) -> DiagResult<()> {
    let Some(git) = git else {
        return Ok(());
    };
    commit_files(gitlab(ctx)?, &git.target(), rendered, version)
        .await
        .map_err(git_commit_error)
}

impl FluxBootstrap {
    /// Writes the Git credentials the configuration hands over write-only into the sync's
    /// Secret, before the source that reads them is applied.
    async fn deliver_credentials(
        &self,
        client: &KubeClient,
        inputs: &FluxInputs,
        objects: &[serde_json::Value],
        config: &Value,
    ) -> DiagResult<()> {
        let Some(configured) = configured_source(&self.schema(), config)? else {
            return Ok(());
        };
        let (Some(credentials), Some(sync)) = (configured.credentials("sync")?, &inputs.sync)
        else {
            return Ok(());
        };
        let Some(secret) = sync.spec()?.secret_name else {
            return Ok(());
        };
        let namespace = &inputs.namespace;
        deliver(
            client,
            namespace_object(objects, namespace),
            namespace,
            &secret,
            &credentials,
        )
        .await
        .map_err(kube_error)
    }

    /// Applies the planned bootstrap, pruning what `previous` (the prior inventory) held
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
        let (rendered, version) = state.inputs.render(ctx).await?;
        check_git(ctx, state.own.git_commit.as_ref()).await?;
        let client = kube(ctx, planned).await?;
        let own = &mut state.own;
        let lifecycle = own.lifecycle();
        if previous.is_empty() {
            lifecycle
                .claim(&client, &rendered.objects)
                .await
                .map_err(adopt_error)?;
        }
        self.deliver_credentials(&client, &state.inputs, &rendered.objects, &req.config)
            .await?;
        let inventory = lifecycle
            .apply(&client, &rendered.objects, previous)
            .await
            .map_err(engine_error)?;
        sync_git(
            ctx,
            own.git_commit.as_ref(),
            Some(&rendered),
            version.as_deref(),
        )
        .await?;
        if own.reconcile_on_change {
            reconcile_applied(
                ctx,
                &client,
                &rendered.objects,
                own.wait,
                &own.timeout,
                started,
            )
            .await?;
        }
        own.inventory = Some(inventory);
        own.manifests_sha256 = Some(rendered.sha256);
        own.applied_version = version;
        own.in_sync = Some(true);
        NewState::encode(&state)
    }
}

#[async_trait]
impl Resource<ProviderData> for FluxBootstrap {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_bootstrap"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("namespace", &["namespace"])
                    .description("The namespace Flux runs in."),
                cluster_identity_attribute(),
            ],
            import_id: |parts| match parts {
                [namespace, cluster] => on_cluster(namespace.clone(), cluster),
                _ => parts.concat(),
            },
        })
    }

    fn schema(&self) -> Schema {
        let mut attributes = render_attributes();
        attributes.extend([
            Attribute::object(
                "git_commit",
                vec![
                    Attribute::string("project").required().description("Project full path or ID."),
                    Attribute::string("branch").optional().description("Default: the project's default branch."),
                    Attribute::string("path")
                        .default("clusters/default/flux-system")
                        .description("Directory for gotk-components.yaml, gotk-sync.yaml and kustomization.yaml."),
                    Attribute::string("author_name").optional(),
                    Attribute::string("author_email").optional(),
                    Attribute::bool("keep_files").default(false).description("Keep the files on destroy."),
                ],
            )
            .optional()
            .description("Commit the bootstrap manifests to a GitLab repository (one commit, only when they change)."),
            Attribute::bool("wait").default(true).description("Wait for controllers and the sync to be ready."),
            Attribute::bool("reconcile_on_change").default(true).description(RECONCILE_ON_CHANGE),
            Attribute::bool("keep_namespace").default(false).description("Keep the namespace on destroy."),
            Attribute::bool("adopt_existing").default(false).description(ADOPT_EXISTING),
            Attribute::string("timeout")
                .default("5m")
                .validator(duration_validator)
                .description("Bound for apply waits and teardown."),
            Attribute::object("cluster", cluster_connection_attributes())
                .optional()
                .description("Cluster to bootstrap, overriding the provider's `kubernetes`."),
            cluster_name_attribute(),
            Attribute::string_list("inventory").computed().description("Every object applied, as apiVersion/kind/namespace/name."),
            Attribute::string("manifests_sha256").computed().description("SHA-256 of the rendered files."),
            Attribute::string("applied_version").computed(),
            Attribute::bool("in_sync").computed().description("Whether the cluster matches the rendered manifests."),
        ]);
        Schema::new(0, Block::new(attributes).description(
            "Flux bootstrapped into a cluster, locked down for multi-tenancy, syncing from a GitLab \
             repository or a signed OCI artifact, without an operator in the cluster.",
        ))
    }

    async fn validate(&self, _ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<()> {
        if config.is_wholly_known() {
            let inputs: FluxInputs = with_defaults(&self.schema(), config).decode()?;
            validate_options(&inputs.render_options()?).map_err(flux_error)?;
            if let Some(sync) = &inputs.sync {
                sync.source.credentials("sync")?;
            }
        }
        Ok(())
    }

    async fn modify_plan(&self, ctx: &Ctx<ProviderData>, plan: &mut PlanContext) -> DiagResult<()> {
        if !plan.is_create()
            && plan.knows(&["sharding", "cluster", "cluster_name"])
            && connection_known(ctx, planned_cluster_name(&plan.planned).as_deref())
        {
            refuse_removing_used_shards(ctx, &plan.prior, &plan.planned).await?;
        }
        let planned = if inputs_known(plan) {
            Some(plan.planned.decode::<FluxInputs>()?)
        } else {
            None
        };
        let unchanged = match &planned {
            Some(planned) if !plan.is_create() => results_carry_over(&plan.prior, planned)?,
            _ => false,
        };
        if let Some(inputs) = &planned
            && !unchanged
        {
            let version = check_renders(ctx, inputs).await?;
            if !plan.is_create()
                && version.as_deref().is_some_and(is_2_9_or_later)
                && plan.knows(&["cluster", "cluster_name"])
                && connection_known(ctx, planned_cluster_name(&plan.planned).as_deref())
            {
                check_upgrade_to_2_9(ctx, &plan.prior, &plan.planned).await?;
            }
        }
        if plan.is_create() || !plan.planned.is_wholly_known() {
            return Ok(());
        }
        let mut state = State::decode(&plan.planned)?;
        // Drift found by read is repaired by planning the cluster back in sync.
        state.own.in_sync = Some(true);
        // Same inputs render the same objects: the results carry over instead of showing as
        // "known after apply" on every drift repair or lifecycle-setting change.
        if unchanged {
            let prior: Bootstrap = plan.prior.decode()?;
            state.own.inventory = prior.inventory;
            state.own.manifests_sha256 = prior.manifests_sha256;
            state.own.applied_version = prior.applied_version;
        }
        plan.set_planned(&state)
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req, &[]).await
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let prior: Bootstrap = req.prior.decode()?;
        let previous = prior.inventory.unwrap_or_default();
        let applied = self.apply(ctx, &req, &previous).await?;
        release_replaced_sync_credentials(ctx, &req).await?;
        Ok(applied)
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let mut state = State::decode(&current.state)?;
        let client = kube(ctx, &current.state).await?;
        // The lists first, the render after them: the render is then compared as soon as it
        // exists, instead of waiting on the network beside the render of every other
        // bootstrap refreshing at the time.
        let applied = state.own.inventory.iter().flatten();
        read_ahead(&client, applied.filter_map(|id| parse_inventory_id(id)))
            .await
            .map_err(engine_error)?;
        // Just imported: the state knows only the namespace, and its other inputs are the
        // schema's defaults, not what runs. The plan against the configuration re-applies it.
        if state.own.inventory.is_none() {
            return Ok(Some(NewState::encode(&state)?));
        }
        match state.inputs.render_objects(ctx).await {
            Ok(objects) => {
                state.own.in_sync = match observe(&client, &objects).await.map_err(engine_error)? {
                    Observed::Gone => return Ok(None),
                    found => Some(found == Observed::InSync),
                };
                if state.own.in_sync == Some(true)
                    && let Some(sync) = &state.inputs.sync
                {
                    let spec = sync.spec()?;
                    let namespace = &state.inputs.namespace;
                    state.own.in_sync =
                        Some(credentials_in_place(&client, &sync.source, &spec, namespace).await?);
                }
            }
            Err(d) => {
                ctx.warn(Diagnostic::warning(
                    "Flux drift not checked",
                    format!("The distribution could not be rendered during refresh: {d}"),
                ));
            }
        }
        Ok(Some(NewState::encode(&state)?))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let own: Bootstrap = prior.state.decode()?;
        let client = kube(ctx, &prior.state).await?;
        let inputs: FluxInputs = prior.state.decode()?;
        if let Some(sync) = &inputs.sync {
            let spec = sync.spec()?;
            remove_credentials(&client, &sync.source, &spec, &inputs.namespace).await?;
        }
        own.lifecycle()
            .teardown(&client, own.inventory.as_deref().unwrap_or_default())
            .await
            .map_err(engine_error)?;
        if !own.git_commit.as_ref().is_some_and(|g| g.keep_files) {
            sync_git(ctx, own.git_commit.as_ref(), None, None).await?;
        }
        Ok(())
    }

    /// What no live object tells takes the schema's defaults, filled in by the server.
    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        #[derive(Serialize)]
        struct Imported<'a> {
            namespace: &'a str,
            cluster_name: Option<&'a str>,
            in_sync: bool,
        }
        let (namespace, cluster_name) = import_target(id);
        if namespace.is_empty() {
            return Err(Diagnostic::error(
                "Invalid import ID",
                "Import by namespace, e.g. flux-system (flux-system@prod-eu in one of the \
                 provider's clusters).",
            )
            .into());
        }
        let client = kube_client(ctx, ClusterChoice::named(cluster_name)).await?;
        if !runs_flux(&client, namespace).await.map_err(kube_error)? {
            return Err(Diagnostic::error(
                "Flux not found",
                format!(
                    "Flux does not run in namespace {namespace} (it has no source-controller); \
                     check the namespace and the cluster of the import."
                ),
            )
            .into());
        }
        NewState::encode(&Imported {
            namespace,
            cluster_name,
            in_sync: true,
        })
    }
}

/// After an update, the credentials written for the prior `sync` that the planned one no
/// longer keeps in the same Secret are taken away (see [`release_replaced_credentials`]).
async fn release_replaced_sync_credentials(
    ctx: &Ctx<ProviderData>,
    req: &ApplyRequest,
) -> DiagResult<()> {
    let (was, now): (FluxInputs, FluxInputs) = (req.prior.decode()?, req.planned.decode()?);
    let Some(was_sync) = &was.sync else {
        return Ok(());
    };
    let was_spec = was_sync.spec()?;
    let now_spec = now.sync.as_ref().map(|s| s.spec()).transpose()?;
    let prior = CredentialsPlace {
        source: &was_sync.source,
        spec: &was_spec,
        namespace: &was.namespace,
    };
    let planned = now
        .sync
        .as_ref()
        .zip(now_spec.as_ref())
        .map(|(sync, spec)| CredentialsPlace {
            source: &sync.source,
            spec,
            namespace: &now.namespace,
        });
    let client = kube(ctx, &req.planned).await?;
    release_replaced_credentials(&client, prior, planned).await
}

/// Whether `prior`'s results (inventory, digest, version) stand for `planned`: the same
/// inputs render the same objects. Not for a just-imported prior (no inventory): of what
/// runs only the namespace is known, so the configuration is applied once, whatever it
/// says, and that apply records what it applied.
fn results_carry_over(prior: &Value, planned: &FluxInputs) -> DiagResult<bool> {
    let just_imported = prior.decode::<Bootstrap>()?.inventory.is_none();
    Ok(!just_imported && *planned == prior.decode::<FluxInputs>()?)
}

/// Just the sharding of a plan or state: the rest may not be known yet.
#[derive(Deserialize)]
struct Sharded {
    sharding: Option<ShardingModel>,
}

/// The prior sharding key and the shards `planned` drops (all of them when the key changes
/// or sharding goes).
fn removed_shards(prior: &Sharded, planned: &Sharded) -> (String, Vec<String>) {
    let Some(before) = &prior.sharding else {
        return (DEFAULT_KEY.into(), Vec::new());
    };
    let kept = planned
        .sharding
        .as_ref()
        .filter(|after| after.key == before.key)
        .map(|after| after.shards.clone())
        .unwrap_or_default();
    let removed = before
        .shards
        .iter()
        .filter(|shard| !kept.contains(shard))
        .cloned()
        .collect();
    (before.key.clone(), removed)
}

/// The planned `cluster_name`, once known.
fn planned_cluster_name(planned: &Value) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        cluster_name: Option<String>,
    }
    planned.decode::<Named>().ok().and_then(|n| n.cluster_name)
}

/// Removing a shard whose label Flux objects still carry would leave them unreconciled (no
/// controller selects them any more), so the plan stops until they have moved. Only for a
/// plan that knows its sharding and cluster.
async fn refuse_removing_used_shards(
    ctx: &Ctx<ProviderData>,
    prior: &Value,
    planned: &Value,
) -> DiagResult<()> {
    let (key, removed) = removed_shards(&prior.decode()?, &planned.decode()?);
    if removed.is_empty() {
        return Ok(());
    }
    let client = kube(ctx, planned).await?;
    let users = shard_users(&client, &key, &removed)
        .await
        .map_err(kube_error)?;
    let mut diags = Diagnostics::new();
    for (shard, named) in &users {
        const SHOWN: usize = 10;
        let mut listed = named
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if named.len() > SHOWN {
            listed.push_str(&format!(" and {} more", named.len() - SHOWN));
        }
        diags.error_at(
            AttrPath::root().attr("sharding").attr("shards"),
            format!("Shard {shard} is still in use"),
            format!(
                "{} Flux object(s) carry {key}={shard}: {listed}. Without the shard's \
                 controllers nothing would reconcile them. Move them to a remaining shard first \
                 (for tenants: place them with shard_for over the shards you keep, and apply), \
                 then remove the shard from sharding.shards.",
                named.len()
            ),
        );
    }
    diags.into_result()
}

/// What an upgrade to Flux 2.9 meets, told at plan: a warning naming the Kustomizations strict
/// post-build substitution may fail, and an error while notification objects are still
/// stored as `v1beta2` (the API server would refuse the new CRDs halfway through the apply).
async fn check_upgrade_to_2_9(
    ctx: &Ctx<ProviderData>,
    prior: &Value,
    planned: &Value,
) -> DiagResult<()> {
    let applied: Bootstrap = prior.decode()?;
    if applied
        .applied_version
        .as_deref()
        .is_some_and(is_2_9_or_later)
    {
        return Ok(());
    }
    let client = kube(ctx, planned).await?;
    let substituting = substituting_kustomizations(&client)
        .await
        .map_err(kube_error)?;
    if !substituting.is_empty() {
        ctx.warn(
            Diagnostic::warning(
                "Post-build substitution turns strict with Flux 2.9",
                format!(
                    "kustomize-controller 2.9 fails a Kustomization whose post-build variable \
                     has neither a value nor a default (`${{var}}` instead of \
                     `${{var:=default}}`), where 2.8 left it empty. These Kustomizations \
                     substitute variables: {}. Check that every variable their manifests use \
                     is set or has a default before the upgrade reaches them.",
                    substituting.join(", ")
                ),
            )
            .at(AttrPath::root().attr("distribution")),
        );
    }
    let stored = stored_in_dropped_version(&client)
        .await
        .map_err(kube_error)?;
    if stored.is_empty() {
        return Ok(());
    }
    Err(Diagnostic::error(
        format!("Notification objects are still stored as {DROPPED_IN_2_9}"),
        format!(
            "Flux 2.9 no longer serves notification.toolkit.fluxcd.io/{DROPPED_IN_2_9}, and this \
             cluster still stores objects in it (status.storedVersions of {}). The API server \
             would refuse the new CRDs and leave the upgrade half-applied. Migrate first: \
             `flux migrate` rewrites the stored objects to the versions Flux serves (Alert and \
             Provider v1beta3, Receiver v1), and `flux migrate -f <path>` (Flux CLI 2.9.4 or \
             later) the manifests kept in Git; then plan again.",
            stored.join(", ")
        ),
    )
    .at(AttrPath::root().attr("distribution"))
    .into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flux::{Ref, Storage, SyncKind};
    use crate::resources::support::{round_trip, test_state};
    use crate::tfplug::plan::validate_config;

    #[test]
    fn results_carry_over_only_from_an_applied_prior_of_the_same_inputs() {
        let schema = FluxBootstrap.schema();
        let state = |extra: serde_json::Value| {
            let mut json = json!({ "distribution": { "source": "file:///flux/install.yaml" } });
            if let (Some(json), Some(extra)) = (json.as_object_mut(), extra.as_object()) {
                json.extend(extra.clone());
            }
            test_state(&schema, json)
        };
        let applied = state(json!({ "inventory": ["v1/Namespace/_/flux-system"] }));
        let planned: FluxInputs = state(json!({})).decode().expect("inputs");
        assert!(results_carry_over(&applied, &planned).expect("decodes"));
        // Just imported: the same inputs, but nothing recorded of what runs.
        let imported = state(json!({}));
        assert!(!results_carry_over(&imported, &planned).expect("decodes"));
        let other: FluxInputs = state(json!({ "multitenancy": { "enabled": true } }))
            .decode()
            .expect("inputs");
        assert!(!results_carry_over(&applied, &other).expect("decodes"));
    }

    #[test]
    fn the_model_round_trips_through_the_schema() {
        let schema = FluxBootstrap.schema();
        let state = test_state(
            &schema,
            json!({
                "distribution": { "source": "file:///flux/install.yaml" },
                "components_extra": ["image-reflector-controller"],
                "multitenancy": { "enabled": true },
                "sharding": { "shards": ["a", "b"], "storage": "persistent" },
                "scaling": { "size": "small", "concurrent": 10 },
                "patches": [{ "patch": "- op: remove\n  path: /x\n", "target": { "kind": "Deployment" } }],
                "sync": { "kind": "OCIRepository", "url": "oci://r/m", "verify": { "secret_name": "k" } },
                "git_commit": { "project": "fleet/gitops" },
                "cluster": { "host": "https://k8s", "exec": { "api_version": "v1", "command": "c", "env": { "A": "1" } } },
                "inventory": ["v1/Namespace/_/flux-system"],
                "in_sync": true,
            }),
        );
        let model = round_trip(&schema, &state, State::decode);

        let options = model.inputs.render_options().expect("options");
        assert_eq!(options.namespace, "flux-system");
        assert!(options.multitenancy.enabled);
        let sync = options.sync.expect("sync");
        assert_eq!(sync.kind, SyncKind::OciRepository);
        assert_eq!(sync.reference, Ref::Tag("latest".into()));
        assert_eq!((sync.path.as_str(), sync.interval.as_str()), ("./", "1m0s"));
        let sharding = options.sharding.expect("sharding");
        assert_eq!(
            sharding.storage,
            Storage::Persistent {
                size: "10Gi".into(),
                class: None
            }
        );
        assert_eq!(
            options.patches[0].target.kind.as_deref(),
            Some("Deployment")
        );
        assert_eq!(
            model.inputs.distribution_source().url,
            "file:///flux/install.yaml"
        );
        assert_eq!(model.own.lifecycle().apply.timeout.as_secs(), 300);
    }

    #[test]
    fn timeout_must_be_a_duration() {
        let schema = FluxBootstrap.schema();
        let diagnostics = |timeout: &str| {
            let mut diags = Diagnostics::new();
            let config = test_state(&schema, json!({ "timeout": timeout }));
            validate_config(&schema.block, &config, true, &mut diags);
            diags
        };
        assert!(diagnostics("10m").is_empty());
        let refused = diagnostics("ten minutes");
        let d = refused.iter().next().expect("a diagnostic");
        assert_eq!(d.summary, "Invalid duration");
        assert_eq!(d.attribute, Some(AttrPath::root().attr("timeout")));
    }
}
