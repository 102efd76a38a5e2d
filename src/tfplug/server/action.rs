//! ValidateActionConfig, PlanAction and InvokeAction (Terraform 1.14+). An invoked action
//! runs in a task of its own while the stream carries its progress; the last event is
//! `Completed` with its diagnostics (a panic in it included).

use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{PluginServer, diagnostics_of, guarded};
use crate::tfplug::convert::{self, decode_dynamic};
use crate::tfplug::proto::tfplugin6 as pb;
use crate::tfplug::resource::{Progress, Provider};

use pb::invoke_action::Event;
use pb::invoke_action::event::{Completed, Type};

pub(super) async fn validate_action_config<P: Provider>(
    server: &PluginServer<P>,
    req: pb::validate_action_config::Request,
) -> pb::validate_action_config::Response {
    let ctx = server.ctx();
    let mut diagnostics = diagnostics_of("ValidateActionConfig", &req.type_name, async {
        let entry = server.action(&req.type_name)?;
        let config = entry.checked_config(req.config.as_ref(), false)?;
        entry.item.validate(&ctx, &config).await
    })
    .await;
    diagnostics.extend(convert::diagnostics(ctx.take_warnings()));
    pb::validate_action_config::Response { diagnostics }
}

pub(super) async fn plan_action<P: Provider>(
    server: &PluginServer<P>,
    req: pb::plan_action::Request,
) -> pb::plan_action::Response {
    let ctx = server.ctx();
    let mut diagnostics = diagnostics_of("PlanAction", &req.action_type, async {
        let entry = server.action(&req.action_type)?;
        let config = decode_dynamic(req.config.as_ref(), &entry.ty, "action configuration")?;
        // Parts of the configuration may be known only once the resources that trigger the
        // action are applied; the invoke checks them all.
        if !config.is_wholly_known() {
            return Ok(());
        }
        entry.item.plan(&ctx, &config).await
    })
    .await;
    diagnostics.extend(convert::diagnostics(ctx.take_warnings()));
    pb::plan_action::Response {
        diagnostics,
        deferred: None,
    }
}

pub(super) fn invoke_action<P: Provider>(
    server: &PluginServer<P>,
    req: pb::invoke_action::Request,
) -> tonic::codegen::BoxStream<Event> {
    let (progress_tx, progress_rx) = mpsc::unbounded_channel::<String>();
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Vec<pb::Diagnostic>>();
    let started = server.action(&req.action_type).and_then(|entry| {
        let config = decode_dynamic(req.config.as_ref(), &entry.ty, "action configuration")?;
        Ok((entry.item.clone(), config))
    });
    match started {
        Ok((action, config)) => {
            let ctx = server.ctx();
            let type_name = req.action_type.clone();
            tokio::spawn(async move {
                let progress = Progress::new(progress_tx);
                let result = guarded("InvokeAction", &type_name, async {
                    action.invoke(&ctx, &config, &progress).await
                })
                .await;
                let mut diagnostics = ctx.take_warnings();
                if let Err(errors) = result {
                    diagnostics.extend(errors);
                }
                // Dropping `progress` ends its stream, so `Completed` comes last.
                drop(progress);
                let _ = done_tx.send(convert::diagnostics(diagnostics));
            });
        }
        Err(errors) => {
            drop(progress_tx);
            let _ = done_tx.send(convert::diagnostics(errors));
        }
    }
    let progress = UnboundedReceiverStream::new(progress_rx).map(|message| {
        Ok(Event {
            r#type: Some(Type::Progress(pb::invoke_action::event::Progress {
                message,
            })),
        })
    });
    let completed = UnboundedReceiverStream::new(done_rx).map(|diagnostics| {
        Ok(Event {
            r#type: Some(Type::Completed(Completed { diagnostics })),
        })
    });
    Box::pin(progress.chain(completed))
}
