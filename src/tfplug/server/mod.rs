//! The tfplugin6 `Provider` gRPC service. Every handler runs behind a panic guard so a bug
//! becomes an error diagnostic, never a crashed plugin.
//!
//! Split the way terraform-plugin-framework splits `internal/fwserver`: this file holds the
//! registry of the provider's items, the helpers every handler shares, and a thin tonic adapter
//! that unwraps each request and hands it to its RPC family's file. The families hold the
//! behaviour: decoding requests, running the schema-driven rules of `plan`, dispatching to the
//! provider's items and encoding the answers.

mod action;
mod data_source;
mod ephemeral;
mod function;
mod list;
mod provider;
mod resource;
mod schema;

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::convert::{self, decode_dynamic};
use super::diag::{DiagResult, Diagnostic, Diagnostics};
use super::identity::IdentitySchema;
use super::plan;
use super::proto::tfplugin6 as pb;
use super::resource::{
    Action, Ctx, DataSource, EphemeralResource, Function, ListResource, Provider, Resource,
};
use super::schema::Schema;
use super::value::{Type, Value};

/// A registered item with its schema and value type computed once.
struct Entry<T: ?Sized> {
    item: Arc<T>,
    schema: Schema,
    ty: Type,
    /// A resource's identity and its value type.
    identity: Option<(IdentitySchema, Type)>,
}

impl<T: ?Sized> Entry<T> {
    fn new(item: Arc<T>, schema: Schema) -> Self {
        let ty = schema.value_type();
        Self {
            item,
            schema,
            ty,
            identity: None,
        }
    }

    fn with_identity(mut self, identity: Option<IdentitySchema>) -> Self {
        self.identity = identity.map(|i| {
            let ty = i.value_type();
            (i, ty)
        });
        self
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

    /// The identity of a resource in `state`, for a response: none for a resource without
    /// identity or a null state.
    fn identity_of(&self, state: &Value) -> DiagResult<Option<pb::ResourceIdentityData>> {
        let Some((identity, ty)) = &self.identity else {
            return Ok(None);
        };
        match identity.of_state(state) {
            Value::Null => Ok(None),
            value => convert::identity_data(&value, ty).map(Some),
        }
    }

    /// A state a handler produced, ready to answer with: conformed to the schema's type
    /// (typed models encode untyped, and write-only clearing walks typed sets and maps),
    /// write-only values cleared, nothing unknown.
    fn settled(&self, state: Value, type_name: &str, what: &str) -> DiagResult<Value> {
        let mut state = state.conform(&self.ty).map_err(|e| {
            Diagnostic::error(
                "Provider produced an invalid value",
                format!("The {what} does not match the schema: {e}. This is a bug in the provider; please report it."),
            )
        })?;
        plan::strip_write_only(&self.schema.block, &mut state);
        ensure_wholly_known(&state, type_name)?;
        Ok(state)
    }
}

pub struct PluginServer<P: Provider> {
    provider: Entry<P>,
    resources: HashMap<&'static str, Entry<dyn Resource<P::Data>>>,
    data_sources: HashMap<&'static str, Entry<dyn DataSource<P::Data>>>,
    ephemeral: HashMap<&'static str, Entry<dyn EphemeralResource<P::Data>>>,
    functions: HashMap<&'static str, Arc<dyn Function>>,
    list_resources: HashMap<&'static str, Entry<dyn ListResource<P::Data>>>,
    actions: HashMap<&'static str, Entry<dyn Action<P::Data>>>,
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
            .map(|r| {
                let entry = Entry::new(r.clone(), r.schema()).with_identity(r.identity_schema());
                (r.type_name(), entry)
            })
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
        let list_resources = provider
            .list_resources()
            .into_iter()
            .map(|l| (l.type_name(), Entry::new(l.clone(), l.schema())))
            .collect();
        let actions = provider
            .actions()
            .into_iter()
            .map(|a| (a.type_name(), Entry::new(a.clone(), a.schema())))
            .collect();
        let provider_schema = provider.schema();
        let mut server = Self {
            provider: Entry::new(Arc::new(provider), provider_schema),
            resources,
            data_sources,
            ephemeral,
            functions,
            list_resources,
            actions,
            configured: RwLock::new(None),
            stop: CancellationToken::new(),
            schema_response: Default::default(),
        };
        server.schema_response = schema::build_response(&server);
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

    fn action(&self, type_name: &str) -> DiagResult<&Entry<dyn Action<P::Data>>> {
        self.actions
            .get(type_name)
            .ok_or_else(|| unknown_type("action", type_name))
    }

    fn list_resource(&self, type_name: &str) -> DiagResult<&Entry<dyn ListResource<P::Data>>> {
        self.list_resources
            .get(type_name)
            .ok_or_else(|| unknown_type("list resource", type_name))
    }

    fn ephemeral_resource(
        &self,
        type_name: &str,
    ) -> DiagResult<&Entry<dyn EphemeralResource<P::Data>>> {
        self.ephemeral
            .get(type_name)
            .ok_or_else(|| unknown_type("ephemeral resource", type_name))
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

/// Runs a handler whose answer is only its diagnostics (the validations, configure, close).
async fn diagnostics_of(
    rpc: &'static str,
    type_name: &str,
    fut: impl Future<Output = DiagResult<()>>,
) -> Vec<pb::Diagnostic> {
    let ((), diagnostics) = split(guarded(rpc, type_name, fut).await);
    diagnostics
}

/// Splits a handler result into (value, diagnostics) for responses that carry both.
fn split<T: Default>(r: DiagResult<T>) -> (T, Vec<pb::Diagnostic>) {
    match r {
        Ok(v) => (v, Vec::new()),
        Err(d) => (T::default(), convert::diagnostics(d)),
    }
}

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
fn respond<T: Failed>(result: DiagResult<T>) -> T {
    result.unwrap_or_else(T::failed)
}

type RpcResult<T> = Result<Response<T>, Status>;

/// Handlers report failures as diagnostics inside their response, so every RPC answers `Ok`.
fn reply<T>(response: T) -> RpcResult<T> {
    Ok(Response::new(response))
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for PluginServer<P> {
    async fn get_metadata(
        &self,
        _req: Request<pb::get_metadata::Request>,
    ) -> RpcResult<pb::get_metadata::Response> {
        reply(schema::get_metadata(self))
    }

    async fn get_provider_schema(
        &self,
        _req: Request<pb::get_provider_schema::Request>,
    ) -> RpcResult<pb::get_provider_schema::Response> {
        reply(schema::get_provider_schema(self))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> RpcResult<pb::validate_provider_config::Response> {
        reply(provider::validate_provider_config(self, req.into_inner()).await)
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> RpcResult<pb::validate_resource_config::Response> {
        reply(resource::validate_resource_config(self, req.into_inner()).await)
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> RpcResult<pb::validate_data_resource_config::Response> {
        reply(data_source::validate_data_resource_config(self, req.into_inner()).await)
    }

    async fn validate_ephemeral_resource_config(
        &self,
        req: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> RpcResult<pb::validate_ephemeral_resource_config::Response> {
        reply(ephemeral::validate_ephemeral_resource_config(self, req.into_inner()).await)
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> RpcResult<pb::upgrade_resource_state::Response> {
        reply(resource::upgrade_resource_state(self, req.into_inner()).await)
    }

    async fn validate_action_config(
        &self,
        req: Request<pb::validate_action_config::Request>,
    ) -> RpcResult<pb::validate_action_config::Response> {
        reply(action::validate_action_config(self, req.into_inner()).await)
    }

    async fn plan_action(
        &self,
        req: Request<pb::plan_action::Request>,
    ) -> RpcResult<pb::plan_action::Response> {
        reply(action::plan_action(self, req.into_inner()).await)
    }

    async fn invoke_action(
        &self,
        req: Request<pb::invoke_action::Request>,
    ) -> RpcResult<tonic::codegen::BoxStream<pb::invoke_action::Event>> {
        reply(action::invoke_action(self, req.into_inner()))
    }

    async fn validate_list_resource_config(
        &self,
        req: Request<pb::validate_list_resource_config::Request>,
    ) -> RpcResult<pb::validate_list_resource_config::Response> {
        reply(list::validate_list_resource_config(self, req.into_inner()).await)
    }

    async fn list_resource(
        &self,
        req: Request<pb::list_resource::Request>,
    ) -> RpcResult<tonic::codegen::BoxStream<pb::list_resource::Event>> {
        let events = list::list_resource(self, req.into_inner()).await;
        reply(Box::pin(tokio_stream::iter(events.into_iter().map(Ok))))
    }

    async fn get_resource_identity_schemas(
        &self,
        _req: Request<pb::get_resource_identity_schemas::Request>,
    ) -> RpcResult<pb::get_resource_identity_schemas::Response> {
        reply(schema::get_resource_identity_schemas(self))
    }

    async fn upgrade_resource_identity(
        &self,
        req: Request<pb::upgrade_resource_identity::Request>,
    ) -> RpcResult<pb::upgrade_resource_identity::Response> {
        reply(resource::upgrade_resource_identity(self, req.into_inner()).await)
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> RpcResult<pb::configure_provider::Response> {
        reply(provider::configure_provider(self, req.into_inner()).await)
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> RpcResult<pb::read_resource::Response> {
        reply(resource::read_resource(self, req.into_inner()).await)
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> RpcResult<pb::plan_resource_change::Response> {
        reply(resource::plan_resource_change(self, req.into_inner()).await)
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> RpcResult<pb::apply_resource_change::Response> {
        reply(resource::apply_resource_change(self, req.into_inner()).await)
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> RpcResult<pb::import_resource_state::Response> {
        reply(resource::import_resource_state(self, req.into_inner()).await)
    }

    async fn move_resource_state(
        &self,
        req: Request<pb::move_resource_state::Request>,
    ) -> RpcResult<pb::move_resource_state::Response> {
        reply(resource::move_resource_state(self, req.into_inner()).await)
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> RpcResult<pb::read_data_source::Response> {
        reply(data_source::read_data_source(self, req.into_inner()).await)
    }

    async fn open_ephemeral_resource(
        &self,
        req: Request<pb::open_ephemeral_resource::Request>,
    ) -> RpcResult<pb::open_ephemeral_resource::Response> {
        reply(ephemeral::open_ephemeral_resource(self, req.into_inner()).await)
    }

    async fn renew_ephemeral_resource(
        &self,
        req: Request<pb::renew_ephemeral_resource::Request>,
    ) -> RpcResult<pb::renew_ephemeral_resource::Response> {
        reply(ephemeral::renew_ephemeral_resource(self, req.into_inner()).await)
    }

    async fn close_ephemeral_resource(
        &self,
        req: Request<pb::close_ephemeral_resource::Request>,
    ) -> RpcResult<pb::close_ephemeral_resource::Response> {
        reply(ephemeral::close_ephemeral_resource(self, req.into_inner()).await)
    }

    async fn get_functions(
        &self,
        _req: Request<pb::get_functions::Request>,
    ) -> RpcResult<pb::get_functions::Response> {
        reply(schema::get_functions(self))
    }

    async fn call_function(
        &self,
        req: Request<pb::call_function::Request>,
    ) -> RpcResult<pb::call_function::Response> {
        reply(function::call_function(self, req.into_inner()).await)
    }

    async fn stop_provider(
        &self,
        _req: Request<pb::stop_provider::Request>,
    ) -> RpcResult<pb::stop_provider::Response> {
        reply(provider::stop_provider(self))
    }
}
