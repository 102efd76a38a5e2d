//! Typed models at the protocol boundary: a resource declares a serde struct whose fields are
//! its schema's attributes, decodes configuration, plans and state into it, and encodes its
//! new state from it. Attribute names then live in one place (the struct), and a value that
//! does not fit is a diagnostic on the attribute, never a panic or a silent default.
//!
//! Conventions, so that models stay small:
//! - An unknown value reads as absent: an `Option` field is `None`, anything else fails with
//!   "not known yet" on its path. Apply-time plans hold unknowns only in computed attributes,
//!   which the resource is about to set; plan-time code that must tell unknown from null
//!   asks [`PlanContext::knows`] (or checks the [`Value`] itself), keeps unknowns with
//!   [`PlanContext::set_planned`], and settles a few attributes of a plan that does not
//!   decode whole yet with [`PlanContext::set_planned_part`].
//! - Encoding needs no type: lists, objects and nulls come out untyped, and the server
//!   converts them to the schema's type (list to set, object to map) when it answers.
//! - Defaults are the schema's: planned values already hold them, so a field whose attribute
//!   has a default is not an `Option` and restates nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::diag::{DiagResult, Diagnostic};
use super::resource::{NewState, PlanContext};
use super::value::{AttrPath, PathStep, Type, Value, ValueError};

impl Value {
    /// Decodes this value into a typed model; the error names the attribute that did not fit.
    pub fn decode<T: DeserializeOwned>(&self) -> DiagResult<T> {
        let json = model_json(self);
        serde_path_to_error::deserialize(json).map_err(|e| {
            let path = attr_path(self, e.path());
            let unknown = self.walk(&path).is_some_and(|v| !v.is_known());
            // serde's own message may quote the value, and values may be secrets: say only
            // where the mismatch is.
            let diagnostic = if unknown {
                Diagnostic::error(
                    "Value not known yet",
                    format!("{path} must be known to perform this operation."),
                )
            } else {
                Diagnostic::error(
                    "Unusable attribute value",
                    format!(
                        "The value of {path} cannot be used here: null elements in lists and \
                         maps, and fractions where a whole number belongs, are not accepted. If \
                         the value is none of these, this is a bug in the provider; please \
                         report it."
                    ),
                )
            };
            diagnostic.at(path).into()
        })
    }

    /// Whether these top-level attributes are wholly known: a model reads unknown as absent,
    /// so code that must tell them apart asks first.
    pub fn knows(&self, attributes: &[&str]) -> bool {
        attributes
            .iter()
            .all(|name| self.get_attr(name).is_none_or(Value::is_wholly_known))
    }

    /// Encodes a typed model as an untyped value (see the module doc).
    pub fn encode<T: Serialize>(model: &T) -> DiagResult<Value> {
        let json = serde_json::to_value(model).map_err(|e| {
            Diagnostic::error(
                "Cannot encode resource state",
                format!(
                    "The provider could not encode its state: {e}. This is a bug in the provider."
                ),
            )
        })?;
        Ok(untyped(&json))
    }

    /// Converts an untyped value (as [`Value::encode`] makes) to `ty`: lists become sets or
    /// tuples, objects become maps, missing object attributes become null. Unknowns stay.
    pub fn conform(self, ty: &Type) -> Result<Value, ValueError> {
        conform(self, ty, &mut AttrPath::root())
    }
}

impl NewState {
    /// New state from a typed model, with no private data.
    pub fn encode<T: Serialize>(model: &T) -> DiagResult<NewState> {
        Ok(NewState::new(Value::encode(model)?))
    }

    /// The same state with the provider's private data attached.
    pub fn with_private(mut self, private: Vec<u8>) -> NewState {
        self.private = private;
        self
    }
}

impl PlanContext {
    /// Replaces the planned state with `model`, keeping unknown every value the plan had as
    /// unknown where the model has nothing: a model decoded from the plan reads an unknown as
    /// `None`, and writing it back must not turn it into null. So `None` here means "not
    /// known", never "null": to plan a known null, use [`Self::overlay`].
    pub fn set_planned<T: Serialize>(&mut self, model: &T) -> DiagResult<()> {
        let new = Value::encode(model)?;
        self.planned = keep_unknowns(new, &self.planned);
        Ok(())
    }

    /// Sets the top-level attributes `partial` has (a struct of some of the resource's
    /// attributes) to exactly its values, null included, and leaves the others as planned.
    /// Unlike [`Self::set_planned_part`], a null here replaces an unknown: for values the
    /// plan knows, such as facts carried over from the prior state.
    pub fn overlay<T: Serialize>(&mut self, partial: &T) -> DiagResult<()> {
        if let (Value::Object(fields), Value::Object(planned)) =
            (Value::encode(partial)?, &mut self.planned)
        {
            planned.extend(fields);
        }
        Ok(())
    }

    /// Like [`Self::set_planned`] for the attributes `part` has, leaving the others as they
    /// were planned: a whole model does not decode while some of its required attributes are
    /// still unknown, yet the plan may already settle others.
    pub fn set_planned_part<T: Serialize>(&mut self, part: &T) -> DiagResult<()> {
        let Value::Object(new) = Value::encode(part)? else {
            return Err(Diagnostic::error(
                "Cannot encode the plan",
                "A part of the plan did not encode as an object. This is a bug in the provider.",
            )
            .into());
        };
        if let Value::Object(fields) = &mut self.planned {
            for (name, value) in new {
                let old = fields.remove(&name).unwrap_or(Value::Null);
                fields.insert(name, keep_unknowns(value, &old));
            }
        }
        Ok(())
    }

    /// Marks top-level computed attributes unknown: their values will change on apply.
    pub fn mark_unknown(&mut self, attributes: &[&str]) {
        if let Value::Object(fields) = &mut self.planned {
            for name in attributes {
                if let Some(slot) = fields.get_mut(*name) {
                    *slot = Value::unknown();
                }
            }
        }
    }

    /// Whether the named top-level attributes are wholly known in the plan: decoding reads an
    /// unknown as absent, so plan-time checks that must not mistake one for the other ask
    /// first.
    pub fn knows(&self, attributes: &[&str]) -> bool {
        self.planned.knows(attributes)
    }
}

/// Plain JSON for serde, with unknowns as null (see the module doc).
fn model_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null | Value::Unknown(_) => J::Null,
        Value::Dynamic(_, inner) => model_json(inner),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            J::Array(items.iter().map(model_json).collect())
        }
        Value::Map(m) | Value::Object(m) => {
            J::Object(m.iter().map(|(k, v)| (k.clone(), model_json(v))).collect())
        }
        known => known.to_plain_json().unwrap_or(J::Null),
    }
}

/// serde's path, with each step typed by what the value holds there (an object's attribute
/// or a map's key; serde says "map" for both).
fn attr_path(root: &Value, path: &serde_path_to_error::Path) -> AttrPath {
    use serde_path_to_error::Segment;
    let mut out = AttrPath::root();
    let mut at = Some(root);
    for segment in path.iter() {
        let step = match segment {
            Segment::Seq { index } => PathStep::Index(*index as i64),
            Segment::Map { key } | Segment::Enum { variant: key } => match at.map(Value::peel) {
                Some(Value::Map(_)) => PathStep::Key(key.clone()),
                _ => PathStep::Attr(key.clone()),
            },
            Segment::Unknown => break,
        };
        at = at.and_then(|v| v.walk(&AttrPath(vec![step.clone()])));
        out.push(step);
    }
    out
}

fn untyped(json: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::from_plain_json(json, &Type::Number)
            .unwrap_or_else(|_| Value::String(n.to_string())),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::List(items.iter().map(untyped).collect()),
        J::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), untyped(v))).collect()),
    }
}

fn conform(v: Value, ty: &Type, path: &mut AttrPath) -> Result<Value, ValueError> {
    let mismatch = |path: &AttrPath, found: &'static str| ValueError::TypeMismatch {
        path: path.clone(),
        expected: ty.friendly_name(),
        found,
    };
    Ok(match (v, ty) {
        (v @ (Value::Null | Value::Unknown(_)), _) => v,
        (v, Type::Dynamic) => v,
        (Value::List(items) | Value::Set(items) | Value::Tuple(items), Type::List(elem)) => {
            Value::List(conform_all(items, elem, path)?)
        }
        (Value::List(items) | Value::Set(items) | Value::Tuple(items), Type::Set(elem)) => {
            Value::Set(conform_all(items, elem, path)?)
        }
        (Value::List(items) | Value::Tuple(items), Type::Tuple(elems)) => {
            if items.len() != elems.len() {
                return Err(mismatch(path, "a tuple of another length"));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, elem)) in items.into_iter().zip(elems).enumerate() {
                path.push(PathStep::Index(i as i64));
                out.push(conform(item, elem, path)?);
                path.pop();
            }
            Value::Tuple(out)
        }
        (Value::Object(m) | Value::Map(m), Type::Map(elem)) => {
            let mut out = BTreeMap::new();
            for (k, item) in m {
                path.push(PathStep::Key(k.clone()));
                out.insert(k, conform(item, elem, path)?);
                path.pop();
            }
            Value::Map(out)
        }
        (Value::Object(mut m), Type::Object(ot)) => {
            if let Some(extra) = m.keys().find(|k| !ot.attributes.contains_key(*k)) {
                return Err(ValueError::UnexpectedAttribute {
                    path: path.clone().attr(extra),
                });
            }
            let mut out = BTreeMap::new();
            for (name, attr_ty) in &ot.attributes {
                let item = m.remove(name).unwrap_or(Value::Null);
                path.push(PathStep::Attr(name.clone()));
                out.insert(name.clone(), conform(item, attr_ty, path)?);
                path.pop();
            }
            Value::Object(out)
        }
        (v, _) if v.conforms_to(ty) => v,
        (_, _) => return Err(mismatch(path, "a value of another type")),
    })
}

fn conform_all(
    items: Vec<Value>,
    elem: &Type,
    path: &mut AttrPath,
) -> Result<Vec<Value>, ValueError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        path.push(PathStep::Index(i as i64));
        out.push(conform(item, elem, path)?);
        path.pop();
    }
    Ok(out)
}

/// `new`, except where it is null and `old` is unknown at the same place.
fn keep_unknowns(new: Value, old: &Value) -> Value {
    match (new, old) {
        (Value::Null, Value::Unknown(r)) => Value::Unknown(r.clone()),
        (Value::Object(mut m), Value::Object(o)) => {
            for (k, v) in m.iter_mut() {
                if let Some(prev) = o.get(k) {
                    *v = keep_unknowns(std::mem::replace(v, Value::Null), prev);
                }
            }
            Value::Object(m)
        }
        (Value::List(items), Value::List(o) | Value::Set(o)) if items.len() == o.len() => {
            Value::List(
                items
                    .into_iter()
                    .zip(o)
                    .map(|(n, p)| keep_unknowns(n, p))
                    .collect(),
            )
        }
        (new, _) => new,
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Inner {
        name: String,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Model {
        id: Option<String>,
        count: i64,
        inner: Option<Inner>,
        items: Vec<Inner>,
        labels: Option<BTreeMap<String, String>>,
    }

    fn ty() -> Type {
        let inner = Type::object([("name", Type::String), ("tags", Type::set(Type::String))]);
        Type::object([
            ("id", Type::String),
            ("count", Type::Number),
            ("inner", inner.clone()),
            ("items", Type::list(inner)),
            ("labels", Type::map(Type::String)),
        ])
    }

    fn value(json: &str) -> Value {
        let json: serde_json::Value = serde_json::from_str(json).expect("json");
        Value::from_plain_json(&json, &ty()).expect("value")
    }

    #[test]
    fn round_trip_through_the_schema_type() {
        let v = value(
            r#"{"id": "a", "count": 2, "inner": {"name": "n", "tags": ["x", "y"]},
                "items": [{"name": "m", "tags": null}], "labels": {"k": "v"}}"#,
        );
        let m: Model = v.decode().expect("decode");
        assert_eq!(m.inner.as_ref().map(|i| i.name.as_str()), Some("n"));
        let back = Value::encode(&m)
            .expect("encode")
            .conform(&ty())
            .expect("conform");
        assert_eq!(back, v);
        assert!(matches!(back.get_attr("labels"), Some(Value::Map(_))));
    }

    #[test]
    fn a_misfit_names_its_attribute_and_not_its_value() {
        let mut v = value(r#"{"count": 1, "items": [{"name": "m"}]}"#);
        if let Some(Value::List(items)) = v.get_attr_mut("items")
            && let Some(Value::Object(item)) = items.first_mut()
        {
            item.insert("name".into(), Value::Bool(true));
        }
        let err = v.decode::<Model>().expect_err("misfit");
        let d = err.iter().next().expect("diagnostic");
        assert_eq!(
            d.attribute.as_ref().map(ToString::to_string).as_deref(),
            Some("items[0].name")
        );
        assert!(!d.detail.contains("true"), "{}", d.detail);
    }

    #[test]
    fn unknowns_read_as_absent_and_required_ones_fail_as_not_known() {
        let mut v = value(r#"{"count": 1, "items": []}"#);
        if let Value::Object(fields) = &mut v {
            fields.insert("id".into(), Value::unknown());
        }
        let m: Model = v.decode().expect("unknown optional");
        assert_eq!(m.id, None);
        if let Value::Object(fields) = &mut v {
            fields.insert("count".into(), Value::unknown());
        }
        let err = v.decode::<Model>().expect_err("unknown required");
        let d = err.iter().next().expect("diagnostic");
        assert_eq!(d.summary, "Value not known yet");
        assert_eq!(d.attribute, Some(AttrPath::root().attr("count")));
    }

    fn plan_of(planned: Value) -> PlanContext {
        PlanContext {
            prior: Value::Null,
            config: Value::Null,
            planned,
            requires_replace: Vec::new(),
            prior_private: Vec::new(),
            planned_private: Vec::new(),
        }
    }

    #[test]
    fn set_planned_keeps_what_the_plan_did_not_know() {
        let mut planned = value(r#"{"count": 1, "items": []}"#);
        if let Value::Object(fields) = &mut planned {
            fields.insert("id".into(), Value::unknown());
        }
        let mut plan = plan_of(planned);
        let mut m: Model = plan.planned.decode().expect("decode");
        m.count = 3;
        plan.set_planned(&m).expect("set");
        assert!(!plan.planned.get_attr("id").expect("id").is_known());
        assert_eq!(plan.planned.get_attr("count"), Some(&Value::from(3_i64)));
        #[derive(Serialize)]
        struct Partial {
            id: &'static str,
        }
        plan.overlay(&Partial { id: "x" }).expect("overlay");
        assert_eq!(plan.planned.get_attr("id"), Some(&Value::from("x")));
        assert_eq!(plan.planned.get_attr("count"), Some(&Value::from(3_i64)));
        plan.mark_unknown(&["count"]);
        assert!(!plan.planned.get_attr("count").expect("count").is_known());
        assert!(!plan.knows(&["items", "count"]));
        assert!(plan.knows(&["items"]));
    }

    #[test]
    fn set_planned_part_settles_some_attributes_while_others_are_unknown() {
        #[derive(Serialize)]
        struct Part {
            id: Option<String>,
            labels: Option<BTreeMap<String, String>>,
        }
        let mut planned = value(r#"{"id": "a", "items": []}"#);
        if let Value::Object(fields) = &mut planned {
            fields.insert("count".into(), Value::unknown());
            fields.insert("labels".into(), Value::unknown());
        }
        let mut plan = plan_of(planned);
        assert!(
            plan.planned.decode::<Model>().is_err(),
            "count is not known yet"
        );
        let part = Part {
            id: Some("b".into()),
            labels: None,
        };
        plan.set_planned_part(&part).expect("set");
        assert_eq!(plan.planned.get_attr("id"), Some(&Value::from("b")));
        assert!(!plan.planned.get_attr("count").expect("count").is_known());
        assert!(!plan.planned.get_attr("labels").expect("labels").is_known());
        assert!(matches!(
            plan.planned.get_attr("items"),
            Some(Value::List(_))
        ));
    }

    #[test]
    fn conform_refuses_what_the_type_does_not_declare() {
        let v = Value::Object(BTreeMap::from([("nope".to_string(), Value::Null)]));
        assert!(matches!(
            v.conform(&ty()),
            Err(ValueError::UnexpectedAttribute { .. })
        ));
    }
}
