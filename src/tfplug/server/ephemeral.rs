//! The ephemeral-resource RPCs: ValidateEphemeralResourceConfig, OpenEphemeralResource,
//! RenewEphemeralResource and CloseEphemeralResource. Their results never reach state; only the
//! opaque private data travels between open, renew and close.

use std::time::SystemTime;

use super::{PluginServer, diagnostics_of, guarded, respond};
use crate::tfplug::convert::{self, decode_dynamic, encode_dynamic};
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::Provider;

pub(super) async fn validate_ephemeral_resource_config<P: Provider>(
    server: &PluginServer<P>,
    req: pb::validate_ephemeral_resource_config::Request,
) -> pb::validate_ephemeral_resource_config::Response {
    let diagnostics = diagnostics_of("ValidateEphemeralResourceConfig", &req.type_name, async {
        let entry = server.ephemeral_resource(&req.type_name)?;
        let config = entry.checked_config(req.config.as_ref(), true)?;
        entry.item.validate(&server.ctx(), &config).await
    })
    .await;
    pb::validate_ephemeral_resource_config::Response { diagnostics }
}

pub(super) async fn open_ephemeral_resource<P: Provider>(
    server: &PluginServer<P>,
    req: pb::open_ephemeral_resource::Request,
) -> pb::open_ephemeral_resource::Response {
    let result = guarded("OpenEphemeralResource", &req.type_name, async {
        let entry = server.ephemeral_resource(&req.type_name)?;
        let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
        let ctx = server.ctx();
        let opened = entry.item.open(&ctx, &config).await?;
        Ok(pb::open_ephemeral_resource::Response {
            result: Some(encode_dynamic(
                &opened.result,
                &entry.ty,
                "ephemeral result",
            )?),
            private: Some(opened.private),
            renew_at: opened.renew_at.map(timestamp),
            diagnostics: convert::diagnostics(ctx.take_warnings()),
            deferred: None,
        })
    })
    .await;
    respond(result)
}

pub(super) async fn renew_ephemeral_resource<P: Provider>(
    server: &PluginServer<P>,
    req: pb::renew_ephemeral_resource::Request,
) -> pb::renew_ephemeral_resource::Response {
    let result = guarded("RenewEphemeralResource", &req.type_name, async {
        let entry = server.ephemeral_resource(&req.type_name)?;
        let (private, renew_at) = entry
            .item
            .renew(&server.ctx(), req.private.clone().unwrap_or_default())
            .await?;
        Ok(pb::renew_ephemeral_resource::Response {
            private: Some(private),
            renew_at: renew_at.map(timestamp),
            diagnostics: Vec::new(),
        })
    })
    .await;
    respond(result)
}

pub(super) async fn close_ephemeral_resource<P: Provider>(
    server: &PluginServer<P>,
    req: pb::close_ephemeral_resource::Request,
) -> pb::close_ephemeral_resource::Response {
    let diagnostics = diagnostics_of("CloseEphemeralResource", &req.type_name, async {
        let entry = server.ephemeral_resource(&req.type_name)?;
        entry
            .item
            .close(&server.ctx(), req.private.clone().unwrap_or_default())
            .await
    })
    .await;
    pb::close_ephemeral_resource::Response { diagnostics }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}
