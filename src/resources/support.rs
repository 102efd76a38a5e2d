//! Small helpers shared by resource files: import IDs, composing typed models, turning domain
//! errors into diagnostics on their attribute, durations, and the engine lifecycle of
//! resources that own their objects.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::ProviderData;
use crate::agent::AgentError;
use crate::flux::reconcile;
use crate::gitlab::GitlabError;
use crate::kube::engine::{ApplyOptions, EngineError, Lifecycle};
use crate::kube::syntax::{is_data_key, is_dns_label, is_dns_subdomain};
use crate::kube::{KubeClient, KubeError};

use crate::tfplug::plan::fill_defaults;
use crate::tfplug::{
    AttrPath, Ctx, DiagResult, Diagnostic, Diagnostics, PlanContext, Schema, Value,
};

/// Splits a two-part import ID at the last `sep` (project paths contain `/`, names do not
/// contain `:`); `format` is shown in the error, e.g. `<project path>:<agent name>`.
pub fn split_import_id<'a>(
    id: &'a str,
    sep: char,
    format: &str,
    example: &str,
) -> DiagResult<(&'a str, &'a str)> {
    id.rsplit_once(sep)
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| {
            Diagnostic::error(
                "Invalid import ID",
                format!("Expected {format}, like {example}; got \"{id}\"."),
            )
            .into()
        })
}

pub fn gitlab_error(e: GitlabError) -> Diagnostics {
    Diagnostic::error(e.summary(), e.detail()).into()
}

/// An agent-domain failure, on the attribute of the input it concerns. Every agent resource
/// names those inputs alike (`project`, `name`, `config`, `config_branch`, `kas_address`).
pub fn agent_error(e: AgentError) -> Diagnostics {
    let at = match &e {
        AgentError::Project(_) => Some("project"),
        AgentError::AgentNotFound { .. } | AgentError::Exists { .. } => Some("name"),
        AgentError::Config(_) => Some("config"),
        AgentError::NoAgentServer => Some("kas_address"),
        AgentError::NoBranch { .. } => Some("config_branch"),
        AgentError::Engine(EngineError::Foreign { .. }) => Some("adopt_existing"),
        _ => None,
    };
    let d = Diagnostic::error(e.summary(), e.detail());
    match at {
        Some(attr) => d.at(AttrPath::root().attr(attr)),
        None => d,
    }
    .into()
}

pub fn engine_error(e: EngineError) -> Diagnostics {
    Diagnostic::error(e.summary(), e.detail()).into()
}

/// An engine error of a first apply, pointing at `adopt_existing` when objects were in the way.
pub fn adopt_error(e: EngineError) -> Diagnostics {
    let d = Diagnostic::error(e.summary(), e.detail());
    match e {
        EngineError::Foreign { .. } => d.at(AttrPath::root().attr("adopt_existing")).into(),
        _ => d.into(),
    }
}

/// The `adopt_existing` description shared by the owners of object sets.
pub const ADOPT_EXISTING: &str = "Take over objects of this resource that already exist and \
    were installed by something else (by hand, `flux bootstrap`, Helm) on the first apply \
    (destroying the resource then deletes them). Off: such an apply fails, names them and \
    applies nothing. Objects this provider applied in an earlier apply that was cut short are \
    its own and taken over either way. Namespaces never count.";

/// Now, as the credentials' `rotated_at`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Whether a rotating credential's `rotation` block asks for a new one: its `trigger`
/// changed, or the credential (from state's `rotated_at`, else `created_at`) is older than
/// the planned `rotate_after`. Compares the plan's raw values, because a trigger still unknown
/// at plan time counts as changed.
pub fn rotation_requested(prior: &Value, planned: &Value) -> bool {
    let trigger = |v: &Value| {
        v.walk(&AttrPath::root().attr("rotation").attr("trigger"))
            .cloned()
    };
    if trigger(prior) != trigger(planned) {
        return true;
    }
    #[derive(serde::Deserialize)]
    struct Age {
        rotated_at: Option<String>,
        created_at: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Policy {
        rotation: Option<RotateAfter>,
    }
    #[derive(serde::Deserialize)]
    struct RotateAfter {
        rotate_after: Option<String>,
    }
    let after = planned
        .decode::<Policy>()
        .ok()
        .and_then(|p| p.rotation?.rotate_after)
        .and_then(|s| parse_duration(&s));
    let made = prior
        .decode::<Age>()
        .ok()
        .and_then(|a| a.rotated_at.or(a.created_at))
        .and_then(|t| humantime::parse_rfc3339_weak(&t).ok());
    match (after, made) {
        (Some(after), Some(made)) => std::time::SystemTime::now()
            .duration_since(made)
            .is_ok_and(|age| age >= after),
        _ => false,
    }
}

/// Plans a rotating credential's computed facts (`F`, named `names`): unknown when an update
/// is `due` to touch the credential, else what state holds, so a plan without a rotation is
/// clean. Creates and destroys plan nothing here.
pub fn plan_credential_facts<F>(plan: &mut PlanContext, due: bool, names: &[&str]) -> DiagResult<()>
where
    F: DeserializeOwned + Serialize,
{
    if plan.is_create() || plan.is_destroy() {
        return Ok(());
    }
    if due {
        plan.mark_unknown(names);
        return Ok(());
    }
    let facts: F = plan.prior.decode()?;
    plan.overlay(&facts)
}

/// The `status` state records, as rotating resources read it to plan.
pub fn prior_status(prior: &Value) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Status {
        status: Option<String>,
    }
    prior.decode::<Status>().ok().and_then(|s| s.status)
}

/// Private state of the resources that tag what they create: the tag made at create.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct TagPrivate {
    pub tag: Option<String>,
}

impl TagPrivate {
    pub fn decode(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Describes `reconcile_on_change` on the resources that apply Flux objects.
pub const RECONCILE_ON_CHANGE: &str = "When an apply changes this resource, annotate its \
    sources and Kustomizations `reconcile.fluxcd.io/requestedAt` so Flux acts now rather than at \
    its next interval; with `wait`, the apply waits (within `timeout`) until each has handled \
    that request and is Ready.";

/// Asks Flux to reconcile the sources and appliers among `objects` now; with `wait`, waits
/// until each handled the request and is Ready, within what is left of `timeout` for the
/// apply that `started`. A failure is reported on `timeout`.
pub async fn reconcile_applied(
    ctx: &Ctx<ProviderData>,
    client: &KubeClient,
    objects: &[serde_json::Value],
    wait: bool,
    timeout: &str,
    started: std::time::Instant,
) -> DiagResult<()> {
    let targets = reconcile::reconcilable(objects);
    let outcome = if wait {
        let timeout = parse_duration(timeout).unwrap_or(std::time::Duration::from_secs(300));
        let left = timeout.saturating_sub(started.elapsed());
        reconcile::now(client, &targets, left, ctx.cancelled()).await
    } else if targets.is_empty() {
        Ok(())
    } else {
        reconcile::request(client, &targets).await.map(drop)
    };
    outcome.map_err(|e| {
        Diagnostic::error(e.summary(), e.detail())
            .at(AttrPath::root().attr("timeout"))
            .into()
    })
}

pub fn kube_error(e: KubeError) -> Diagnostics {
    Diagnostic::error(e.summary(), e.detail()).into()
}

/// The engine lifecycle of a resource with `wait`, `timeout` and a keep-namespaces setting.
pub fn lifecycle(wait: bool, timeout: &str, keep_namespaces: bool) -> Lifecycle {
    // A state stored before `timeout` was validated may hold one that does not parse; the
    // engine's own bound serves it until the configuration is fixed.
    let timeout = parse_duration(timeout).unwrap_or(ApplyOptions::default().timeout);
    Lifecycle::owner(wait, timeout, keep_namespaces)
}

/// A resource's model: the inputs it renders from and its own attributes. Each part decodes
/// the value on its own, because serde's `flatten` buffers what it passes on and a misfit
/// there would lose its attribute path; both encode as one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model<I, O> {
    #[serde(flatten)]
    pub inputs: I,
    #[serde(flatten)]
    pub own: O,
}

impl<I: DeserializeOwned, O: DeserializeOwned> Model<I, O> {
    pub fn decode(value: &Value) -> DiagResult<Self> {
        Ok(Self {
            inputs: value.decode()?,
            own: value.decode()?,
        })
    }
}

/// `config` with the schema's defaults where it is null, as a plan would hold it: for what
/// reads a configuration before any plan (validation, data sources).
pub fn with_defaults(schema: &Schema, config: &Value) -> Value {
    let mut value = config.clone();
    fill_defaults(&schema.block, &mut value);
    value
}

/// A state as the server hands it over: `json` read with the schema's type, defaults filled.
#[cfg(test)]
pub fn test_state(schema: &Schema, json: serde_json::Value) -> Value {
    let mut value = Value::from_plain_json(&json, &schema.value_type()).expect("fits the schema");
    fill_defaults(&schema.block, &mut value);
    value
}

/// Decodes `state` with `decode`, asserts that the model encodes back to `state` exactly,
/// and returns the model.
#[cfg(test)]
pub fn round_trip<M: Serialize>(
    schema: &Schema,
    state: &Value,
    decode: impl Fn(&Value) -> DiagResult<M>,
) -> M {
    let model = decode(state).expect("decodes");
    let back = Value::encode(&model)
        .expect("encodes")
        .conform(&schema.value_type())
        .expect("conforms");
    assert_eq!(&back, state);
    model
}

/// A duration like `720h`, `10m`, `90s` (Go-style units h, m, s).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    (number.is_empty() && !text.is_empty()).then_some(std::time::Duration::from_secs(total))
}

/// Validator for [`parse_duration`] strings.
pub fn duration_validator(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    if let Some(s) = v.as_str()
        && parse_duration(s).is_none()
    {
        diags.error_at(
            path.clone(),
            "Invalid duration",
            format!("{path} must be a duration like \"720h\", \"10m\" or \"1h30m\"."),
        );
    }
}

/// Validator for namespace names and other DNS-1123 labels.
pub fn dns_label_validator(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    syntax_check(
        v,
        path,
        diags,
        is_dns_label,
        "a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
    );
}

/// Validator for object names (DNS-1123 subdomains): Secrets, Deployments, service accounts.
pub fn object_name_validator(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    syntax_check(
        v,
        path,
        diags,
        is_dns_subdomain,
        "an object name: at most 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
    );
}

/// Validator for Secret data keys.
pub fn data_key_validator(v: &Value, path: &AttrPath, diags: &mut Diagnostics) {
    syntax_check(
        v,
        path,
        diags,
        is_data_key,
        "a Secret key: at most 253 letters, digits, '-', '_' or '.'",
    );
}

fn syntax_check(
    v: &Value,
    path: &AttrPath,
    diags: &mut Diagnostics,
    valid: fn(&str) -> bool,
    what: &str,
) {
    if let Some(s) = v.as_str()
        && !valid(s)
    {
        diags.error_at(
            path.clone(),
            "Invalid Kubernetes name",
            format!("{path} must be {what}."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("720h"),
            Some(std::time::Duration::from_secs(720 * 3600))
        );
        assert_eq!(
            parse_duration("1h30m"),
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_duration("10m"),
            Some(std::time::Duration::from_secs(600))
        );
        for bad in ["", "10", "10d", "h", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
