//! ValidateProviderConfig, ConfigureProvider and StopProvider: the provider's own configuration
//! and the cancellation every in-flight handler watches.

use std::sync::Arc;

use super::{PluginServer, diagnostics_of};
use crate::tfplug::convert::decode_dynamic;
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::{ConfigureInfo, Provider};

pub(super) async fn validate_provider_config<P: Provider>(
    server: &PluginServer<P>,
    req: pb::validate_provider_config::Request,
) -> pb::validate_provider_config::Response {
    let diagnostics = diagnostics_of(
        "ValidateProviderConfig",
        server.provider.item.type_name(),
        async {
            let config = server.provider.checked_config(req.config.as_ref(), true)?;
            server.provider.item.validate(&config).await
        },
    )
    .await;
    pb::validate_provider_config::Response { diagnostics }
}

pub(super) async fn configure_provider<P: Provider>(
    server: &PluginServer<P>,
    req: pb::configure_provider::Request,
) -> pb::configure_provider::Response {
    let diagnostics = diagnostics_of(
        "ConfigureProvider",
        server.provider.item.type_name(),
        async {
            let config = decode_dynamic(
                req.config.as_ref(),
                &server.provider.ty,
                "provider configuration",
            )?;
            let info = ConfigureInfo {
                terraform_version: req.terraform_version.clone(),
                stop: server.stop.clone(),
            };
            let data = server.provider.item.configure(&config, &info).await?;
            if let Ok(mut slot) = server.configured.write() {
                *slot = Some(Arc::new(data));
            }
            Ok(())
        },
    )
    .await;
    pb::configure_provider::Response { diagnostics }
}

pub(super) fn stop_provider<P: Provider>(server: &PluginServer<P>) -> pb::stop_provider::Response {
    tracing::debug!("stop requested: cancelling in-flight operations");
    server.stop.cancel();
    pb::stop_provider::Response::default()
}
