//! The managed-resource RPCs: ValidateResourceConfig, UpgradeResourceState, ReadResource,
//! PlanResourceChange, ApplyResourceChange, ImportResourceState, MoveResourceState and
//! UpgradeResourceIdentity. Every answer that carries a state carries the identity derived
//! from it.

use super::{Entry, PluginServer, diagnostics_of, guarded, respond, split};
use crate::tfplug::convert::{self, decode_dynamic, encode_dynamic};
use crate::tfplug::diag::{DiagResult, Diagnostic, Diagnostics};
use crate::tfplug::plan;
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::decode_state;
use crate::tfplug::resource::{
    ApplyRequest, Ctx, MoveRequest, NewState, PlanContext, Provider, Resource,
};
use crate::tfplug::value::Value;

pub(super) async fn validate_resource_config<P: Provider>(
    server: &PluginServer<P>,
    req: pb::validate_resource_config::Request,
) -> pb::validate_resource_config::Response {
    let write_only_allowed = req
        .client_capabilities
        .as_ref()
        .is_some_and(|c| c.write_only_attributes_allowed);
    // Warnings a validation pushes (a setting that works but may not do what was meant)
    // travel with its errors.
    let ctx = server.ctx();
    let mut diagnostics = diagnostics_of("ValidateResourceConfig", &req.type_name, async {
        let entry = server.resource(&req.type_name)?;
        let config = entry.checked_config(req.config.as_ref(), write_only_allowed)?;
        entry.item.validate(&ctx, &config).await
    })
    .await;
    diagnostics.extend(convert::diagnostics(ctx.take_warnings()));
    pb::validate_resource_config::Response { diagnostics }
}

pub(super) async fn upgrade_resource_state<P: Provider>(
    server: &PluginServer<P>,
    req: pb::upgrade_resource_state::Request,
) -> pb::upgrade_resource_state::Response {
    let result = guarded("UpgradeResourceState", &req.type_name, async {
        let entry = server.resource(&req.type_name)?;
        let raw = req.raw_state.unwrap_or_default();
        if raw.json.is_empty() && !raw.flatmap.is_empty() {
            return Err(Diagnostic::error(
                "Unsupported legacy state",
                "This state was written in the pre-0.12 flatmap format, which this provider \
                 cannot read. Re-import the resource.",
            )
            .into());
        }
        // Every resource on every run comes through here: the schema and its value type
        // are the entry's, computed once, and only older state reaches the resource.
        let current = entry.schema.version;
        let mut upgraded = if raw.json.is_empty() {
            Value::Null
        } else if req.version == current {
            decode_state(&raw.json, &entry.ty)?
        } else if req.version > current {
            return Err(Diagnostic::error(
                "State from a newer provider",
                format!(
                    "The state of this {} was written by a newer provider (schema version \
                     {}, this provider knows {current}). Upgrade the provider.",
                    req.type_name, req.version
                ),
            )
            .into());
        } else {
            entry
                .item
                .upgrade_state(req.version, &raw.json, &entry.ty)?
        };
        // State stored before an attribute had its default (or by an import that could not
        // see it) takes the default, as the import rule does: models read defaulted
        // attributes as present.
        plan::fill_defaults(&entry.schema.block, &mut upgraded);
        encode_dynamic(&upgraded, &entry.ty, "upgraded state")
    })
    .await;
    let (upgraded, diagnostics) = split(result.map(Some));
    pb::upgrade_resource_state::Response {
        upgraded_state: upgraded,
        diagnostics,
    }
}

pub(super) async fn read_resource<P: Provider>(
    server: &PluginServer<P>,
    req: pb::read_resource::Request,
) -> pb::read_resource::Response {
    let type_name = req.type_name.clone();
    respond(guarded("ReadResource", &type_name, read(server, req)).await)
}

async fn read<P: Provider>(
    server: &PluginServer<P>,
    req: pb::read_resource::Request,
) -> DiagResult<pb::read_resource::Response> {
    let entry = server.resource(&req.type_name)?;
    let state = decode_dynamic(req.current_state.as_ref(), &entry.ty, "current state")?;
    let ctx = server.ctx();
    let new = if state.is_null() {
        NewState::new(Value::Null)
    } else {
        let current = NewState {
            state,
            private: req.private,
        };
        match entry.item.read(&ctx, current).await? {
            Some(new) => NewState {
                state: entry.settled(new.state, entry.item.type_name(), "refreshed state")?,
                private: new.private,
            },
            None => NewState::new(Value::Null),
        }
    };
    Ok(pb::read_resource::Response {
        new_state: Some(encode_dynamic(&new.state, &entry.ty, "refreshed state")?),
        new_identity: entry.identity_of(&new.state)?,
        private: new.private,
        diagnostics: convert::diagnostics(ctx.take_warnings()),
        ..Default::default()
    })
}

pub(super) async fn plan_resource_change<P: Provider>(
    server: &PluginServer<P>,
    req: pb::plan_resource_change::Request,
) -> pb::plan_resource_change::Response {
    let type_name = req.type_name.clone();
    respond(guarded("PlanResourceChange", &type_name, plan(server, req)).await)
}

async fn plan<P: Provider>(
    server: &PluginServer<P>,
    req: pb::plan_resource_change::Request,
) -> DiagResult<pb::plan_resource_change::Response> {
    let entry = server.resource(&req.type_name)?;
    let prior = decode_dynamic(req.prior_state.as_ref(), &entry.ty, "prior state")?;
    let proposed = decode_dynamic(req.proposed_new_state.as_ref(), &entry.ty, "proposed state")?;
    let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
    let change = plan::plan_resource(&entry.schema.block, &prior, proposed, &config);
    let mut plan_ctx = PlanContext {
        prior,
        config,
        planned: change.planned,
        requires_replace: change.requires_replace,
        planned_private: req.prior_private.clone(),
        prior_private: req.prior_private,
    };
    let ctx = server.ctx();
    if !plan_ctx.is_destroy() {
        entry.item.modify_plan(&ctx, &mut plan_ctx).await?;
    }
    Ok(pb::plan_resource_change::Response {
        planned_state: Some(encode_dynamic(
            &plan_ctx.planned,
            &entry.ty,
            "planned state",
        )?),
        requires_replace: plan_ctx
            .requires_replace
            .iter()
            .map(convert::attribute_path)
            .collect(),
        planned_identity: planned_identity(entry, &plan_ctx)?,
        planned_private: plan_ctx.planned_private,
        diagnostics: convert::diagnostics(ctx.take_warnings()),
        ..Default::default()
    })
}

/// The identity a plan announces: the planned state's when it is wholly known, else (an
/// update that will move a rotating id) the one it starts from, else none. Terraform
/// accepts unknown parts on a create, but cannot render such a plan as JSON
/// (`terraform show -json` fails), so a create announces its identity only once known.
fn planned_identity<D: Send + Sync + 'static>(
    entry: &Entry<dyn Resource<D>>,
    plan: &PlanContext,
) -> DiagResult<Option<pb::ResourceIdentityData>> {
    if identity_known(entry, &plan.planned) {
        entry.identity_of(&plan.planned)
    } else if identity_known(entry, &plan.prior) {
        entry.identity_of(&plan.prior)
    } else {
        Ok(None)
    }
}

pub(super) async fn apply_resource_change<P: Provider>(
    server: &PluginServer<P>,
    req: pb::apply_resource_change::Request,
) -> pb::apply_resource_change::Response {
    let type_name = req.type_name.clone();
    // On failure Terraform keeps the prior state, which is what we want: whatever the
    // handler did not finish is retried on the next apply.
    let prior = req.prior_state.clone();
    let result = guarded("ApplyResourceChange", &type_name, apply(server, req)).await;
    result.unwrap_or_else(|d| pb::apply_resource_change::Response {
        new_state: prior,
        diagnostics: convert::diagnostics(d),
        ..Default::default()
    })
}

async fn apply<P: Provider>(
    server: &PluginServer<P>,
    req: pb::apply_resource_change::Request,
) -> DiagResult<pb::apply_resource_change::Response> {
    let entry = server.resource(&req.type_name)?;
    let prior = decode_dynamic(req.prior_state.as_ref(), &entry.ty, "prior state")?;
    let planned = decode_dynamic(req.planned_state.as_ref(), &entry.ty, "planned state")?;
    let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
    let ctx = server.ctx();
    let new = if planned.is_null() {
        let prior = NewState {
            state: prior,
            private: req.planned_private,
        };
        entry.item.delete(&ctx, prior).await?;
        NewState::new(Value::Null)
    } else {
        let apply = ApplyRequest {
            prior,
            planned,
            config,
            private: req.planned_private,
        };
        let new = if apply.prior.is_null() {
            entry.item.create(&ctx, apply).await?
        } else {
            match entry.item.update(&ctx, apply).await {
                Ok(new) => new,
                Err(errors) => return partial_failure(entry, &ctx, errors),
            }
        };
        NewState {
            state: entry.settled(new.state, entry.item.type_name(), "new state")?,
            private: new.private,
        }
    };
    Ok(pb::apply_resource_change::Response {
        new_state: Some(encode_dynamic(&new.state, &entry.ty, "new state")?),
        new_identity: entry.identity_of(&new.state)?,
        private: new.private,
        diagnostics: convert::diagnostics(ctx.take_warnings()),
        ..Default::default()
    })
}

/// A failed update: the partial state it kept, with its errors, or the errors alone (then
/// Terraform keeps the prior state).
fn partial_failure<D: Send + Sync + 'static>(
    entry: &Entry<dyn Resource<D>>,
    ctx: &Ctx<D>,
    errors: Diagnostics,
) -> DiagResult<pb::apply_resource_change::Response> {
    let Some(partial) = ctx.take_partial_state() else {
        return Err(errors);
    };
    let state = entry.settled(partial.state, entry.item.type_name(), "partial state")?;
    let mut diagnostics = ctx.take_warnings();
    diagnostics.extend(errors);
    Ok(pb::apply_resource_change::Response {
        new_state: Some(encode_dynamic(&state, &entry.ty, "partial state")?),
        new_identity: entry.identity_of(&state)?,
        private: partial.private,
        diagnostics: convert::diagnostics(diagnostics),
        ..Default::default()
    })
}

pub(super) async fn import_resource_state<P: Provider>(
    server: &PluginServer<P>,
    req: pb::import_resource_state::Request,
) -> pb::import_resource_state::Response {
    let result = guarded("ImportResourceState", &req.type_name, async {
        let entry = server.resource(&req.type_name)?;
        let ctx = server.ctx();
        let id = import_id(entry, &req)?;
        let imported = imported(entry, &ctx, &id).await?;
        let state = imported.state;
        Ok((
            pb::import_resource_state::ImportedResource {
                type_name: req.type_name.clone(),
                state: Some(encode_dynamic(&state, &entry.ty, "imported state")?),
                private: imported.private,
                // Read completes an imported state; its identity is complete when the
                // import found every part of it.
                identity: entry
                    .identity_of(&state)?
                    .filter(|_| identity_known(entry, &state)),
            },
            ctx.take_warnings(),
        ))
    })
    .await;
    match result {
        Ok((imported, warnings)) => pb::import_resource_state::Response {
            imported_resources: vec![imported],
            diagnostics: convert::diagnostics(warnings),
            deferred: None,
        },
        Err(d) => pb::import_resource_state::Response {
            diagnostics: convert::diagnostics(d),
            ..Default::default()
        },
    }
}

/// What a resource's import of `id` gives, conformed to its schema with the defaults set
/// (the lifecycle settings an import cannot see).
pub(super) async fn imported<D: Send + Sync + 'static>(
    entry: &Entry<dyn Resource<D>>,
    ctx: &Ctx<D>,
    id: &str,
) -> DiagResult<NewState> {
    let imported = entry.item.import(ctx, id).await?;
    let mut state = imported.state.conform(&entry.ty).map_err(|e| {
        Diagnostic::error(
            "Provider produced an invalid value",
            format!(
                "The imported state does not match the schema: {e}. This is a bug in the \
                 provider."
            ),
        )
    })?;
    plan::fill_defaults(&entry.schema.block, &mut state);
    Ok(NewState {
        state,
        private: imported.private,
    })
}

/// The import ID of a request: its `id`, or the one its identity stands for
/// (`import { identity = { ... } }`).
fn import_id<D: Send + Sync + 'static>(
    entry: &Entry<dyn Resource<D>>,
    req: &pb::import_resource_state::Request,
) -> DiagResult<String> {
    let identity = req.identity.as_ref().and_then(|i| i.identity_data.as_ref());
    let (Some(data), Some((schema, ty))) = (identity, &entry.identity) else {
        return Ok(req.id.clone());
    };
    if !req.id.is_empty() {
        return Ok(req.id.clone());
    }
    let value = decode_dynamic(Some(data), ty, "import identity")?;
    schema.import_id_of(&value)
}

fn identity_known<D: Send + Sync + 'static>(entry: &Entry<dyn Resource<D>>, state: &Value) -> bool {
    entry
        .identity
        .as_ref()
        .is_some_and(|(schema, _)| schema.of_state(state).is_wholly_known())
}

/// Reads stored identity data: identities have had one version so far, so only that one.
pub(super) async fn upgrade_resource_identity<P: Provider>(
    server: &PluginServer<P>,
    req: pb::upgrade_resource_identity::Request,
) -> pb::upgrade_resource_identity::Response {
    let result = guarded("UpgradeResourceIdentity", &req.type_name, async {
        let entry = server.resource(&req.type_name)?;
        let Some((schema, ty)) = &entry.identity else {
            return Err(Diagnostic::error(
                "Resource has no identity",
                format!("{} declares no identity to upgrade.", req.type_name),
            )
            .into());
        };
        if req.version != schema.version {
            return Err(Diagnostic::error(
                "Unknown identity version",
                format!(
                    "The stored identity of this {} has version {}; this provider knows                      version {}. Upgrade the provider, or remove the resource from state and                      import it again.",
                    req.type_name, req.version, schema.version
                ),
            )
            .into());
        }
        let raw = req.raw_identity.unwrap_or_default();
        let value = decode_state(&raw.json, ty)?;
        convert::identity_data(&value, ty).map(Some)
    })
    .await;
    let (upgraded_identity, diagnostics) = split(result);
    pb::upgrade_resource_identity::Response {
        upgraded_identity,
        diagnostics,
    }
}

pub(super) async fn move_resource_state<P: Provider>(
    server: &PluginServer<P>,
    req: pb::move_resource_state::Request,
) -> pb::move_resource_state::Response {
    let result = guarded("MoveResourceState", &req.target_type_name, async {
        let entry = server.resource(&req.target_type_name)?;
        let moved = entry
            .item
            .move_state(
                &server.ctx(),
                MoveRequest {
                    source_provider_address: req.source_provider_address.clone(),
                    source_type_name: req.source_type_name.clone(),
                    source_schema_version: req.source_schema_version,
                    source_state_json: req.source_state.clone().unwrap_or_default().json,
                    source_private: req.source_private.clone(),
                },
            )
            .await?;
        Ok(pb::move_resource_state::Response {
            target_state: Some(encode_dynamic(&moved.state, &entry.ty, "moved state")?),
            target_identity: entry.identity_of(&moved.state)?,
            target_private: moved.private,
            ..Default::default()
        })
    })
    .await;
    respond(result)
}
