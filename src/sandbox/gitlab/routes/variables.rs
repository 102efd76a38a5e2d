//! CI/CD variables of projects and groups (`GROUP` picks which, so one handler serves both
//! routes): masking rules, hidden values never read back, uniqueness per (key, environment
//! scope), and the 409 GitLab returns when a key is ambiguous across scopes.

use axum::extract::{Path, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{
    ApiError, ApiResult, BodyParams, Params, QueryParams, created, no_content, ok, paginate,
};
use crate::sandbox::gitlab::state::{Caller, MAINTAINER, Variable};

/// A variable as the API shows it: the value of a hidden one never leaves.
pub(crate) fn variable_json(v: &Variable) -> Value {
    json!({
        "variable_type": v.variable_type,
        "key": v.key,
        "value": if v.hidden { Value::Null } else { json!(v.value) },
        "hidden": v.hidden,
        "protected": v.protected,
        "masked": v.masked,
        "raw": v.raw,
        "environment_scope": v.environment_scope,
        "description": v.description,
    })
}

/// `filter[environment_scope]` from the query string or `{"filter": {...}}` in a JSON body.
fn scope_filter(params: &Params) -> ApiResult<Option<String>> {
    if let Some(scope) = params.str("filter[environment_scope]")? {
        return Ok(Some(scope));
    }
    Ok(params
        .raw("filter")
        .and_then(|f| f.get("environment_scope"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

fn select(vars: &[Variable], key: &str, scope: Option<&str>) -> ApiResult<usize> {
    let matches: Vec<usize> = vars
        .iter()
        .enumerate()
        .filter(|(_, v)| v.key == key && scope.is_none_or(|s| v.environment_scope == s))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => Err(ApiError::not_found("Variable")),
        [one] => Ok(*one),
        _ => Err(ApiError::conflict(
            "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'",
        )),
    }
}

fn validate(v: &Variable) -> ApiResult<()> {
    if v.key.is_empty() {
        return Err(ApiError::invalid("key", "can't be blank"));
    }
    if v.key.len() > 255 {
        return Err(ApiError::invalid(
            "key",
            "is too long (maximum is 255 characters)",
        ));
    }
    if !v
        .key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::invalid(
            "key",
            "can contain only letters, digits and '_'.",
        ));
    }
    if v.masked && !maskable(&v.value, v.raw) {
        return Err(ApiError::invalid("value", "is invalid"));
    }
    if v.hidden && !v.masked {
        return Err(ApiError::invalid(
            "masked",
            "should be true when variable is hidden",
        ));
    }
    if v.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        return Err(ApiError::invalid(
            "description",
            "is too long (maximum is 255 characters)",
        ));
    }
    Ok(())
}

/// GitLab's masking rules: one line of at least 8 characters without spaces; unless the
/// variable is raw, only the Base64 alphabet (both RFC 4648 forms) and `@ : . ~`.
fn maskable(value: &str, raw: bool) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=/@:.~-".contains(c);
    value.chars().count() >= 8
        && !value.chars().any(char::is_whitespace)
        && (raw || value.chars().all(allowed))
}

fn variable_type(params: &Params) -> ApiResult<Option<String>> {
    match params.str("variable_type")? {
        Some(t) if t == "env_var" || t == "file" => Ok(Some(t)),
        Some(_) => Err(ApiError::param("variable_type does not have a valid value")),
        None => Ok(None),
    }
}

fn taken(key: &str) -> ApiError {
    ApiError::invalid("key", format!("({key}) has already been taken"))
}

/// Applies the updatable fields present in `params` (everything except `hidden`).
fn apply_fields(v: &mut Variable, params: &Params) -> ApiResult<()> {
    if let Some(value) = params.str("value")? {
        v.value = value;
    }
    if let Some(t) = variable_type(params)? {
        v.variable_type = t;
    }
    if let Some(scope) = params.str("environment_scope")? {
        v.environment_scope = scope;
    }
    if let Some(description) = params.str("description")? {
        v.description = Some(description);
    }
    for (name, field) in [
        ("protected", &mut v.protected),
        ("masked", &mut v.masked),
        ("raw", &mut v.raw),
    ] {
        if let Some(flag) = params.bool(name)? {
            *field = flag;
        }
    }
    Ok(())
}

pub(super) async fn list<const GROUP: bool>(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let items = emu.read(|w| {
        let vars = w.variables(&caller, GROUP, &id, MAINTAINER)?;
        Ok::<_, ApiError>(vars.iter().map(variable_json).collect())
    })?;
    paginate(items, &q, &uri, &emu.config().base_url)
}

pub(super) async fn get<const GROUP: bool>(
    State(emu): Emu,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    QueryParams(q): QueryParams,
) -> ApiResult {
    let scope = scope_filter(&q)?;
    let variable = emu.read(|w| {
        let vars = w.variables(&caller, GROUP, &id, MAINTAINER)?;
        let index = select(vars, &key, scope.as_deref())?;
        Ok::<_, ApiError>(variable_json(&vars[index]))
    })?;
    ok(variable)
}

pub(super) async fn create<const GROUP: bool>(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let params = q.merged(body);
    let hidden = params.bool("masked_and_hidden")?.unwrap_or(false);
    let mut variable = Variable {
        key: params.required_str("key")?,
        value: params.required_str("value")?,
        variable_type: "env_var".to_owned(),
        protected: false,
        masked: false,
        hidden,
        raw: false,
        environment_scope: "*".to_owned(),
        description: None,
    };
    apply_fields(&mut variable, &params)?;
    variable.masked |= hidden;
    let json = emu.write(|w| {
        let vars = w.variables_mut(&caller, GROUP, &id, MAINTAINER)?;
        validate(&variable)?;
        let duplicate = vars
            .iter()
            .any(|v| v.key == variable.key && v.environment_scope == variable.environment_scope);
        if duplicate {
            return Err(taken(&variable.key));
        }
        let json = variable_json(&variable);
        vars.push(variable);
        Ok(json)
    })?;
    created(json)
}

pub(super) async fn update<const GROUP: bool>(
    State(emu): Emu,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    QueryParams(q): QueryParams,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let params = q.merged(body);
    let scope = scope_filter(&params)?;
    let json = emu.write(|w| {
        let vars = w.variables_mut(&caller, GROUP, &id, MAINTAINER)?;
        let index = select(vars, &key, scope.as_deref())?;
        let mut updated = vars[index].clone();
        apply_fields(&mut updated, &params)?;
        validate(&updated)?;
        let clash = vars.iter().enumerate().any(|(i, v)| {
            i != index && v.key == updated.key && v.environment_scope == updated.environment_scope
        });
        if clash {
            return Err(taken(&updated.key));
        }
        let json = variable_json(&updated);
        vars[index] = updated;
        Ok(json)
    })?;
    ok(json)
}

pub(super) async fn delete<const GROUP: bool>(
    State(emu): Emu,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    QueryParams(q): QueryParams,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let scope = scope_filter(&q.merged(body))?;
    emu.write(|w| {
        let vars = w.variables_mut(&caller, GROUP, &id, MAINTAINER)?;
        let index = select(vars, &key, scope.as_deref())?;
        vars.remove(index);
        Ok(())
    })?;
    no_content()
}
