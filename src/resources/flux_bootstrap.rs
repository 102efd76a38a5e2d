//! `gitlabflux_flux_bootstrap`: Flux in a cluster, rendered from a distribution with the
//! multi-tenancy lockdown and sync settings, applied server-side, optionally committed to a
//! GitLab repository in one commit. Read re-renders and compares with the cluster, so deleted
//! or edited objects plan a repair. Import ID: the namespace.

use std::sync::Arc;

use async_trait::async_trait;

use super::context::{ProviderData, cluster_connection_attributes, gitlab, kube};
use super::flux_inputs::{distribution_source, render_attributes, render_options};
use super::support::{
    boolean, engine_error, engine_options, engine_timeout, gitlab_error, kube_error, obj, object,
    opt, required_string, set, string, strings,
};
use crate::flux::manifest;
use crate::flux::objects::{describe, find};
use crate::flux::render::shards::DEFAULT_KEY;
use crate::flux::{Distribution, FluxError, Rendered, render, validate_options};
use crate::gitlab::files::{CommitMeta, WantedFile, sync_files};
use crate::kube::engine::{apply_and_prune, drift, teardown};
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, NewState,
    PlanContext, Resource, Schema, Value,
};

pub struct FluxBootstrap;

/// Turns a Flux error into a diagnostic on the attribute that caused it.
pub fn flux_error(e: FluxError) -> Diagnostics {
    let path = match &e {
        FluxError::Sha256Mismatch { .. } | FluxError::InvalidSha256 { .. } => {
            Some(AttrPath::root().attr("distribution").attr("sha256"))
        }
        FluxError::Unreachable { .. }
        | FluxError::Io { .. }
        | FluxError::UnsupportedSource { .. }
        | FluxError::InvalidSource { .. }
        | FluxError::InvalidArtifact { .. } => {
            Some(AttrPath::root().attr("distribution").attr("source"))
        }
        FluxError::UnknownComponent { attribute, .. } => Some(attribute_path(attribute)),
        FluxError::InvalidPatch { index, .. } => Some(
            AttrPath::root()
                .attr("patches")
                .index(*index as i64)
                .attr("patch"),
        ),
        FluxError::InvalidInterval { .. } => Some(AttrPath::root().attr("sync").attr("interval")),
        FluxError::InvalidSync { .. } => Some(AttrPath::root().attr("sync")),
        FluxError::InvalidElement {
            attribute, index, ..
        } => Some(attribute_path(attribute).index(*index as i64)),
        FluxError::InvalidOption { attribute, .. } => Some(attribute_path(attribute)),
        _ => None,
    };
    let d = Diagnostic::error(e.summary(), e.detail());
    match path {
        Some(p) => d.at(p).into(),
        None => d.into(),
    }
}

/// `a.b` as an attribute path.
pub fn attribute_path(dotted: &str) -> AttrPath {
    dotted
        .split('.')
        .fold(AttrPath::root(), |path, step| path.attr(step))
}

/// Loads the distribution and renders everything `config` asks for.
pub async fn render_config(
    ctx: &Ctx<ProviderData>,
    config: &Value,
) -> DiagResult<(Rendered, Option<String>)> {
    let options = render_options(config)?;
    let distribution = load_distribution(ctx, config).await?.map_err(flux_error)?;
    let version = distribution
        .version
        .clone()
        .or_else(|| object(config, "distribution").and_then(|d| string(d, "version")));
    let rendered = render(&distribution, &options).map_err(flux_error)?;
    Ok((rendered, version))
}

/// The configuration's distribution, loaded once per provider process. The outer result is
/// the provider being unconfigured; the inner one is the load, for callers that weigh it.
async fn load_distribution(
    ctx: &Ctx<ProviderData>,
    config: &Value,
) -> DiagResult<Result<Arc<Distribution>, FluxError>> {
    let source = distribution_source(config);
    Ok(ctx.provider()?.distributions.load(&source).await)
}

/// Loads and renders at plan time (the cache makes the apply's second load free), so a
/// mismatched pin, a bad artifact or a bad option fails `plan` in CI rather than the apply.
/// A source that cannot be reached is only a warning here: another resource may create it
/// during the apply, or only the apply's runner may reach it.
async fn check_renders(ctx: &Ctx<ProviderData>, planned: &Value) -> DiagResult<()> {
    match load_distribution(ctx, planned).await? {
        Ok(_) => render_config(ctx, planned).await.map(drop),
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
            Ok(())
        }
        Err(e) => Err(flux_error(e)),
    }
}

/// Commits (or deletes, with `content: None`) the rendered files when `git_commit` is set.
async fn sync_git(
    ctx: &Ctx<ProviderData>,
    state: &Value,
    rendered: Option<&Rendered>,
    version: Option<&str>,
) -> DiagResult<()> {
    let Some(git) = object(state, "git_commit") else {
        return Ok(());
    };
    let client = gitlab(ctx)?;
    let project_ref = required_string(git, "project")?;
    let project = client.project(&project_ref).await.map_err(gitlab_error)?;
    let branch = string(git, "branch").unwrap_or(project.default_branch.clone());
    let dir = string(git, "path").unwrap_or_else(|| "clusters/default/flux-system".into());
    let names = [
        "gotk-components.yaml",
        "gotk-sync.yaml",
        "kustomization.yaml",
    ];
    let wanted: Vec<WantedFile> = names
        .iter()
        .map(|name| WantedFile {
            path: format!("{}/{name}", dir.trim_end_matches('/')),
            content: rendered.and_then(|r| r.files.get(*name).cloned()),
        })
        .collect();
    let message = match rendered {
        Some(_) => format!("Bootstrap Flux {} (gitlabflux)", version.unwrap_or("")),
        None => "Remove Flux bootstrap manifests (gitlabflux)".to_string(),
    };
    let meta = CommitMeta {
        message,
        author_name: string(git, "author_name"),
        author_email: string(git, "author_email"),
    };
    sync_files(
        client,
        &project.path_with_namespace,
        &branch,
        &wanted,
        &meta,
    )
    .await
    .map_err(gitlab_error)?;
    Ok(())
}

impl FluxBootstrap {
    async fn apply(
        &self,
        ctx: &Ctx<ProviderData>,
        planned: &Value,
        prior: &Value,
    ) -> DiagResult<NewState> {
        let (rendered, version) = render_config(ctx, planned).await?;
        let client = kube(ctx, planned).await?;
        let previous = strings(prior, "inventory");
        let inventory = apply_and_prune(
            &client,
            &rendered.objects,
            &previous,
            &engine_options(planned),
        )
        .await
        .map_err(engine_error)?;
        sync_git(ctx, planned, Some(&rendered), version.as_deref()).await?;
        let mut state = planned.clone();
        set(
            &mut state,
            "inventory",
            Value::List(inventory.iter().map(|s| Value::from(s.as_str())).collect()),
        );
        set(
            &mut state,
            "manifests_sha256",
            rendered.sha256.as_str().into(),
        );
        set(&mut state, "applied_version", opt(version));
        set(&mut state, "in_sync", true.into());
        Ok(NewState::new(state))
    }
}

#[async_trait]
impl Resource<ProviderData> for FluxBootstrap {
    fn type_name(&self) -> &'static str {
        "gitlabflux_flux_bootstrap"
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
            Attribute::bool("keep_namespace").default(false).description("Keep the namespace on destroy."),
            Attribute::string("timeout").default("5m").description("Bound for apply waits and teardown."),
            Attribute::object("cluster", cluster_connection_attributes())
                .optional()
                .description("Cluster to bootstrap, overriding the provider's `kubernetes`."),
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
            validate_options(&render_options(config)?).map_err(flux_error)?;
        }
        Ok(())
    }

    async fn modify_plan(&self, ctx: &Ctx<ProviderData>, plan: &mut PlanContext) -> DiagResult<()> {
        if !plan.is_create() {
            refuse_removing_used_shards(ctx, &plan.prior, &plan.planned).await?;
        }
        let unchanged = !plan.is_create() && render_inputs_equal(&plan.prior, &plan.planned);
        if render_inputs_known(&plan.planned) && !unchanged {
            check_renders(ctx, &plan.planned).await?;
        }
        if plan.is_create() || !plan.planned.is_wholly_known() {
            return Ok(());
        }
        // Drift found by read is repaired by planning the cluster back in sync.
        set(&mut plan.planned, "in_sync", true.into());
        // Same inputs render the same objects: the results carry over instead of showing as
        // "known after apply" on every drift repair or lifecycle-setting change.
        if unchanged {
            for name in ["inventory", "manifests_sha256", "applied_version"] {
                let prior = plan.prior.get_attr(name).cloned().unwrap_or(Value::Null);
                set(&mut plan.planned, name, prior);
            }
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
        let client = kube(ctx, &state).await?;
        let mut new = state.clone();
        match render_config(ctx, &state).await {
            Ok((rendered, _)) => {
                let drifted = drift(&client, &rendered.objects)
                    .await
                    .map_err(engine_error)?;
                if drifted.len() == rendered.objects.len() && !rendered.objects.is_empty() {
                    // Nothing of it is left: the bootstrap is gone.
                    return Ok(None);
                }
                set(&mut new, "in_sync", drifted.is_empty().into());
            }
            Err(d) => {
                ctx.warn(Diagnostic::warning(
                    "Flux drift not checked",
                    format!("The distribution could not be rendered during refresh: {d}"),
                ));
            }
        }
        Ok(Some(NewState::new(new)))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let state = &prior.state;
        let client = kube(ctx, state).await?;
        let keep = boolean(state, "keep_namespace").unwrap_or(false);
        teardown(
            &client,
            &strings(state, "inventory"),
            keep,
            engine_timeout(state),
        )
        .await
        .map_err(engine_error)?;
        let keep_files = object(state, "git_commit")
            .and_then(|g| boolean(g, "keep_files"))
            .unwrap_or(false);
        if !keep_files {
            sync_git(ctx, state, None, None).await?;
        }
        Ok(())
    }

    async fn import(&self, _ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        if id.is_empty() {
            return Err(Diagnostic::error(
                "Invalid import ID",
                "Import by namespace, e.g. flux-system.",
            )
            .into());
        }
        let mut state = obj([]);
        for attr in self.schema().block.attributes {
            let value = attr.default.clone().unwrap_or(Value::Null);
            set(&mut state, &attr.name, value);
        }
        set(&mut state, "namespace", id.into());
        set(&mut state, "in_sync", true.into());
        Ok(NewState::new(state))
    }
}

/// The prior sharding key and the shards `planned` drops (all of them when the key changes
/// or sharding goes).
fn removed_shards(prior: &Value, planned: &Value) -> (String, Vec<String>) {
    let Some(before) = object(prior, "sharding") else {
        return (DEFAULT_KEY.into(), Vec::new());
    };
    let key = string(before, "key").unwrap_or_else(|| DEFAULT_KEY.into());
    let kept = object(planned, "sharding")
        .filter(|after| string(after, "key").as_deref() == Some(key.as_str()))
        .map(|after| strings(after, "shards"))
        .unwrap_or_default();
    let removed = strings(before, "shards")
        .into_iter()
        .filter(|shard| !kept.contains(shard))
        .collect();
    (key, removed)
}

/// Removing a shard whose label Flux objects still carry would leave them unreconciled (no
/// controller selects them any more), so the plan stops until they have moved.
async fn refuse_removing_used_shards(
    ctx: &Ctx<ProviderData>,
    prior: &Value,
    planned: &Value,
) -> DiagResult<()> {
    let known = |name| planned.get_attr(name).is_none_or(Value::is_wholly_known);
    let (key, removed) = removed_shards(prior, planned);
    if removed.is_empty() || !known("sharding") || !known("cluster") {
        return Ok(());
    }
    let client = kube(ctx, planned).await?;
    // One lookup for every removed shard, grouped afterwards.
    let selector = format!("{key} in ({})", removed.join(","));
    let users = find(&client, Some(&selector)).await.map_err(kube_error)?;
    let mut diags = Diagnostics::new();
    for shard in &removed {
        let mut named: Vec<String> = users
            .iter()
            .filter(|o| manifest::label(o, &key) == Some(shard.as_str()))
            .map(describe)
            .collect();
        if named.is_empty() {
            continue;
        }
        named.sort();
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

/// Whether two states ask for the same rendering (so the computed results carry over).
/// Whether every attribute rendering reads is known (a cluster connection from another
/// resource may still be unknown).
fn render_inputs_known(planned: &Value) -> bool {
    render_attributes().iter().all(|attr| {
        planned
            .get_attr(&attr.name)
            .is_none_or(Value::is_wholly_known)
    })
}

fn render_inputs_equal(a: &Value, b: &Value) -> bool {
    render_attributes()
        .iter()
        .all(|attr| a.get_attr(&attr.name) == b.get_attr(&attr.name))
}
