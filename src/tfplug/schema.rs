//! Schema model: what a provider, resource, data source or ephemeral resource accepts.
//!
//! Besides the wire description Terraform sees, each attribute carries the behaviour the
//! protocol layer applies for the resource author: defaults, validators and plan modifiers
//! (RequiresReplace, UseStateForUnknown). Resource code declares these once and never
//! re-implements them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::diag::Diagnostics;
use super::value::{AttrPath, ObjectType, Type, Value};

/// A versioned schema; the version drives `UpgradeResourceState`.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub version: i64,
    pub block: Block,
}

impl Schema {
    pub fn new(version: i64, block: Block) -> Self {
        Self { version, block }
    }

    /// The cty type of a whole object conforming to this schema.
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Block {
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<NestedBlock>,
    /// Markdown.
    pub description: String,
    pub deprecated: bool,
}

impl Block {
    pub fn new(attributes: Vec<Attribute>) -> Self {
        Self {
            attributes,
            ..Self::default()
        }
    }

    pub fn description(mut self, markdown: impl Into<String>) -> Self {
        self.description = markdown.into();
        self
    }

    pub fn with_blocks(mut self, blocks: Vec<NestedBlock>) -> Self {
        self.blocks = blocks;
        self
    }

    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.value_type()))
            .collect();
        for b in &self.blocks {
            attrs.insert(b.type_name.clone(), b.value_type());
        }
        Type::Object(ObjectType {
            attributes: attrs,
            optional: Default::default(),
        })
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

/// How a nested attribute or block repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    Single,
    List,
    Set,
    Map,
    /// Blocks only: a single block that is never null (absent means "all attributes null").
    Group,
}

impl Nesting {
    fn wrap(self, object: Type) -> Type {
        match self {
            Nesting::Single | Nesting::Group => object,
            Nesting::List => Type::list(object),
            Nesting::Set => Type::set(object),
            Nesting::Map => Type::map(object),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NestedBlock {
    pub type_name: String,
    pub block: Block,
    pub nesting: Nesting,
    pub min_items: i64,
    pub max_items: i64,
}

impl NestedBlock {
    pub fn value_type(&self) -> Type {
        self.nesting.wrap(self.block.value_type())
    }
}

/// An attribute's type: a plain cty type or nested attributes (an object, or a collection of
/// objects, whose attributes carry their own flags).
#[derive(Clone, Debug)]
pub enum AttrType {
    Plain(Type),
    Nested(NestedAttributes),
}

#[derive(Clone, Debug)]
pub struct NestedAttributes {
    pub nesting: Nesting,
    pub attributes: Vec<Attribute>,
}

impl NestedAttributes {
    pub fn object_type(&self) -> Type {
        Type::Object(ObjectType {
            attributes: self
                .attributes
                .iter()
                .map(|a| (a.name.clone(), a.value_type()))
                .collect(),
            optional: Default::default(),
        })
    }
}

/// Changes Terraform's plan for one attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanModifier {
    /// A change to this attribute destroys and re-creates the resource.
    RequiresReplace,
    /// A computed value that does not change once known: keep the prior state's value instead
    /// of planning it as unknown on every update.
    UseStateForUnknown,
}

/// Checks one known configuration value. Implementations must not echo values that may be
/// secrets in their messages.
pub trait Validator: Send + Sync {
    fn validate(&self, value: &Value, path: &AttrPath, diags: &mut Diagnostics);
}

impl<F> Validator for F
where
    F: Fn(&Value, &AttrPath, &mut Diagnostics) + Send + Sync,
{
    fn validate(&self, value: &Value, path: &AttrPath, diags: &mut Diagnostics) {
        self(value, path, diags)
    }
}

#[derive(Clone)]
pub struct Attribute {
    pub name: String,
    pub ty: AttrType,
    /// Markdown.
    pub description: String,
    pub required: bool,
    pub optional: bool,
    pub computed: bool,
    pub sensitive: bool,
    pub write_only: bool,
    pub deprecated: bool,
    pub default: Option<Value>,
    pub plan_modifiers: Vec<PlanModifier>,
    pub validators: Vec<Arc<dyn Validator>>,
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .field("required", &self.required)
            .field("optional", &self.optional)
            .field("computed", &self.computed)
            .field("sensitive", &self.sensitive)
            .field("write_only", &self.write_only)
            .field("plan_modifiers", &self.plan_modifiers)
            .field("validators", &self.validators.len())
            .finish_non_exhaustive()
    }
}

impl Attribute {
    fn with_type(name: &str, ty: AttrType) -> Self {
        Self {
            name: name.to_string(),
            ty,
            description: String::new(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            write_only: false,
            deprecated: false,
            default: None,
            plan_modifiers: Vec::new(),
            validators: Vec::new(),
        }
    }

    pub fn new(name: &str, ty: Type) -> Self {
        Self::with_type(name, AttrType::Plain(ty))
    }
    pub fn string(name: &str) -> Self {
        Self::new(name, Type::String)
    }
    pub fn bool(name: &str) -> Self {
        Self::new(name, Type::Bool)
    }
    pub fn number(name: &str) -> Self {
        Self::new(name, Type::Number)
    }
    pub fn string_list(name: &str) -> Self {
        Self::new(name, Type::list(Type::String))
    }
    pub fn string_map(name: &str) -> Self {
        Self::new(name, Type::map(Type::String))
    }
    pub fn nested(name: &str, nesting: Nesting, attributes: Vec<Attribute>) -> Self {
        Self::with_type(
            name,
            AttrType::Nested(NestedAttributes {
                nesting,
                attributes,
            }),
        )
    }
    /// A single nested object.
    pub fn object(name: &str, attributes: Vec<Attribute>) -> Self {
        Self::nested(name, Nesting::Single, attributes)
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    pub fn computed(mut self) -> Self {
        self.computed = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    pub fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }
    pub fn description(mut self, markdown: impl Into<String>) -> Self {
        self.description = markdown.into();
        self
    }
    /// A default applies when the configuration leaves the attribute null. Like the plugin
    /// framework, a defaulted attribute is optional + computed so Terraform accepts the value.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self.optional = true;
        self.computed = true;
        self
    }
    pub fn requires_replace(mut self) -> Self {
        self.plan_modifiers.push(PlanModifier::RequiresReplace);
        self
    }
    pub fn use_state_for_unknown(mut self) -> Self {
        self.plan_modifiers.push(PlanModifier::UseStateForUnknown);
        self
    }
    pub fn validator(mut self, v: impl Validator + 'static) -> Self {
        self.validators.push(Arc::new(v));
        self
    }

    pub fn has_modifier(&self, m: PlanModifier) -> bool {
        self.plan_modifiers.contains(&m)
    }

    pub fn value_type(&self) -> Type {
        match &self.ty {
            AttrType::Plain(t) => t.clone(),
            AttrType::Nested(n) => n.nesting.wrap(n.object_type()),
        }
    }

    pub fn nested_attributes(&self) -> Option<&NestedAttributes> {
        match &self.ty {
            AttrType::Nested(n) => Some(n),
            AttrType::Plain(_) => None,
        }
    }
}

/// Ready-made validators. Messages name the rule, never the offending value, because a
/// value may be a secret.
pub mod validators {
    use super::*;

    /// The string must be one of `allowed`.
    pub fn one_of(allowed: &'static [&'static str]) -> impl Validator {
        move |v: &Value, path: &AttrPath, diags: &mut Diagnostics| {
            if let Some(s) = v.as_str()
                && !allowed.contains(&s)
            {
                diags.error_at(
                    path.clone(),
                    "Invalid value",
                    format!("{path} must be one of: {}.", quoted_list(allowed)),
                );
            }
        }
    }

    /// The string length, in characters, must be within `min..=max`.
    pub fn length_between(min: usize, max: usize) -> impl Validator {
        move |v: &Value, path: &AttrPath, diags: &mut Diagnostics| {
            if let Some(s) = v.as_str() {
                let n = s.chars().count();
                if n < min || n > max {
                    diags.error_at(
                        path.clone(),
                        "Invalid length",
                        format!("{path} must be {min} to {max} characters long, got {n}."),
                    );
                }
            }
        }
    }

    /// The number must be a whole number within `min..=max`.
    pub fn int_between(min: i64, max: i64) -> impl Validator {
        move |v: &Value, path: &AttrPath, diags: &mut Diagnostics| {
            let Some(n) = v.as_number() else { return };
            match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => {}
                _ => diags.error_at(
                    path.clone(),
                    "Invalid number",
                    format!("{path} must be a whole number from {min} to {max}."),
                ),
            }
        }
    }

    /// The collection must hold at most `max` elements.
    pub fn max_items(max: usize) -> impl Validator {
        move |v: &Value, path: &AttrPath, diags: &mut Diagnostics| {
            let n = v
                .as_list()
                .map(<[Value]>::len)
                .or_else(|| v.as_map().map(BTreeMap::len));
            if let Some(n) = n
                && n > max
            {
                diags.error_at(
                    path.clone(),
                    "Too many elements",
                    format!("{path} holds {n} elements; at most {max} are allowed."),
                );
            }
        }
    }

    fn quoted_list(items: &[&str]) -> String {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_imply_object_collections() {
        let block = Block::new(vec![
            Attribute::string("name").required(),
            Attribute::nested(
                "items",
                Nesting::List,
                vec![Attribute::string("id").required()],
            )
            .optional(),
        ]);
        let Type::Object(obj) = block.value_type() else {
            panic!("block type must be an object")
        };
        assert_eq!(obj.attributes["name"], Type::String);
        assert_eq!(
            obj.attributes["items"],
            Type::list(Type::object([("id", Type::String)]))
        );
    }

    #[test]
    fn validators_report_the_attribute_path() {
        let path = AttrPath::root().attr("kind");
        let mut diags = Diagnostics::new();
        validators::one_of(&["a", "b"]).validate(&Value::from("c"), &path, &mut diags);
        let d = diags.iter().next().expect("one diagnostic");
        assert_eq!(d.attribute.as_ref(), Some(&path));
        assert!(d.detail.contains("\"a\", \"b\""));

        let mut ok = Diagnostics::new();
        validators::one_of(&["a", "b"]).validate(&Value::from("a"), &path, &mut ok);
        validators::int_between(1, 3).validate(&Value::from(2_i64), &path, &mut ok);
        assert!(ok.is_empty());
    }
}
