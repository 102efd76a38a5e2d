//! JSON form of cty values: raw resource state (UpgradeResourceState) and
//! JSON-encoded DynamicValues.
//!
//! Parsing is done here rather than with serde_json because numbers must keep
//! every digit (serde_json without `arbitrary_precision` rounds them to f64),
//! and because hostile input needs a hard nesting limit with our own error
//! type and path.

use std::collections::BTreeMap;

use super::number::Number;
use super::path::{AttrPath, PathStep};
use super::types::Type;
use super::value::Value;
use super::{MAX_DEPTH, ValueError};

/// A parsed JSON document. Numbers keep their source text; object members keep
/// their order and duplicates, so callers decide how to treat repeated keys.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn from_serde(v: &serde_json::Value) -> Json {
        use serde_json::Value as J;
        match v {
            J::Null => Json::Null,
            J::Bool(b) => Json::Bool(*b),
            J::Number(n) => Json::Number(n.to_string()),
            J::String(s) => Json::String(s.clone()),
            J::Array(a) => Json::Array(a.iter().map(Json::from_serde).collect()),
            J::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_serde(v)))
                    .collect(),
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "JSON boolean",
            Json::Number(_) => "JSON number",
            Json::String(_) => "JSON string",
            Json::Array(_) => "JSON array",
            Json::Object(_) => "JSON object",
        }
    }
}

/// `s` as a JSON string literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one JSON document; anything but whitespace after it is an error.
/// `path` locates the document within a larger value for error messages.
pub(crate) fn parse(bytes: &[u8], path: &AttrPath) -> Result<Json, ValueError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ValueError::Json {
        path: path.clone(),
        offset: e.valid_up_to(),
        reason: "invalid UTF-8",
    })?;
    let mut p = Parser { text, pos: 0, path };
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.err("unexpected data after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    path: &'a AttrPath,
}

impl Parser<'_> {
    fn err(&self, reason: &'static str) -> ValueError {
        ValueError::Json {
            path: self.path.clone(),
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), ValueError> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(reason))
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, ValueError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, ValueError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.enter(depth)?;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'{') => {
                self.enter(depth)?;
                let mut members = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("expected a string key"));
                    }
                    let key = self.string()?;
                    self.expect(b':', "expected ':'")?;
                    members.push((key, self.value(depth + 1)?));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), ValueError> {
        if depth >= MAX_DEPTH {
            return Err(ValueError::TooDeep {
                path: self.path.clone(),
                limit: MAX_DEPTH,
            });
        }
        self.pos += 1;
        Ok(())
    }

    fn number(&mut self) -> Result<Json, ValueError> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let digits = |p: &mut Self| {
            let from = p.pos;
            while bytes.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && bytes.get(int_start) == Some(&b'0')) {
            return Err(self.err("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(Json::Number(self.text[start..self.pos].to_owned()))
    }

    fn string(&mut self) -> Result<String, ValueError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run ends at an ASCII byte (or the end), so it is a char boundary.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ValueError> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        let v = u32::from_str_radix(hex, 16).map_err(|_| self.err("invalid \\u escape"))?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.err("invalid \\u escape"));
        }
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, ValueError> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if !self.text[self.pos..].starts_with("\\u") {
                return Err(self.err("unpaired surrogate in \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                return Err(self.err("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.err("unpaired surrogate in \\u escape"))
    }
}

/// How JSON maps to values.
#[derive(Clone, Copy)]
pub(crate) struct Mode {
    /// Drop object members that the type does not declare instead of failing.
    pub(crate) ignore_unknown_attributes: bool,
    /// Dynamic-typed positions hold plain JSON whose type is inferred, rather
    /// than the `{"value": ..., "type": ...}` wrapper.
    pub(crate) plain_dynamic: bool,
}

pub(crate) fn decode(bytes: &[u8], ty: &Type, mode: Mode) -> Result<Value, ValueError> {
    let mut path = AttrPath::root();
    let tree = parse(bytes, &path)?;
    decode_tree(&tree, ty, mode, &mut path, 0)
}

pub(crate) fn decode_tree(
    j: &Json,
    ty: &Type,
    mode: Mode,
    path: &mut AttrPath,
    depth: usize,
) -> Result<Value, ValueError> {
    if let Json::Null = j {
        return Ok(Value::Null);
    }
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep {
            path: path.clone(),
            limit: MAX_DEPTH,
        });
    }
    let mismatch = |path: &AttrPath| ValueError::TypeMismatch {
        path: path.clone(),
        expected: ty.friendly_name(),
        found: j.kind(),
    };
    let number = |s: &str, path: &AttrPath| {
        s.parse::<Number>()
            .map(Value::Number)
            .map_err(|_| ValueError::InvalidNumber { path: path.clone() })
    };
    match (ty, j) {
        (Type::Dynamic, _) if mode.plain_dynamic => {
            let implied = implied_type(j, path, depth)?;
            let v = decode_tree(j, &implied, mode, path, depth + 1)?;
            Ok(Value::Dynamic(implied, Box::new(v)))
        }
        (Type::Dynamic, Json::Object(members)) => {
            let mut type_json = None;
            let mut value_json = None;
            for (k, v) in members {
                let slot = match k.as_str() {
                    "type" => &mut type_json,
                    "value" => &mut value_json,
                    _ => {
                        return Err(ValueError::InvalidDynamic {
                            path: path.clone(),
                            reason: "only \"type\" and \"value\" are allowed",
                        });
                    }
                };
                if slot.replace(v).is_some() {
                    return Err(ValueError::DuplicateKey { path: path.clone() });
                }
            }
            let (Some(type_json), Some(value_json)) = (type_json, value_json) else {
                return Err(ValueError::InvalidDynamic {
                    path: path.clone(),
                    reason: "both \"type\" and \"value\" are required",
                });
            };
            let t = Type::from_json_tree(type_json, path, depth)?;
            let v = decode_tree(value_json, &t, mode, path, depth + 1)?;
            Ok(Value::Dynamic(t, Box::new(v)))
        }
        (Type::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::Bool, Json::String(s)) if s == "true" || s == "false" => {
            Ok(Value::Bool(s == "true"))
        }
        (Type::Number, Json::Number(s) | Json::String(s)) => number(s, path),
        (Type::String, Json::String(s)) => Ok(Value::String(s.clone())),
        // cty converts these primitives to strings when a string is expected.
        (Type::String, Json::Number(s)) => Ok(Value::String(s.clone())),
        (Type::String, Json::Bool(b)) => Ok(Value::String(b.to_string())),
        (Type::List(et) | Type::Set(et), Json::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i as i64));
                out.push(decode_tree(item, et, mode, path, depth + 1)?);
                path.pop();
            }
            Ok(if matches!(ty, Type::Set(_)) {
                Value::Set(out)
            } else {
                Value::List(out)
            })
        }
        (Type::Tuple(ets), Json::Array(items)) => {
            if items.len() != ets.len() {
                return Err(ValueError::TupleLength {
                    path: path.clone(),
                    expected: ets.len(),
                    found: items.len() as u64,
                });
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                path.push(PathStep::Index(i as i64));
                out.push(decode_tree(item, et, mode, path, depth + 1)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        (Type::Map(et), Json::Object(members)) => {
            let mut out = BTreeMap::new();
            for (k, item) in members {
                path.push(PathStep::Key(k.clone()));
                let v = decode_tree(item, et, mode, path, depth + 1)?;
                if out.insert(k.clone(), v).is_some() {
                    return Err(ValueError::DuplicateKey { path: path.clone() });
                }
                path.pop();
            }
            Ok(Value::Map(out))
        }
        (Type::Object(ot), Json::Object(members)) => {
            let mut out = BTreeMap::new();
            for (k, item) in members {
                path.push(PathStep::Attr(k.clone()));
                let Some(at) = ot.attributes.get(k) else {
                    if mode.ignore_unknown_attributes {
                        path.pop();
                        continue;
                    }
                    return Err(ValueError::UnexpectedAttribute { path: path.clone() });
                };
                let v = decode_tree(item, at, mode, path, depth + 1)?;
                if out.insert(k.clone(), v).is_some() {
                    return Err(ValueError::DuplicateKey { path: path.clone() });
                }
                path.pop();
            }
            // State written by an older schema may lack newer attributes.
            for name in ot.attributes.keys() {
                if !out.contains_key(name) {
                    out.insert(name.clone(), Value::Null);
                }
            }
            Ok(Value::Object(out))
        }
        _ => Err(mismatch(path)),
    }
}

/// The type cty infers for plain JSON: arrays are tuples, objects are objects,
/// and null is dynamic.
fn implied_type(j: &Json, path: &AttrPath, depth: usize) -> Result<Type, ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep {
            path: path.clone(),
            limit: MAX_DEPTH,
        });
    }
    Ok(match j {
        Json::Null => Type::Dynamic,
        Json::Bool(_) => Type::Bool,
        Json::Number(_) => Type::Number,
        Json::String(_) => Type::String,
        Json::Array(items) => Type::Tuple(
            items
                .iter()
                .map(|i| implied_type(i, path, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(members) => {
            let mut attrs = BTreeMap::new();
            for (k, v) in members {
                if attrs
                    .insert(k.clone(), implied_type(v, path, depth + 1)?)
                    .is_some()
                {
                    return Err(ValueError::DuplicateKey { path: path.clone() });
                }
            }
            Type::Object(super::types::ObjectType {
                attributes: attrs,
                optional: Default::default(),
            })
        }
    })
}

pub(crate) fn encode(v: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    let mut out = String::new();
    encode_into(v, ty, &mut AttrPath::root(), &mut out, 0)?;
    Ok(out.into_bytes())
}

fn encode_into(
    v: &Value,
    ty: &Type,
    path: &mut AttrPath,
    out: &mut String,
    depth: usize,
) -> Result<(), ValueError> {
    if depth > MAX_DEPTH {
        return Err(ValueError::TooDeep {
            path: path.clone(),
            limit: MAX_DEPTH,
        });
    }
    let nonconforming = |path: &AttrPath| ValueError::NonConforming {
        path: path.clone(),
        expected: ty.friendly_name(),
        found: v.kind(),
    };
    match (ty, v) {
        (_, Value::Unknown(_)) => return Err(ValueError::UnknownInJson { path: path.clone() }),
        (_, Value::Null) => out.push_str("null"),
        (Type::Dynamic, Value::Dynamic(t, inner)) => {
            out.push_str("{\"value\":");
            encode_into(inner, t, path, out, depth + 1)?;
            out.push_str(",\"type\":");
            t.write_json(out);
            out.push('}');
        }
        (Type::Bool, Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        (Type::Number, Value::Number(n)) => {
            if n.is_nan() {
                return Err(nonconforming(path));
            }
            if n.is_infinite() {
                return Err(ValueError::InfinityInJson { path: path.clone() });
            }
            out.push_str(&n.to_string());
        }
        (Type::String, Value::String(s)) => push_quoted(out, s),
        (Type::List(et), Value::List(items)) | (Type::Set(et), Value::Set(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(PathStep::Index(i as i64));
                encode_into(item, et, path, out, depth + 1)?;
                path.pop();
            }
            out.push(']');
        }
        (Type::Tuple(ets), Value::Tuple(items)) => {
            if ets.len() != items.len() {
                return Err(ValueError::TupleLength {
                    path: path.clone(),
                    expected: ets.len(),
                    found: items.len() as u64,
                });
            }
            out.push('[');
            for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                path.push(PathStep::Index(i as i64));
                encode_into(item, et, path, out, depth + 1)?;
                path.pop();
            }
            out.push(']');
        }
        (Type::Map(et), Value::Map(entries)) => {
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_quoted(out, k);
                out.push(':');
                path.push(PathStep::Key(k.clone()));
                encode_into(item, et, path, out, depth + 1)?;
                path.pop();
            }
            out.push('}');
        }
        (Type::Object(ot), Value::Object(attrs)) => {
            super::value::check_attribute_names(attrs, ot, path)?;
            out.push('{');
            for (i, (name, at)) in ot.attributes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_quoted(out, name);
                out.push(':');
                path.push(PathStep::Attr(name.clone()));
                let item = attrs
                    .get(name)
                    .ok_or_else(|| ValueError::MissingAttribute { path: path.clone() })?;
                encode_into(item, at, path, out, depth + 1)?;
                path.pop();
            }
            out.push('}');
        }
        _ => return Err(nonconforming(path)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Json, ValueError> {
        parse(s.as_bytes(), &AttrPath::root())
    }

    #[test]
    fn parser_accepts_json() {
        assert_eq!(
            p(r#" {"a": [1, -2.5e3, true, false, null], "b\u00e9\ud83d\ude00": "x\ny"} "#).ok(),
            Some(Json::Object(vec![
                (
                    "a".to_owned(),
                    Json::Array(vec![
                        Json::Number("1".to_owned()),
                        Json::Number("-2.5e3".to_owned()),
                        Json::Bool(true),
                        Json::Bool(false),
                        Json::Null,
                    ])
                ),
                ("bé😀".to_owned(), Json::String("x\ny".to_owned())),
            ]))
        );
    }

    #[test]
    fn parser_rejects_malformed() {
        for s in [
            "",
            "[",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "\"abc",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\u{1}\"",
            "[1] 2",
            "{1:2}",
            "'a'",
            "\"\\u12\"",
            "\"\\u+123\"",
        ] {
            assert!(p(s).is_err(), "{s:?} should be rejected");
        }
        assert!(parse(b"\"\xff\"", &AttrPath::root()).is_err());
    }

    #[test]
    fn quoting_round_trips() {
        for s in ["", "plain", "q\"b\\s/", "\u{0}\u{1f}\n\t", "é😀"] {
            assert_eq!(p(&quote(s)).ok(), Some(Json::String(s.to_owned())));
        }
    }
}
