//! ValidateDataResourceConfig and ReadDataSource: a data source only reads, so it has no plan,
//! apply or state upgrade of its own.

use super::{PluginServer, diagnostics_of, guarded, respond};
use crate::tfplug::convert::{self, decode_dynamic, encode_dynamic};
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::Provider;

pub(super) async fn validate_data_resource_config<P: Provider>(
    server: &PluginServer<P>,
    req: pb::validate_data_resource_config::Request,
) -> pb::validate_data_resource_config::Response {
    // Warnings a validation pushes (a setting that works but may not do what was meant)
    // travel with its errors.
    let ctx = server.ctx();
    let mut diagnostics = diagnostics_of("ValidateDataResourceConfig", &req.type_name, async {
        let entry = server.data_source(&req.type_name)?;
        let config = entry.checked_config(req.config.as_ref(), true)?;
        entry.item.validate(&ctx, &config).await
    })
    .await;
    diagnostics.extend(convert::diagnostics(ctx.take_warnings()));
    pb::validate_data_resource_config::Response { diagnostics }
}

pub(super) async fn read_data_source<P: Provider>(
    server: &PluginServer<P>,
    req: pb::read_data_source::Request,
) -> pb::read_data_source::Response {
    let result = guarded("ReadDataSource", &req.type_name, async {
        let entry = server.data_source(&req.type_name)?;
        let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
        let ctx = server.ctx();
        let state = entry.item.read(&ctx, &config).await?;
        let state = entry.settled(state, entry.item.type_name(), "data source result")?;
        Ok(pb::read_data_source::Response {
            state: Some(encode_dynamic(&state, &entry.ty, "data source result")?),
            diagnostics: convert::diagnostics(ctx.take_warnings()),
            deferred: None,
        })
    })
    .await;
    respond(result)
}
