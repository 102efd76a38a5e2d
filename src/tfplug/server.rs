//! The tfplugin6 `Provider` gRPC service: decodes requests, runs the schema-driven behaviour
//! of `plan`, dispatches to the provider's resources, and encodes the answers. Every handler
//! runs behind a panic guard so a bug becomes an error diagnostic, never a crashed plugin.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::convert::{self, decode_dynamic, encode_dynamic};
use super::diag::{DiagResult, Diagnostic, Diagnostics};
use super::plan;
use super::proto::tfplugin6 as pb;
use super::resource::decode_state;
use super::resource::{
    ApplyRequest, ConfigureInfo, Ctx, DataSource, EphemeralResource, Function, MoveRequest,
    NewState, PlanContext, Provider, Resource,
};
use super::schema::Schema;
use super::value::{Type, Value};

/// A registered item with its schema and value type computed once.
struct Entry<T: ?Sized> {
    item: Arc<T>,
    schema: Schema,
    ty: Type,
}

impl<T: ?Sized> Entry<T> {
    fn new(item: Arc<T>, schema: Schema) -> Self {
        let ty = schema.value_type();
        Self { item, schema, ty }
    }

    /// Decodes a configuration and runs the schema's validators and write-only rules on it.
    fn checked_config(
        &self,
        raw: Option<&pb::DynamicValue>,
        write_only_allowed: bool,
    ) -> DiagResult<Value> {
        let config = decode_dynamic(raw, &self.ty, "configuration")?;
        let mut diags = Diagnostics::new();
        plan::validate_config(&self.schema.block, &config, write_only_allowed, &mut diags);
        diags.into_result().map(|()| config)
    }
}

pub struct PluginServer<P: Provider> {
    provider: Entry<P>,
    resources: HashMap<&'static str, Entry<dyn Resource<P::Data>>>,
    data_sources: HashMap<&'static str, Entry<dyn DataSource<P::Data>>>,
    ephemeral: HashMap<&'static str, Entry<dyn EphemeralResource<P::Data>>>,
    functions: HashMap<&'static str, Arc<dyn Function>>,
    configured: RwLock<Option<Arc<P::Data>>>,
    stop: CancellationToken,
    /// Built once: Terraform asks for the schema on every run, often several times.
    schema_response: pb::get_provider_schema::Response,
}

impl<P: Provider> PluginServer<P> {
    pub fn new(provider: P) -> Self {
        let resources = provider
            .resources()
            .into_iter()
            .map(|r| (r.type_name(), Entry::new(r.clone(), r.schema())))
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|d| (d.type_name(), Entry::new(d.clone(), d.schema())))
            .collect();
        let ephemeral = provider
            .ephemeral_resources()
            .into_iter()
            .map(|e| (e.type_name(), Entry::new(e.clone(), e.schema())))
            .collect();
        let functions = provider
            .functions()
            .into_iter()
            .map(|f| (f.name(), f))
            .collect();
        let provider_schema = provider.schema();
        let mut server = Self {
            provider: Entry::new(Arc::new(provider), provider_schema),
            resources,
            data_sources,
            ephemeral,
            functions,
            configured: RwLock::new(None),
            stop: CancellationToken::new(),
            schema_response: Default::default(),
        };
        server.schema_response = server.build_schema_response();
        server
    }

    fn ctx(&self) -> Ctx<P::Data> {
        let configured = self.configured.read().ok().and_then(|c| c.clone());
        Ctx::new(configured, self.stop.child_token())
    }

    fn resource(&self, type_name: &str) -> DiagResult<&Entry<dyn Resource<P::Data>>> {
        self.resources
            .get(type_name)
            .ok_or_else(|| unknown_type("resource", type_name))
    }

    fn data_source(&self, type_name: &str) -> DiagResult<&Entry<dyn DataSource<P::Data>>> {
        self.data_sources
            .get(type_name)
            .ok_or_else(|| unknown_type("data source", type_name))
    }

    fn ephemeral_resource(
        &self,
        type_name: &str,
    ) -> DiagResult<&Entry<dyn EphemeralResource<P::Data>>> {
        self.ephemeral
            .get(type_name)
            .ok_or_else(|| unknown_type("ephemeral resource", type_name))
    }

    fn server_capabilities() -> pb::ServerCapabilities {
        pb::ServerCapabilities {
            plan_destroy: false,
            get_provider_schema_optional: true,
            move_resource_state: true,
            generate_resource_config: false,
        }
    }

    fn build_schema_response(&self) -> pb::get_provider_schema::Response {
        let schemas = |it: &mut dyn Iterator<Item = (&&str, &Schema)>| {
            it.map(|(name, s)| (name.to_string(), convert::schema(s)))
                .collect()
        };
        pb::get_provider_schema::Response {
            provider: Some(convert::schema(&self.provider.schema)),
            resource_schemas: schemas(&mut self.resources.iter().map(|(k, e)| (k, &e.schema))),
            data_source_schemas: schemas(
                &mut self.data_sources.iter().map(|(k, e)| (k, &e.schema)),
            ),
            ephemeral_resource_schemas: schemas(
                &mut self.ephemeral.iter().map(|(k, e)| (k, &e.schema)),
            ),
            functions: self.function_definitions(),
            server_capabilities: Some(Self::server_capabilities()),
            ..Default::default()
        }
    }

    fn function_definitions(&self) -> HashMap<String, pb::Function> {
        self.functions
            .iter()
            .map(|(name, f)| (name.to_string(), convert::function(&f.signature())))
            .collect()
    }

    async fn plan(
        &self,
        req: pb::plan_resource_change::Request,
    ) -> DiagResult<pb::plan_resource_change::Response> {
        let entry = self.resource(&req.type_name)?;
        let prior = decode_dynamic(req.prior_state.as_ref(), &entry.ty, "prior state")?;
        let proposed =
            decode_dynamic(req.proposed_new_state.as_ref(), &entry.ty, "proposed state")?;
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
        let ctx = self.ctx();
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
            planned_private: plan_ctx.planned_private,
            diagnostics: convert::diagnostics(ctx.take_warnings()),
            ..Default::default()
        })
    }

    async fn apply(
        &self,
        req: pb::apply_resource_change::Request,
    ) -> DiagResult<pb::apply_resource_change::Response> {
        let entry = self.resource(&req.type_name)?;
        let prior = decode_dynamic(req.prior_state.as_ref(), &entry.ty, "prior state")?;
        let planned = decode_dynamic(req.planned_state.as_ref(), &entry.ty, "planned state")?;
        let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
        let ctx = self.ctx();
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
            let mut new = if apply.prior.is_null() {
                entry.item.create(&ctx, apply).await?
            } else {
                entry.item.update(&ctx, apply).await?
            };
            plan::strip_write_only(&entry.schema.block, &mut new.state);
            ensure_wholly_known(&new.state, entry.item.type_name())?;
            new
        };
        Ok(pb::apply_resource_change::Response {
            new_state: Some(encode_dynamic(&new.state, &entry.ty, "new state")?),
            private: new.private,
            diagnostics: convert::diagnostics(ctx.take_warnings()),
            ..Default::default()
        })
    }

    async fn read(
        &self,
        req: pb::read_resource::Request,
    ) -> DiagResult<pb::read_resource::Response> {
        let entry = self.resource(&req.type_name)?;
        let state = decode_dynamic(req.current_state.as_ref(), &entry.ty, "current state")?;
        let ctx = self.ctx();
        let new = if state.is_null() {
            NewState::new(Value::Null)
        } else {
            let current = NewState {
                state,
                private: req.private,
            };
            match entry.item.read(&ctx, current).await? {
                Some(mut new) => {
                    plan::strip_write_only(&entry.schema.block, &mut new.state);
                    ensure_wholly_known(&new.state, entry.item.type_name())?;
                    new
                }
                None => NewState::new(Value::Null),
            }
        };
        Ok(pb::read_resource::Response {
            new_state: Some(encode_dynamic(&new.state, &entry.ty, "refreshed state")?),
            private: new.private,
            diagnostics: convert::diagnostics(ctx.take_warnings()),
            ..Default::default()
        })
    }
}

fn unknown_type(kind: &str, name: &str) -> Diagnostics {
    Diagnostic::error(
        format!("Unknown {kind} type"),
        format!("This provider has no {kind} named \"{name}\"."),
    )
    .into()
}

fn ensure_wholly_known(state: &Value, type_name: &str) -> DiagResult<()> {
    if state.is_wholly_known() {
        Ok(())
    } else {
        Err(Diagnostic::error(
            "Provider returned unknown values",
            format!(
                "{type_name} returned a state with unknown values after apply or read. This is \
                 a bug in the provider; please report it."
            ),
        )
        .into())
    }
}

/// Runs a handler with tracing and a panic guard.
async fn guarded<T>(
    rpc: &'static str,
    type_name: &str,
    fut: impl Future<Output = DiagResult<T>>,
) -> DiagResult<T> {
    let span = tracing::debug_span!("rpc", tf_rpc = rpc, tf_type = type_name);
    let started = Instant::now();
    let result = AssertUnwindSafe(fut)
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match result {
        Ok(r) => {
            tracing::debug!(
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                ok = r.is_ok(),
                "served"
            );
            r
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            tracing::error!(panic = %what, "handler panicked");
            Err(Diagnostic::error(
                "Provider internal error",
                format!(
                    "The provider failed while handling {rpc} for {type_name}: {what}. This is a \
                     bug in the provider; please report it with the configuration that triggered it."
                ),
            )
            .into())
        }
    }
}

/// Splits a handler result into (value, diagnostics) for responses that carry both.
fn split<T: Default>(r: DiagResult<T>) -> (T, Vec<pb::Diagnostic>) {
    match r {
        Ok(v) => (v, Vec::new()),
        Err(d) => (T::default(), convert::diagnostics(d)),
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

/// A response that carries only diagnostics, for a handler that failed.
trait Failed {
    fn failed(diagnostics: Diagnostics) -> Self;
}

macro_rules! failed_with_diagnostics {
    ($($response:path),* $(,)?) => {$(
        impl Failed for $response {
            fn failed(diagnostics: Diagnostics) -> Self {
                Self {
                    diagnostics: convert::diagnostics(diagnostics),
                    ..Default::default()
                }
            }
        }
    )*};
}

failed_with_diagnostics!(
    pb::read_resource::Response,
    pb::plan_resource_change::Response,
    pb::move_resource_state::Response,
    pb::read_data_source::Response,
    pb::open_ephemeral_resource::Response,
    pb::renew_ephemeral_resource::Response,
);

/// The handler's response, or its diagnostics in an otherwise empty one.
fn respond<T: Failed>(result: DiagResult<T>) -> RpcResult<T> {
    Ok(Response::new(result.unwrap_or_else(T::failed)))
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for PluginServer<P> {
    async fn get_metadata(
        &self,
        _req: Request<pb::get_metadata::Request>,
    ) -> RpcResult<pb::get_metadata::Response> {
        use pb::get_metadata as gm;
        Ok(Response::new(gm::Response {
            server_capabilities: Some(Self::server_capabilities()),
            resources: self
                .resources
                .keys()
                .map(|n| gm::ResourceMetadata {
                    type_name: n.to_string(),
                })
                .collect(),
            data_sources: self
                .data_sources
                .keys()
                .map(|n| gm::DataSourceMetadata {
                    type_name: n.to_string(),
                })
                .collect(),
            ephemeral_resources: self
                .ephemeral
                .keys()
                .map(|n| gm::EphemeralMetadata {
                    type_name: n.to_string(),
                })
                .collect(),
            functions: self
                .functions
                .keys()
                .map(|n| gm::FunctionMetadata {
                    name: n.to_string(),
                })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _req: Request<pb::get_provider_schema::Request>,
    ) -> RpcResult<pb::get_provider_schema::Response> {
        Ok(Response::new(self.schema_response.clone()))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> RpcResult<pb::validate_provider_config::Response> {
        let req = req.into_inner();
        let result = guarded(
            "ValidateProviderConfig",
            self.provider.item.type_name(),
            async {
                let config = self.provider.checked_config(req.config.as_ref(), true)?;
                self.provider.item.validate(&config).await
            },
        )
        .await;
        let ((), diagnostics) = split(result);
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics,
        }))
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> RpcResult<pb::validate_resource_config::Response> {
        let req = req.into_inner();
        let write_only_allowed = req
            .client_capabilities
            .as_ref()
            .is_some_and(|c| c.write_only_attributes_allowed);
        let result = guarded("ValidateResourceConfig", &req.type_name, async {
            let entry = self.resource(&req.type_name)?;
            let config = entry.checked_config(req.config.as_ref(), write_only_allowed)?;
            entry.item.validate(&self.ctx(), &config).await
        })
        .await;
        let ((), diagnostics) = split(result);
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> RpcResult<pb::validate_data_resource_config::Response> {
        let req = req.into_inner();
        let result = guarded("ValidateDataResourceConfig", &req.type_name, async {
            let entry = self.data_source(&req.type_name)?;
            let config = entry.checked_config(req.config.as_ref(), true)?;
            entry.item.validate(&self.ctx(), &config).await
        })
        .await;
        let ((), diagnostics) = split(result);
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        req: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> RpcResult<pb::validate_ephemeral_resource_config::Response> {
        let req = req.into_inner();
        let result = guarded("ValidateEphemeralResourceConfig", &req.type_name, async {
            let entry = self.ephemeral_resource(&req.type_name)?;
            let config = entry.checked_config(req.config.as_ref(), true)?;
            entry.item.validate(&self.ctx(), &config).await
        })
        .await;
        let ((), diagnostics) = split(result);
        Ok(Response::new(
            pb::validate_ephemeral_resource_config::Response { diagnostics },
        ))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> RpcResult<pb::upgrade_resource_state::Response> {
        let req = req.into_inner();
        let result = guarded("UpgradeResourceState", &req.type_name, async {
            let entry = self.resource(&req.type_name)?;
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
            let upgraded = if raw.json.is_empty() {
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
            encode_dynamic(&upgraded, &entry.ty, "upgraded state")
        })
        .await;
        let (upgraded, diagnostics) = split(result.map(Some));
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: upgraded,
            diagnostics,
        }))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> RpcResult<pb::configure_provider::Response> {
        let req = req.into_inner();
        let result = guarded("ConfigureProvider", self.provider.item.type_name(), async {
            let config = decode_dynamic(
                req.config.as_ref(),
                &self.provider.ty,
                "provider configuration",
            )?;
            let info = ConfigureInfo {
                terraform_version: req.terraform_version.clone(),
                stop: self.stop.clone(),
            };
            let data = self.provider.item.configure(&config, &info).await?;
            if let Ok(mut slot) = self.configured.write() {
                *slot = Some(Arc::new(data));
            }
            Ok(())
        })
        .await;
        let ((), diagnostics) = split(result);
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics,
        }))
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> RpcResult<pb::read_resource::Response> {
        let req = req.into_inner();
        let type_name = req.type_name.clone();
        let result = guarded("ReadResource", &type_name, self.read(req)).await;
        respond(result)
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> RpcResult<pb::plan_resource_change::Response> {
        let req = req.into_inner();
        let type_name = req.type_name.clone();
        let result = guarded("PlanResourceChange", &type_name, self.plan(req)).await;
        respond(result)
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> RpcResult<pb::apply_resource_change::Response> {
        let req = req.into_inner();
        let type_name = req.type_name.clone();
        // On failure Terraform keeps the prior state, which is what we want: whatever the
        // handler did not finish is retried on the next apply.
        let prior = req.prior_state.clone();
        let result = guarded("ApplyResourceChange", &type_name, self.apply(req)).await;
        Ok(Response::new(result.unwrap_or_else(|d| {
            pb::apply_resource_change::Response {
                new_state: prior,
                diagnostics: convert::diagnostics(d),
                ..Default::default()
            }
        })))
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> RpcResult<pb::import_resource_state::Response> {
        let req = req.into_inner();
        let result = guarded("ImportResourceState", &req.type_name, async {
            let entry = self.resource(&req.type_name)?;
            let ctx = self.ctx();
            let imported = entry.item.import(&ctx, &req.id).await?;
            Ok((
                pb::import_resource_state::ImportedResource {
                    type_name: req.type_name.clone(),
                    state: Some(encode_dynamic(
                        &imported.state,
                        &entry.ty,
                        "imported state",
                    )?),
                    private: imported.private,
                    identity: None,
                },
                ctx.take_warnings(),
            ))
        })
        .await;
        Ok(Response::new(match result {
            Ok((imported, warnings)) => pb::import_resource_state::Response {
                imported_resources: vec![imported],
                diagnostics: convert::diagnostics(warnings),
                deferred: None,
            },
            Err(d) => pb::import_resource_state::Response {
                diagnostics: convert::diagnostics(d),
                ..Default::default()
            },
        }))
    }

    async fn move_resource_state(
        &self,
        req: Request<pb::move_resource_state::Request>,
    ) -> RpcResult<pb::move_resource_state::Response> {
        let req = req.into_inner();
        let result = guarded("MoveResourceState", &req.target_type_name, async {
            let entry = self.resource(&req.target_type_name)?;
            let moved = entry
                .item
                .move_state(
                    &self.ctx(),
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
                target_private: moved.private,
                ..Default::default()
            })
        })
        .await;
        respond(result)
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> RpcResult<pb::read_data_source::Response> {
        let req = req.into_inner();
        let result = guarded("ReadDataSource", &req.type_name, async {
            let entry = self.data_source(&req.type_name)?;
            let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
            let ctx = self.ctx();
            let mut state = entry.item.read(&ctx, &config).await?;
            plan::strip_write_only(&entry.schema.block, &mut state);
            ensure_wholly_known(&state, entry.item.type_name())?;
            Ok(pb::read_data_source::Response {
                state: Some(encode_dynamic(&state, &entry.ty, "data source result")?),
                diagnostics: convert::diagnostics(ctx.take_warnings()),
                deferred: None,
            })
        })
        .await;
        respond(result)
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> RpcResult<pb::open_ephemeral_resource::Response> {
        let req = req.into_inner();
        let result = guarded("OpenEphemeralResource", &req.type_name, async {
            let entry = self.ephemeral_resource(&req.type_name)?;
            let config = decode_dynamic(req.config.as_ref(), &entry.ty, "configuration")?;
            let ctx = self.ctx();
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

    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> RpcResult<pb::renew_ephemeral_resource::Response> {
        let req = req.into_inner();
        let result = guarded("RenewEphemeralResource", &req.type_name, async {
            let entry = self.ephemeral_resource(&req.type_name)?;
            let (private, renew_at) = entry
                .item
                .renew(&self.ctx(), req.private.clone().unwrap_or_default())
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

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> RpcResult<pb::close_ephemeral_resource::Response> {
        let req = req.into_inner();
        let result = guarded("CloseEphemeralResource", &req.type_name, async {
            let entry = self.ephemeral_resource(&req.type_name)?;
            entry
                .item
                .close(&self.ctx(), req.private.clone().unwrap_or_default())
                .await
        })
        .await;
        let ((), diagnostics) = split(result);
        Ok(Response::new(pb::close_ephemeral_resource::Response {
            diagnostics,
        }))
    }

    async fn get_functions(
        &self,
        _req: Request<pb::get_functions::Request>,
    ) -> RpcResult<pb::get_functions::Response> {
        Ok(Response::new(pb::get_functions::Response {
            functions: self.schema_response.functions.clone(),
            diagnostics: Vec::new(),
        }))
    }

    async fn call_function(
        &self,
        req: Request<pb::call_function::Request>,
    ) -> RpcResult<pb::call_function::Response> {
        let req = req.into_inner();
        let Some(function) = self.functions.get(req.name.as_str()) else {
            return Ok(Response::new(function_error(
                format!("This provider has no function named \"{}\".", req.name),
                None,
            )));
        };
        let sig = function.signature();
        let mut args = Vec::with_capacity(req.arguments.len());
        for (i, raw) in req.arguments.iter().enumerate() {
            let param = sig.parameters.get(i).or(sig.variadic.as_ref());
            let Some(param) = param else {
                return Ok(Response::new(function_error(
                    format!("{} takes {} arguments.", req.name, sig.parameters.len()),
                    Some(i as i64),
                )));
            };
            match decode_dynamic(Some(raw), &param.ty, "function argument") {
                Ok(v) => args.push(v),
                Err(d) => return Ok(Response::new(function_error(d.to_string(), Some(i as i64)))),
            }
        }
        let name = req.name.clone();
        let outcome = AssertUnwindSafe(async { function.call(&args) })
            .catch_unwind()
            .await;
        let response = match outcome {
            Ok(Ok(v)) => match encode_dynamic(&v, &sig.return_type, "function result") {
                Ok(result) => pb::call_function::Response {
                    result: Some(result),
                    error: None,
                },
                Err(d) => function_error(d.to_string(), None),
            },
            Ok(Err(e)) => function_error(e.text, e.argument),
            Err(_) => function_error(
                format!(
                    "{name} failed unexpectedly. This is a bug in the provider; please report it."
                ),
                None,
            ),
        };
        Ok(Response::new(response))
    }

    async fn stop_provider(
        &self,
        _req: Request<pb::stop_provider::Request>,
    ) -> RpcResult<pb::stop_provider::Response> {
        tracing::debug!("stop requested: cancelling in-flight operations");
        self.stop.cancel();
        Ok(Response::new(pb::stop_provider::Response::default()))
    }
}

fn function_error(text: String, argument: Option<i64>) -> pb::call_function::Response {
    pb::call_function::Response {
        result: None,
        error: Some(pb::FunctionError {
            text,
            function_argument: argument,
        }),
    }
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}
