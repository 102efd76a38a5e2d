//! Resource identity (Terraform 1.12+): a small, versioned object that names a remote object
//! independently of the rest of the state, returned by read, plan, apply and import, and
//! accepted by `import { to = ..., identity = { ... } }`.
//!
//! A resource declares its identity as attributes each read from a path of its state, so the
//! server derives the identity everywhere from the state the resource already produces:
//! a resource cannot answer one thing in its state and another in its identity. Importing by
//! identity goes through the resource's import ID, so both ways of importing share one
//! lookup.

use super::diag::{DiagResult, Diagnostic};
use super::value::{Type, Value};

/// One attribute of an identity.
#[derive(Clone, Debug)]
pub struct IdentityAttribute {
    pub name: &'static str,
    /// `String` or `Number`.
    pub ty: Type,
    /// Where in the resource's state the value is: attribute names, and list indexes as
    /// numbers (`["namespaces", "0"]`).
    pub state_path: &'static [&'static str],
    /// Whether `import { identity = ... }` must give it (otherwise the provider finds it).
    pub required_for_import: bool,
    pub description: &'static str,
}

impl IdentityAttribute {
    /// A string read from the top-level state attribute of the same name, required for
    /// import.
    pub fn string(name: &'static str, state_path: &'static [&'static str]) -> Self {
        Self {
            name,
            ty: Type::String,
            state_path,
            required_for_import: true,
            description: "",
        }
    }

    /// A number, as [`IdentityAttribute::string`].
    pub fn number(name: &'static str, state_path: &'static [&'static str]) -> Self {
        Self {
            ty: Type::Number,
            ..Self::string(name, state_path)
        }
    }

    pub fn description(mut self, markdown: &'static str) -> Self {
        self.description = markdown;
        self
    }

    /// Not needed to import: the import finds it, or it does not name the object.
    pub fn optional_for_import(mut self) -> Self {
        self.required_for_import = false;
        self
    }
}

/// The identity of a resource type and how an identity becomes its import ID.
#[derive(Clone, Debug)]
pub struct IdentitySchema {
    pub version: i64,
    pub attributes: Vec<IdentityAttribute>,
    /// The import ID an identity stands for, from the identity's values in attribute order
    /// (numbers written as integers, an absent optional part as "").
    pub import_id: fn(&[String]) -> String,
}

impl IdentitySchema {
    /// The object type of identity values.
    pub fn value_type(&self) -> Type {
        Type::object(self.attributes.iter().map(|a| (a.name, a.ty.clone())))
    }

    /// The identity of `state`: null for a null state, and unknown attributes while the
    /// state's are (a create's plan).
    pub fn of_state(&self, state: &Value) -> Value {
        if state.is_null() {
            return Value::Null;
        }
        let attributes = self.attributes.iter().map(|a| {
            let value = a
                .state_path
                .iter()
                .try_fold(state, |at, step| step_into(at, step))
                .cloned()
                .unwrap_or(Value::Null);
            (a.name.to_string(), value)
        });
        Value::Object(attributes.collect())
    }

    /// The import ID an identity value stands for, with a diagnostic naming a missing part.
    pub fn import_id_of(&self, identity: &Value) -> DiagResult<String> {
        let mut parts = Vec::with_capacity(self.attributes.len());
        for a in &self.attributes {
            let value = identity.get_attr(a.name).unwrap_or(&Value::Null);
            let text = match (value.as_str(), value.as_i64()) {
                (Some(text), _) => text.to_string(),
                (None, Some(number)) => number.to_string(),
                (None, None) if !a.required_for_import => String::new(),
                (None, None) => {
                    return Err(Diagnostic::error(
                        "Incomplete identity",
                        format!(
                            "The import identity needs `{}`. Give every attribute the \
                             identity lists, or import by ID.",
                            a.name
                        ),
                    )
                    .into());
                }
            };
            parts.push(text);
        }
        Ok((self.import_id)(&parts))
    }
}

/// One step of a state path: an attribute, or an index into a list.
fn step_into<'a>(value: &'a Value, step: &str) -> Option<&'a Value> {
    match (value.as_list(), step.parse::<usize>()) {
        (Some(items), Ok(index)) => items.get(index),
        _ => value.get_attr(step),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn schema() -> IdentitySchema {
        IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("project", &["project"]),
                IdentityAttribute::number("key_id", &["key", "id"]),
            ],
            import_id: |parts| parts.join(":"),
        }
    }

    fn object(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn the_identity_is_read_from_the_state_paths() {
        let state = object(&[
            ("project", Value::String("fleet/gitops".into())),
            ("key", object(&[("id", Value::from(12_i64))])),
            ("other", Value::Bool(true)),
        ]);
        let identity = schema().of_state(&state);
        assert_eq!(
            identity,
            object(&[
                ("project", Value::String("fleet/gitops".into())),
                ("key_id", Value::from(12_i64)),
            ])
        );
        assert!(identity.conforms_to(&schema().value_type()));
        assert_eq!(
            schema().import_id_of(&identity).expect("id"),
            "fleet/gitops:12"
        );
        assert_eq!(schema().of_state(&Value::Null), Value::Null);
    }

    #[test]
    fn a_path_may_index_a_list_and_an_optional_part_may_be_absent() {
        let schema = IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("namespace", &["namespaces", "0"]),
                IdentityAttribute::string("group", &["group"]).optional_for_import(),
            ],
            import_id: |parts| parts.join("/"),
        };
        let state = object(&[
            (
                "namespaces",
                Value::List(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
            ("group", Value::Null),
        ]);
        let identity = schema.of_state(&state);
        assert_eq!(
            identity.get_attr("namespace"),
            Some(&Value::String("a".into()))
        );
        assert_eq!(schema.import_id_of(&identity).expect("id"), "a/");
    }

    #[test]
    fn an_identity_missing_a_part_is_refused() {
        let identity = object(&[
            ("project", Value::String("fleet/gitops".into())),
            ("key_id", Value::Null),
        ]);
        assert!(schema().import_id_of(&identity).is_err());
    }
}
