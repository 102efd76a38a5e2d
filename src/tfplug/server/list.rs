//! ValidateListResourceConfig and ListResource (Terraform 1.14+, `terraform query`). A list
//! resource only finds import IDs; each is imported and read through the managed resource of
//! the same type name, so a result's identity and state are exactly what an `import` block
//! for it would give.

use super::resource::imported;
use super::{Entry, PluginServer, diagnostics_of, guarded};
use crate::tfplug::convert::{self, decode_dynamic, encode_dynamic};
use crate::tfplug::diag::{DiagResult, Diagnostics};
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::{Ctx, Found, Provider, Resource};
use crate::tfplug::value::Value;

pub(super) async fn validate_list_resource_config<P: Provider>(
    server: &PluginServer<P>,
    req: pb::validate_list_resource_config::Request,
) -> pb::validate_list_resource_config::Response {
    let diagnostics = diagnostics_of("ValidateListResourceConfig", &req.type_name, async {
        let entry = server.list_resource(&req.type_name)?;
        let config = entry.checked_config(req.config.as_ref(), false)?;
        entry.item.validate(&server.ctx(), &config).await
    })
    .await;
    pb::validate_list_resource_config::Response { diagnostics }
}

/// The events of one query: a result per object found, up to `limit`, or one event carrying
/// the diagnostics that stopped it.
pub(super) async fn list_resource<P: Provider>(
    server: &PluginServer<P>,
    req: pb::list_resource::Request,
) -> Vec<pb::list_resource::Event> {
    let type_name = req.type_name.clone();
    match guarded("ListResource", &type_name, list(server, req)).await {
        Ok(events) => events,
        Err(diagnostics) => vec![diagnostic_event(diagnostics)],
    }
}

/// An event with no result: the diagnostics that stopped the query or warnings beside it.
fn diagnostic_event(diagnostics: Diagnostics) -> pb::list_resource::Event {
    pb::list_resource::Event {
        diagnostic: convert::diagnostics(diagnostics),
        ..Default::default()
    }
}

async fn list<P: Provider>(
    server: &PluginServer<P>,
    req: pb::list_resource::Request,
) -> DiagResult<Vec<pb::list_resource::Event>> {
    let entry = server.list_resource(&req.type_name)?;
    let resource = server.resource(&req.type_name)?;
    let config = decode_dynamic(req.config.as_ref(), &entry.ty, "query configuration")?;
    let ctx = server.ctx();
    let found = entry.item.list(&ctx, &config).await?;
    let limit = usize::try_from(req.limit).unwrap_or(usize::MAX);
    // The listing's own warnings stand apart from any result's: an event of their own, so
    // they reach the user even when nothing is found.
    let listing_warnings = ctx.take_warnings();
    let mut events = Vec::new();
    if !listing_warnings.is_empty() {
        events.push(diagnostic_event(listing_warnings));
    }
    // The limit counts results: objects left out do not use it up.
    let mut results = 0;
    for Found {
        display_name,
        import_id,
    } in found
    {
        if results == limit {
            break;
        }
        let state = match listed_state(resource, &ctx, &import_id, &req.type_name).await {
            Ok(Some(state)) => state,
            // Gone between the listing and its read: no result, and its read's warnings are
            // about nothing there is.
            Ok(None) => {
                ctx.take_warnings();
                continue;
            }
            // One object the resource cannot take (not its kind of object) does not end the
            // query: a warning without identity, which Terraform passes over. Warnings of
            // that attempt go with it, not with the next result.
            Err(mut errors) => {
                errors.extend(ctx.take_warnings());
                events.push(skipped(&display_name, errors));
                continue;
            }
        };
        results += 1;
        let resource_object = if req.include_resource_object {
            Some(encode_dynamic(&state, &resource.ty, "listed state")?)
        } else {
            None
        };
        events.push(pb::list_resource::Event {
            identity: resource.identity_of(&state)?,
            display_name,
            resource_object,
            diagnostic: convert::diagnostics(ctx.take_warnings()),
        });
    }
    Ok(events)
}

/// The state the managed resource would hold for `import_id`: imported, then read.
async fn listed_state<D: Send + Sync + 'static>(
    resource: &Entry<dyn Resource<D>>,
    ctx: &Ctx<D>,
    import_id: &str,
    type_name: &str,
) -> DiagResult<Option<Value>> {
    let imported = imported(resource, ctx, import_id).await?;
    let Some(read) = resource.item.read(ctx, imported).await? else {
        return Ok(None);
    };
    resource
        .settled(read.state, type_name, "listed state")
        .map(Some)
}

fn skipped(display_name: &str, errors: Diagnostics) -> pb::list_resource::Event {
    let mut warnings = Diagnostics::new();
    for d in errors.iter() {
        warnings.warning(format!("{display_name} left out: {}", d.summary), &d.detail);
    }
    diagnostic_event(warnings)
}
