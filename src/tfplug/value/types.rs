//! cty types and their JSON form, which is how schemas declare attribute
//! types and how dynamic values carry their concrete type on the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::ValueError;
use super::json::{self, Json};
use super::path::AttrPath;

/// A cty type constraint. `Dynamic` stands for "any type, decided at runtime".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Number,
    String,
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(ObjectType),
    Tuple(Vec<Type>),
}

/// Attribute types of an object type. `optional` names attributes that a type
/// constraint lets callers omit; it only affects the type's JSON form (values
/// always carry every attribute).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ObjectType {
    pub attributes: BTreeMap<String, Type>,
    pub optional: BTreeSet<String>,
}

impl Type {
    pub fn object(attrs: impl IntoIterator<Item = (impl Into<String>, Type)>) -> Type {
        Type::Object(ObjectType {
            attributes: attrs.into_iter().map(|(k, t)| (k.into(), t)).collect(),
            optional: BTreeSet::new(),
        })
    }

    /// An object type whose listed attributes are optional.
    pub fn object_with_optional(
        attrs: impl IntoIterator<Item = (impl Into<String>, Type)>,
        optional: impl IntoIterator<Item = impl Into<String>>,
    ) -> Type {
        Type::Object(ObjectType {
            attributes: attrs.into_iter().map(|(k, t)| (k.into(), t)).collect(),
            optional: optional.into_iter().map(Into::into).collect(),
        })
    }

    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }

    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }

    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }

    pub fn tuple(elements: Vec<Type>) -> Type {
        Type::Tuple(elements)
    }

    pub fn is_primitive(&self) -> bool {
        matches!(self, Type::Bool | Type::Number | Type::String)
    }

    /// List, set or map: the types whose unknowns may carry length bounds.
    pub fn is_collection(&self) -> bool {
        matches!(self, Type::List(_) | Type::Set(_) | Type::Map(_))
    }

    /// Element type of a list, set or map.
    pub fn element_type(&self) -> Option<&Type> {
        match self {
            Type::List(t) | Type::Set(t) | Type::Map(t) => Some(t),
            _ => None,
        }
    }

    /// Attribute types of an object type.
    pub fn attribute_types(&self) -> Option<&BTreeMap<String, Type>> {
        match self {
            Type::Object(o) => Some(&o.attributes),
            _ => None,
        }
    }

    /// Whether `Dynamic` appears anywhere in the type.
    pub fn has_dynamic(&self) -> bool {
        match self {
            Type::Dynamic => true,
            Type::Bool | Type::Number | Type::String => false,
            Type::List(t) | Type::Set(t) | Type::Map(t) => t.has_dynamic(),
            Type::Object(o) => o.attributes.values().any(Type::has_dynamic),
            Type::Tuple(ts) => ts.iter().any(Type::has_dynamic),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        let kind = |k: &str, t: J| J::Array(vec![J::String(k.to_owned()), t]);
        match self {
            Type::Bool => J::String("bool".to_owned()),
            Type::Number => J::String("number".to_owned()),
            Type::String => J::String("string".to_owned()),
            Type::Dynamic => J::String("dynamic".to_owned()),
            Type::List(t) => kind("list", t.to_json()),
            Type::Set(t) => kind("set", t.to_json()),
            Type::Map(t) => kind("map", t.to_json()),
            Type::Tuple(ts) => kind("tuple", J::Array(ts.iter().map(Type::to_json).collect())),
            Type::Object(o) => {
                let attrs = o
                    .attributes
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                let mut parts = vec![J::String("object".to_owned()), J::Object(attrs)];
                if !o.optional.is_empty() {
                    parts.push(J::Array(
                        o.optional.iter().cloned().map(J::String).collect(),
                    ));
                }
                J::Array(parts)
            }
        }
    }

    /// Compact JSON, as schemas and dynamic values carry it.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write_json(&mut out);
        out.into_bytes()
    }

    pub(crate) fn write_json(&self, out: &mut String) {
        let kind = |k: &str, t: &Type, out: &mut String| {
            out.push_str("[\"");
            out.push_str(k);
            out.push_str("\",");
            t.write_json(out);
            out.push(']');
        };
        match self {
            Type::Bool => out.push_str("\"bool\""),
            Type::Number => out.push_str("\"number\""),
            Type::String => out.push_str("\"string\""),
            Type::Dynamic => out.push_str("\"dynamic\""),
            Type::List(t) => kind("list", t, out),
            Type::Set(t) => kind("set", t, out),
            Type::Map(t) => kind("map", t, out),
            Type::Tuple(ts) => {
                out.push_str("[\"tuple\",[");
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    t.write_json(out);
                }
                out.push_str("]]");
            }
            Type::Object(o) => {
                out.push_str("[\"object\",{");
                for (i, (name, t)) in o.attributes.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json::quote(name));
                    out.push(':');
                    t.write_json(out);
                }
                out.push('}');
                if !o.optional.is_empty() {
                    out.push_str(",[");
                    for (i, name) in o.optional.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&json::quote(name));
                    }
                    out.push(']');
                }
                out.push(']');
            }
        }
    }

    pub fn from_json_bytes(b: &[u8]) -> Result<Type, ValueError> {
        let root = AttrPath::root();
        let tree = json::parse(b, &root)?;
        Type::from_json_tree(&tree, &root, 0)
    }

    /// Same as [`Type::from_json_bytes`] for an already parsed document.
    pub fn from_json(v: &serde_json::Value) -> Result<Type, ValueError> {
        Type::from_json_tree(&Json::from_serde(v), &AttrPath::root(), 0)
    }

    /// `path` names the value whose type this is, for error messages.
    pub(crate) fn from_json_tree(
        j: &Json,
        path: &AttrPath,
        depth: usize,
    ) -> Result<Type, ValueError> {
        let bad = |reason: &'static str| ValueError::InvalidType {
            path: path.clone(),
            reason,
        };
        if depth > super::MAX_DEPTH {
            return Err(ValueError::TooDeep {
                path: path.clone(),
                limit: super::MAX_DEPTH,
            });
        }
        let parts = match j {
            Json::String(s) => {
                return match s.as_str() {
                    "bool" => Ok(Type::Bool),
                    "number" => Ok(Type::Number),
                    "string" => Ok(Type::String),
                    "dynamic" => Ok(Type::Dynamic),
                    _ => Err(bad("unknown primitive type name")),
                };
            }
            Json::Array(parts) => parts,
            _ => return Err(bad("expected a type name or a [kind, ...] array")),
        };
        let (Some(Json::String(kind)), Some(arg)) = (parts.first(), parts.get(1)) else {
            return Err(bad("expected a [kind, argument] array"));
        };
        let max_len = if kind == "object" { 3 } else { 2 };
        if parts.len() > max_len {
            return Err(bad("too many elements in type array"));
        }
        let inner = |t: &Json| Type::from_json_tree(t, path, depth + 1);
        match kind.as_str() {
            "list" => Ok(Type::list(inner(arg)?)),
            "set" => Ok(Type::set(inner(arg)?)),
            "map" => Ok(Type::map(inner(arg)?)),
            "tuple" => {
                let Json::Array(elems) = arg else {
                    return Err(bad("tuple element types must be an array"));
                };
                Ok(Type::Tuple(
                    elems.iter().map(inner).collect::<Result<_, _>>()?,
                ))
            }
            "object" => {
                let Json::Object(members) = arg else {
                    return Err(bad("object attribute types must be a JSON object"));
                };
                let mut attributes = BTreeMap::new();
                for (name, t) in members {
                    if attributes.insert(name.clone(), inner(t)?).is_some() {
                        return Err(bad("duplicate attribute in object type"));
                    }
                }
                let mut optional = BTreeSet::new();
                if let Some(opt) = parts.get(2) {
                    let Json::Array(names) = opt else {
                        return Err(bad("optional attribute list must be an array"));
                    };
                    for name in names {
                        let Json::String(name) = name else {
                            return Err(bad("optional attribute names must be strings"));
                        };
                        if !attributes.contains_key(name) {
                            return Err(bad(
                                "optional attribute is not an attribute of the object",
                            ));
                        }
                        optional.insert(name.clone());
                    }
                }
                Ok(Type::Object(ObjectType {
                    attributes,
                    optional,
                }))
            }
            _ => Err(bad("unknown type kind")),
        }
    }

    /// Short human-readable name for messages (`list of string`, `object`).
    pub fn friendly_name(&self) -> String {
        match self {
            Type::Bool => "bool".to_owned(),
            Type::Number => "number".to_owned(),
            Type::String => "string".to_owned(),
            Type::Dynamic => "dynamic".to_owned(),
            Type::List(t) => format!("list of {}", t.friendly_name()),
            Type::Set(t) => format!("set of {}", t.friendly_name()),
            Type::Map(t) => format!("map of {}", t.friendly_name()),
            Type::Object(_) => "object".to_owned(),
            Type::Tuple(_) => "tuple".to_owned(),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.friendly_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Type, ValueError> {
        Type::from_json_bytes(s.as_bytes())
    }

    #[test]
    fn json_forms() {
        let t = Type::object([
            ("a", Type::list(Type::String)),
            ("b", Type::Tuple(vec![Type::Number, Type::Bool])),
            ("c", Type::map(Type::set(Type::Dynamic))),
        ]);
        let text = r#"["object",{"a":["list","string"],"b":["tuple",["number","bool"]],"c":["map",["set","dynamic"]]}]"#;
        assert_eq!(String::from_utf8_lossy(&t.to_json_bytes()), text);
        assert_eq!(parse(text).ok(), Some(t.clone()));
        assert_eq!(
            serde_json::to_string(&t.to_json()).ok().as_deref(),
            Some(text)
        );
        assert_eq!(Type::from_json(&t.to_json()).ok(), Some(t));
    }

    #[test]
    fn optional_attributes() {
        let t = Type::object_with_optional([("a", Type::String), ("b", Type::Number)], ["b"]);
        let text = r#"["object",{"a":"string","b":"number"},["b"]]"#;
        assert_eq!(String::from_utf8_lossy(&t.to_json_bytes()), text);
        assert_eq!(parse(text).ok(), Some(t));
        assert!(parse(r#"["object",{"a":"string"},["z"]]"#).is_err());
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            r#""strin""#,
            r#"["list"]"#,
            r#"["list","string","x"]"#,
            r#"["tuple","string"]"#,
            r#"["object",["a"]]"#,
            r#"["object",{"a":"string","a":"bool"}]"#,
            r#"["frob","string"]"#,
            "7",
            r#""string" x"#,
        ] {
            assert!(parse(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn depth_is_bounded() {
        let nest = |n: usize| format!("{}\"string\"{}", "[\"list\",".repeat(n), "]".repeat(n));
        assert!(parse(&nest(64)).is_ok());
        assert!(matches!(parse(&nest(150)), Err(ValueError::TooDeep { .. })));
        assert!(parse(&"[".repeat(100_000)).is_err());
    }
}
