//! The traits a provider implements: provider, resources, data sources, ephemeral resources
//! and functions. They speak in schema + values only; the RPC plumbing lives in `server`.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::diag::{DiagResult, Diagnostic, Diagnostics};
use super::identity::IdentitySchema;
use super::schema::Schema;
use super::value::{AttrPath, Type, Value, decode_json_lenient};

/// What every handler gets: the configured provider data and the stop signal.
pub struct Ctx<D> {
    provider: Option<Arc<D>>,
    cancel: CancellationToken,
    warnings: Mutex<Diagnostics>,
    partial: Mutex<Option<NewState>>,
}

impl<D> Ctx<D> {
    pub fn new(provider: Option<Arc<D>>, cancel: CancellationToken) -> Self {
        Self {
            provider,
            cancel,
            warnings: Mutex::new(Diagnostics::new()),
            partial: Mutex::new(None),
        }
    }

    /// The configured provider, or an error when Terraform has not configured it yet
    /// (validation runs before configuration).
    pub fn provider(&self) -> DiagResult<&D> {
        self.provider.as_deref().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "This operation needs the provider configuration, but Terraform has not \
                 configured the provider yet. This is a bug in the provider; please report it.",
            )
            .into()
        })
    }

    /// Cancelled when Terraform calls StopProvider (Ctrl-C); long operations must watch it.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Adds a warning to the response without failing the operation.
    pub fn warn(&self, d: Diagnostic) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(d);
        }
    }

    /// The state to save if this update fails: the progress it made (Terraform keeps the
    /// prior state otherwise). For updates only: a create that fails with state is tainted.
    pub fn keep_partial_state(&self, state: NewState) {
        if let Ok(mut p) = self.partial.lock() {
            *p = Some(state);
        }
    }

    pub(crate) fn take_partial_state(&self) -> Option<NewState> {
        self.partial.lock().ok().and_then(|mut p| p.take())
    }

    pub(crate) fn take_warnings(&self) -> Diagnostics {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

/// Facts about the calling Terraform, given at configure time.
#[derive(Clone, Debug, Default)]
pub struct ConfigureInfo {
    pub terraform_version: String,
    /// Cancelled when Terraform calls StopProvider: clients built at configure time hold it
    /// so that every in-flight request stops promptly.
    pub stop: CancellationToken,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Shared clients and settings built at configure time.
    type Data: Send + Sync + 'static;

    /// The provider type name, e.g. `gitlabflux`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    async fn configure(&self, config: &Value, info: &ConfigureInfo) -> DiagResult<Self::Data>;
    fn resources(&self) -> Vec<Arc<dyn Resource<Self::Data>>>;
    fn data_sources(&self) -> Vec<Arc<dyn DataSource<Self::Data>>> {
        Vec::new()
    }
    fn ephemeral_resources(&self) -> Vec<Arc<dyn EphemeralResource<Self::Data>>> {
        Vec::new()
    }
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        Vec::new()
    }
    fn list_resources(&self) -> Vec<Arc<dyn ListResource<Self::Data>>> {
        Vec::new()
    }
    fn actions(&self) -> Vec<Arc<dyn Action<Self::Data>>> {
        Vec::new()
    }
}

/// State plus the provider's opaque private data for one resource instance.
#[derive(Clone, Debug, PartialEq)]
pub struct NewState {
    pub state: Value,
    pub private: Vec<u8>,
}

impl NewState {
    pub fn new(state: Value) -> Self {
        Self {
            state,
            private: Vec::new(),
        }
    }
}

/// The plan being built for one resource instance; `modify_plan` may change any of it.
#[derive(Debug)]
pub struct PlanContext {
    pub prior: Value,
    pub config: Value,
    pub planned: Value,
    pub requires_replace: Vec<AttrPath>,
    pub prior_private: Vec<u8>,
    pub planned_private: Vec<u8>,
}

impl PlanContext {
    pub fn is_create(&self) -> bool {
        self.prior.is_null()
    }
    pub fn is_destroy(&self) -> bool {
        self.planned.is_null()
    }
}

#[derive(Debug)]
pub struct ApplyRequest {
    pub prior: Value,
    pub planned: Value,
    pub config: Value,
    pub private: Vec<u8>,
}

#[derive(Debug)]
pub struct MoveRequest {
    pub source_provider_address: String,
    pub source_type_name: String,
    pub source_schema_version: i64,
    pub source_state_json: Vec<u8>,
    pub source_private: Vec<u8>,
}

#[async_trait]
pub trait Resource<D: Send + Sync + 'static>: Send + Sync + 'static {
    /// The full resource type name, e.g. `gitlabflux_agent`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// The resource's identity (Terraform 1.12+); `None` for a resource without one.
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }

    /// Cross-attribute checks; per-attribute validators run before this.
    async fn validate(&self, _ctx: &Ctx<D>, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    /// Adjusts the plan after defaults, computed values and RequiresReplace were applied.
    async fn modify_plan(&self, _ctx: &Ctx<D>, _plan: &mut PlanContext) -> DiagResult<()> {
        Ok(())
    }
    async fn create(&self, ctx: &Ctx<D>, req: ApplyRequest) -> DiagResult<NewState>;
    /// `None` means the object is gone; Terraform then plans to create it again.
    async fn read(&self, ctx: &Ctx<D>, current: NewState) -> DiagResult<Option<NewState>>;
    async fn update(&self, ctx: &Ctx<D>, req: ApplyRequest) -> DiagResult<NewState>;
    async fn delete(&self, ctx: &Ctx<D>, prior: NewState) -> DiagResult<()>;

    /// Turns an import ID into a state that `read` then completes.
    async fn import(&self, _ctx: &Ctx<D>, _id: &str) -> DiagResult<NewState> {
        Err(Diagnostic::error(
            "Import not supported",
            format!("{} cannot be imported.", self.type_name()),
        )
        .into())
    }

    /// Upgrades stored state from an older schema `version` into `current`, the value type of
    /// the current schema. Called only for older versions: the server decodes current state
    /// itself and refuses newer. The default reads the old state as current, dropping
    /// attributes the schema no longer has.
    fn upgrade_state(&self, _version: i64, raw_json: &[u8], current: &Type) -> DiagResult<Value> {
        decode_state(raw_json, current)
    }

    async fn move_state(&self, _ctx: &Ctx<D>, req: MoveRequest) -> DiagResult<NewState> {
        Err(Diagnostic::error(
            "Move not supported",
            format!(
                "{} cannot take over state from {}.",
                self.type_name(),
                req.source_type_name
            ),
        )
        .into())
    }
}

/// One remote object a list resource found, by the import ID of the managed resource of the
/// same type name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// What `terraform query` shows for it.
    pub display_name: String,
    pub import_id: String,
}

/// A list resource (Terraform 1.14+, `terraform query`): finds the remote objects that the
/// managed resource of the same type name could manage. The server imports and reads each
/// one through that resource, so results carry the identity and state it would hold.
#[async_trait]
pub trait ListResource<D: Send + Sync + 'static>: Send + Sync + 'static {
    /// The managed resource's type name.
    fn type_name(&self) -> &'static str;
    /// The attributes of the query's `config` block.
    fn schema(&self) -> Schema;
    async fn validate(&self, _ctx: &Ctx<D>, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    async fn list(&self, ctx: &Ctx<D>, config: &Value) -> DiagResult<Vec<Found>>;
}

/// Where an action's progress goes while it runs: each message reaches Terraform's output
/// as it is reported.
#[derive(Clone)]
pub struct Progress(tokio::sync::mpsc::UnboundedSender<String>);

impl Progress {
    pub(crate) fn new(sender: tokio::sync::mpsc::UnboundedSender<String>) -> Self {
        Self(sender)
    }

    /// A line of progress. Terraform stopped listening only when the action is over, so a
    /// message it no longer takes is dropped.
    pub fn report(&self, message: impl Into<String>) {
        let _ = self.0.send(message.into());
    }
}

/// An action (Terraform 1.14+): an operation run on demand (`terraform apply -invoke`) or by
/// a resource's `action_trigger`, which reports progress and changes no resource state.
#[async_trait]
pub trait Action<D: Send + Sync + 'static>: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _ctx: &Ctx<D>, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    /// Checks at plan what can be checked before anything runs.
    async fn plan(&self, _ctx: &Ctx<D>, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    async fn invoke(&self, ctx: &Ctx<D>, config: &Value, progress: &Progress) -> DiagResult<()>;
}

/// Decodes JSON state against a type, with a diagnostic that names the problem.
pub fn decode_state(raw_json: &[u8], ty: &Type) -> DiagResult<Value> {
    decode_json_lenient(raw_json, ty).map_err(|e| {
        Diagnostic::error(
            "Unreadable resource state",
            format!("The stored state does not match the schema: {e}"),
        )
        .into()
    })
}

#[async_trait]
pub trait DataSource<D: Send + Sync + 'static>: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _ctx: &Ctx<D>, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    async fn read(&self, ctx: &Ctx<D>, config: &Value) -> DiagResult<Value>;
}

/// The result of opening an ephemeral resource.
#[derive(Debug)]
pub struct Opened {
    pub result: Value,
    pub private: Vec<u8>,
    pub renew_at: Option<SystemTime>,
}

#[async_trait]
pub trait EphemeralResource<D: Send + Sync + 'static>: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate(&self, _ctx: &Ctx<D>, _config: &Value) -> DiagResult<()> {
        Ok(())
    }
    async fn open(&self, ctx: &Ctx<D>, config: &Value) -> DiagResult<Opened>;
    /// Returns the new private data and next renewal time.
    async fn renew(
        &self,
        _ctx: &Ctx<D>,
        private: Vec<u8>,
    ) -> DiagResult<(Vec<u8>, Option<SystemTime>)> {
        Ok((private, None))
    }
    async fn close(&self, _ctx: &Ctx<D>, _private: Vec<u8>) -> DiagResult<()> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct Parameter {
    pub name: &'static str,
    pub ty: Type,
    pub description: &'static str,
    pub allow_null: bool,
    pub allow_unknown: bool,
}

impl Parameter {
    pub fn new(name: &'static str, ty: Type, description: &'static str) -> Self {
        Self {
            name,
            ty,
            description,
            allow_null: false,
            allow_unknown: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct FunctionSignature {
    pub parameters: Vec<Parameter>,
    pub variadic: Option<Parameter>,
    pub return_type: Type,
    pub summary: &'static str,
    /// Markdown.
    pub description: &'static str,
}

/// A function failure as Terraform shows it; `argument` is the zero-based parameter index.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{text}")]
pub struct FunctionError {
    pub text: String,
    pub argument: Option<i64>,
}

impl FunctionError {
    pub fn argument(index: i64, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            argument: Some(index),
        }
    }
}

/// Provider functions run on an unconfigured provider instance, so they get no context.
pub trait Function: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn signature(&self) -> FunctionSignature;
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError>;
}
