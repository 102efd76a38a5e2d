//! cty values: what Terraform sends and expects back for configuration,
//! plans and state, including unknown values and their refinements.

use std::collections::BTreeMap;

use super::ValueError;
use super::json::{self, Json, Mode};
use super::number::Number;
use super::path::{AttrPath, PathStep};
use super::types::{ObjectType, Type};

/// What is known about an unknown value (see Terraform's object wire format).
/// Only refinements that apply to the value's type are sent: `string_prefix`
/// to strings, number bounds to numbers, length bounds to lists, sets and
/// maps; unknowns of dynamic type carry none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refinements {
    /// The final value is definitely not null.
    pub not_null: bool,
    /// The final string starts with this (an empty prefix is not sent).
    pub string_prefix: Option<String>,
    /// Lower bound of the final number, and whether it is inclusive.
    pub number_lower: Option<(Number, bool)>,
    /// Upper bound of the final number, and whether it is inclusive.
    pub number_upper: Option<(Number, bool)>,
    /// Inclusive lower bound of the final collection's length.
    pub length_lower: Option<u64>,
    /// Inclusive upper bound of the final collection's length.
    pub length_upper: Option<u64>,
}

impl Refinements {
    pub fn is_empty(&self) -> bool {
        *self == Refinements::default()
    }
}

/// A cty value. Values are untyped; the type comes from the schema (or, for
/// dynamic attributes, travels inside [`Value::Dynamic`]).
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Unknown(Refinements),
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Elements in no particular order; equality ignores order.
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    /// Every attribute of the object type is present (null if unset).
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
    /// A value in a position whose schema type is dynamic, with its concrete
    /// type. Usually known and non-null; a wire value may also carry a typed
    /// null or unknown here, which is kept so it encodes back unchanged. An
    /// untyped null/unknown in a dynamic position is plain `Null`/`Unknown`.
    Dynamic(Type, Box<Value>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Unknown(a), Value::Unknown(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a == b,
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => a == b,
            (Value::Set(a), Value::Set(b)) => same_elements(a, b),
            (Value::Dynamic(ta, a), Value::Dynamic(tb, b)) => ta == tb && a == b,
            _ => false,
        }
    }
}

/// Multiset equality; quadratic, which is fine for the set sizes of provider
/// schemas and needs no ordering or hashing of values.
fn same_elements(a: &[Value], b: &[Value]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = b
            .iter()
            .enumerate()
            .find(|(i, y)| !used[*i] && x == *y)
            .map(|(i, _)| i);
        match found {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

impl Value {
    pub fn unknown() -> Value {
        Value::Unknown(Refinements::default())
    }

    /// An unknown that is known not to be null.
    pub fn unknown_not_null() -> Value {
        Value::Unknown(Refinements {
            not_null: true,
            ..Refinements::default()
        })
    }

    /// A known value of a dynamic attribute, tagged with its concrete type.
    pub fn dynamic(ty: Type, v: Value) -> Value {
        Value::Dynamic(ty, Box::new(v))
    }

    /// Through any dynamic wrapper to the underlying value.
    pub fn peel(&self) -> &Value {
        match self {
            Value::Dynamic(_, inner) => inner.peel(),
            v => v,
        }
    }

    fn peel_mut(&mut self) -> &mut Value {
        match self {
            Value::Dynamic(_, inner) => inner.peel_mut(),
            v => v,
        }
    }

    /// Null, looking through a dynamic wrapper.
    pub fn is_null(&self) -> bool {
        matches!(self.peel(), Value::Null)
    }

    /// Whether this node (not its children) is known, looking through a
    /// dynamic wrapper.
    pub fn is_known(&self) -> bool {
        !matches!(self.peel(), Value::Unknown(_))
    }

    /// Whether this value and everything inside it is known.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown(_) => false,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
            Value::List(vs) | Value::Set(vs) | Value::Tuple(vs) => {
                vs.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, inner) => inner.is_wholly_known(),
        }
    }

    pub fn get_attr(&self, name: &str) -> Option<&Value> {
        match self.peel() {
            Value::Object(attrs) => attrs.get(name),
            _ => None,
        }
    }

    pub fn get_attr_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self.peel_mut() {
            Value::Object(attrs) => attrs.get_mut(name),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self.peel() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.peel() {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self.peel() {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_number().and_then(Number::as_i64)
    }

    /// Elements of a list, set or tuple.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self.peel() {
            Value::List(vs) | Value::Set(vs) | Value::Tuple(vs) => Some(vs),
            _ => None,
        }
    }

    /// Entries of a map or attributes of an object.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self.peel() {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// Refinements of an unknown value.
    pub fn refinements(&self) -> Option<&Refinements> {
        match self.peel() {
            Value::Unknown(r) => Some(r),
            _ => None,
        }
    }

    /// Short description of the variant for error messages (never the content).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Unknown(_) => "unknown value",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Tuple(_) => "tuple",
            Value::Dynamic(..) => "dynamic value",
        }
    }

    /// Whether the value can be encoded as `ty`: right shape all the way
    /// down, every object attribute present and no others. Null and unknown
    /// conform to every type; in a dynamic position a known value must be
    /// wrapped in [`Value::Dynamic`].
    pub fn conforms_to(&self, ty: &Type) -> bool {
        self.check(ty, &mut AttrPath::root(), 0).is_ok()
    }

    /// Like [`Value::conforms_to`], saying where and why it does not.
    pub fn check_conforms(&self, ty: &Type) -> Result<(), ValueError> {
        self.check(ty, &mut AttrPath::root(), 0)
    }

    fn check(&self, ty: &Type, path: &mut AttrPath, depth: usize) -> Result<(), ValueError> {
        if depth > super::MAX_DEPTH {
            return Err(ValueError::TooDeep {
                path: path.clone(),
                limit: super::MAX_DEPTH,
            });
        }
        let nonconforming = |path: &AttrPath| ValueError::NonConforming {
            path: path.clone(),
            expected: ty.friendly_name(),
            found: self.kind(),
        };
        match (ty, self) {
            (_, Value::Null | Value::Unknown(_)) => Ok(()),
            (Type::Dynamic, Value::Dynamic(t, inner)) => inner.check(t, path, depth + 1),
            (Type::Bool, Value::Bool(_)) | (Type::String, Value::String(_)) => Ok(()),
            (Type::Number, Value::Number(n)) if !n.is_nan() => Ok(()),
            (Type::List(et), Value::List(items)) | (Type::Set(et), Value::Set(items)) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(PathStep::Index(i as i64));
                    item.check(et, path, depth + 1)?;
                    path.pop();
                }
                Ok(())
            }
            (Type::Tuple(ets), Value::Tuple(items)) => {
                if ets.len() != items.len() {
                    return Err(ValueError::TupleLength {
                        path: path.clone(),
                        expected: ets.len(),
                        found: items.len() as u64,
                    });
                }
                for (i, (item, et)) in items.iter().zip(ets).enumerate() {
                    path.push(PathStep::Index(i as i64));
                    item.check(et, path, depth + 1)?;
                    path.pop();
                }
                Ok(())
            }
            (Type::Map(et), Value::Map(entries)) => {
                for (k, item) in entries {
                    path.push(PathStep::Key(k.clone()));
                    item.check(et, path, depth + 1)?;
                    path.pop();
                }
                Ok(())
            }
            (Type::Object(ot), Value::Object(attrs)) => {
                check_attribute_names(attrs, ot, path)?;
                for (name, at) in &ot.attributes {
                    path.push(PathStep::Attr(name.clone()));
                    let item = attrs
                        .get(name)
                        .ok_or_else(|| ValueError::MissingAttribute { path: path.clone() })?;
                    item.check(at, path, depth + 1)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(nonconforming(path)),
        }
    }

    /// The value at `path`, looking through dynamic wrappers. Set elements
    /// have no address, so a path cannot enter a set.
    pub fn walk(&self, path: &AttrPath) -> Option<&Value> {
        let mut cur = self;
        for step in path.steps() {
            cur = match (step, cur.peel()) {
                (PathStep::Attr(name), Value::Object(attrs)) => attrs.get(name)?,
                (PathStep::Key(k), Value::Map(entries)) => entries.get(k)?,
                (PathStep::Index(i), Value::List(items) | Value::Tuple(items)) => {
                    items.get(usize::try_from(*i).ok()?)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }

    pub fn walk_mut(&mut self, path: &AttrPath) -> Option<&mut Value> {
        let mut cur = self;
        for step in path.steps() {
            cur = match (step, cur.peel_mut()) {
                (PathStep::Attr(name), Value::Object(attrs)) => attrs.get_mut(name)?,
                (PathStep::Key(k), Value::Map(entries)) => entries.get_mut(k)?,
                (PathStep::Index(i), Value::List(items) | Value::Tuple(items)) => {
                    items.get_mut(usize::try_from(*i).ok()?)?
                }
                _ => return None,
            };
        }
        Some(cur)
    }

    /// Plain JSON without type information: `None` if anything inside is
    /// unknown or an infinite/NaN number. Dynamic values are unwrapped and sets
    /// become arrays. Numbers that fit neither i64/u64 nor f64 exactly are
    /// rounded to f64 (serde_json's limit).
    pub fn to_plain_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            Value::Unknown(_) => return None,
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Number(if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                serde_json::Number::from_f64(n.as_f64())?
            }),
            Value::String(s) => J::String(s.clone()),
            Value::List(vs) | Value::Set(vs) | Value::Tuple(vs) => {
                J::Array(vs.iter().map(Value::to_plain_json).collect::<Option<_>>()?)
            }
            Value::Map(m) | Value::Object(m) => J::Object(
                m.iter()
                    .map(|(k, v)| Some((k.clone(), v.to_plain_json()?)))
                    .collect::<Option<_>>()?,
            ),
            Value::Dynamic(_, inner) => inner.to_plain_json()?,
        })
    }

    /// Inverse of [`Value::to_plain_json`] for a known type. Missing object
    /// attributes become null; undeclared ones are an error. A dynamic
    /// position takes the type cty would infer (arrays become tuples, objects
    /// become objects).
    pub fn from_plain_json(v: &serde_json::Value, ty: &Type) -> Result<Value, ValueError> {
        let mode = Mode {
            ignore_unknown_attributes: false,
            plain_dynamic: true,
        };
        json::decode_tree(&Json::from_serde(v), ty, mode, &mut AttrPath::root(), 0)
    }
}

/// Errors for attributes present in a value but not declared by its type.
pub(crate) fn check_attribute_names(
    attrs: &BTreeMap<String, Value>,
    ot: &ObjectType,
    path: &AttrPath,
) -> Result<(), ValueError> {
    match attrs.keys().find(|k| !ot.attributes.contains_key(*k)) {
        Some(extra) => Err(ValueError::UnexpectedAttribute {
            path: path.clone().attr(extra),
        }),
        None => Ok(()),
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Number(Number::from(i))
    }
}

impl From<Number> for Value {
    fn from(n: Number) -> Value {
        Value::Number(n)
    }
}

/// `None` becomes null.
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn sets_compare_without_order() {
        let a = Value::Set(vec!["a".into(), "b".into(), "b".into()]);
        let b = Value::Set(vec!["b".into(), "a".into(), "b".into()]);
        let c = Value::Set(vec!["b".into(), "a".into(), "a".into()]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            Value::List(vec!["a".into(), "b".into()]),
            Value::List(vec!["b".into(), "a".into()])
        );
        assert_eq!(Value::from(1), Value::Number(Number::from(1.0)));
    }

    #[test]
    fn accessors_see_through_dynamic() {
        let inner = obj(&[("id", Value::from(7)), ("name", "x".into())]);
        let ty = Type::object([("id", Type::Number), ("name", Type::String)]);
        let v = Value::dynamic(ty, inner);
        assert_eq!(v.get_attr("id").and_then(Value::as_i64), Some(7));
        assert_eq!(v.get_attr("name").and_then(Value::as_str), Some("x"));
        assert!(v.is_known() && !v.is_null() && v.is_wholly_known());
        assert!(!Value::dynamic(Type::String, Value::unknown()).is_known());
        assert!(Value::from(None::<bool>).is_null());
    }

    #[test]
    fn walk_and_walk_mut() {
        let mut v = obj(&[
            ("tags", Value::Map([("a".to_string(), "1".into())].into())),
            ("groups", Value::List(vec![obj(&[("id", Value::from(3))])])),
            ("s", Value::Set(vec![Value::from(1)])),
        ]);
        let p = AttrPath::root().attr("groups").index(0).attr("id");
        assert_eq!(v.walk(&p).and_then(Value::as_i64), Some(3));
        assert_eq!(
            v.walk(&AttrPath::root().attr("tags").key("a"))
                .and_then(Value::as_str),
            Some("1")
        );
        assert!(v.walk(&AttrPath::root().attr("s").index(0)).is_none());
        assert!(v.walk(&AttrPath::root().attr("groups").index(-1)).is_none());
        assert!(v.walk(&AttrPath::root().attr("nope")).is_none());
        if let Some(slot) = v.walk_mut(&p) {
            *slot = Value::from(4);
        }
        assert_eq!(v.walk(&p).and_then(Value::as_i64), Some(4));
        assert!(v.is_wholly_known());
        if let Some(slot) = v.walk_mut(&AttrPath::root().attr("tags")) {
            *slot = Value::unknown();
        }
        assert!(!v.is_wholly_known());
    }

    #[test]
    fn conformance() {
        let ty = Type::object([("a", Type::String), ("b", Type::list(Type::Number))]);
        assert!(
            obj(&[("a", "x".into()), ("b", Value::List(vec![Value::from(1)]))]).conforms_to(&ty)
        );
        assert!(obj(&[("a", Value::Null), ("b", Value::unknown())]).conforms_to(&ty));
        assert!(!obj(&[("a", "x".into())]).conforms_to(&ty));
        assert!(
            !obj(&[("a", "x".into()), ("b", Value::Null), ("c", Value::Null)]).conforms_to(&ty)
        );
        assert!(!obj(&[("a", Value::from(1)), ("b", Value::Null)]).conforms_to(&ty));
        assert!(!Value::from("x").conforms_to(&Type::Dynamic));
        assert!(Value::dynamic(Type::String, "x".into()).conforms_to(&Type::Dynamic));
        assert!(!Value::dynamic(Type::String, Value::from(1)).conforms_to(&Type::Dynamic));
        assert!(!Value::Number(Number::from(f64::NAN)).conforms_to(&Type::Number));
        let err = obj(&[
            ("a", "x".into()),
            ("b", Value::List(vec![Value::from(true)])),
        ])
        .check_conforms(&ty)
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("at b[0]: value does not conform: expected number, found bool")
        );
    }

    #[test]
    fn plain_json() {
        let ty = Type::object([
            ("n", Type::Number),
            ("l", Type::set(Type::String)),
            ("d", Type::Dynamic),
            ("missing", Type::Bool),
        ]);
        let j: serde_json::Value =
            serde_json::json!({"n": 1.5, "l": ["a"], "d": {"x": [1, "y", null]}});
        let v = Value::from_plain_json(&j, &ty);
        let Ok(v) = v else { panic!("{v:?}") };
        assert_eq!(v.get_attr("missing"), Some(&Value::Null));
        let dyn_ty = Type::object([(
            "x",
            Type::Tuple(vec![Type::Number, Type::String, Type::Dynamic]),
        )]);
        assert!(matches!(v.get_attr("d"), Some(Value::Dynamic(t, _)) if *t == dyn_ty));
        let mut expected = j.clone();
        expected["missing"] = serde_json::Value::Null;
        assert_eq!(v.to_plain_json(), Some(expected));
        assert!(Value::from_plain_json(&serde_json::json!({"zzz": 1}), &ty).is_err());
        assert_eq!(obj(&[("a", Value::unknown())]).to_plain_json(), None);
    }
}
