//! Small helpers shared by resource files: reading and building values, turning domain errors
//! into diagnostics, and reaching the configured clients.

use crate::gitlab::GitlabError;
use crate::kube::KubeError;
use crate::kube::engine::{ApplyOptions, DEFAULT_CONCURRENCY, EngineError};

use crate::tfplug::{AttrPath, DiagResult, Diagnostic, Diagnostics, Value};

/// A string attribute, `None` when null or unknown.
pub fn string(obj: &Value, name: &str) -> Option<String> {
    obj.get_attr(name)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A required string attribute (the schema guarantees it once known).
pub fn required_string(obj: &Value, name: &str) -> DiagResult<String> {
    string(obj, name).ok_or_else(|| {
        Diagnostic::error(
            "Missing value",
            format!("{name} must be known to perform this operation."),
        )
        .at(AttrPath::root().attr(name))
        .into()
    })
}

pub fn int(obj: &Value, name: &str) -> Option<i64> {
    obj.get_attr(name).and_then(Value::as_i64)
}

pub fn boolean(obj: &Value, name: &str) -> Option<bool> {
    obj.get_attr(name).and_then(Value::as_bool)
}

/// A list of strings; null elements are skipped.
pub fn strings(obj: &Value, name: &str) -> Vec<String> {
    obj.get_attr(name)
        .and_then(Value::as_list)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A nested object attribute, `None` when null.
pub fn object<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.get_attr(name).filter(|v| !v.is_null())
}

/// Builds an object value from pairs.
pub fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

/// Replaces one attribute of an object value.
pub fn set(obj: &mut Value, name: &str, value: Value) {
    if let Value::Object(fields) = obj {
        fields.insert(name.to_string(), value);
    }
}

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

pub fn engine_error(e: EngineError) -> Diagnostics {
    Diagnostic::error(e.summary(), e.detail()).into()
}

pub fn kube_error(e: KubeError) -> Diagnostics {
    Diagnostic::error(e.summary(), e.detail()).into()
}

/// `timeout` of a resource that applies through the engine, 5 minutes when unset.
pub fn engine_timeout(state: &Value) -> std::time::Duration {
    string(state, "timeout")
        .and_then(|t| parse_duration(&t))
        .unwrap_or(std::time::Duration::from_secs(300))
}

/// How the engine applies for a resource with `wait` and `timeout` attributes: taking over
/// fields other managers hold, since the resource owns these objects.
pub fn engine_options(state: &Value) -> ApplyOptions {
    ApplyOptions {
        force: true,
        wait: boolean(state, "wait").unwrap_or(true),
        timeout: engine_timeout(state),
        concurrency: DEFAULT_CONCURRENCY,
    }
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
