//! Conversions between the protocol's generated types and our schema, value and diagnostic
//! models. Nothing else touches the generated structs' field layout.

use super::diag::{Diagnostic, Diagnostics, Severity};
use super::identity::IdentitySchema;
use super::proto::tfplugin6 as pb;
use super::resource::{FunctionSignature, Parameter};
use super::schema::{AttrType, Attribute, Block, NestedBlock, Nesting, Schema};
use super::value::{self, AttrPath, PathStep, Type, Value};

/// Decodes a DynamicValue; an absent value is null (Terraform sends nothing for "no state").
pub fn decode_dynamic(
    dv: Option<&pb::DynamicValue>,
    ty: &Type,
    what: &str,
) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else {
        return Ok(Value::Null);
    };
    let decoded = if !dv.msgpack.is_empty() {
        value::decode_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        value::decode_json(&dv.json, ty)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|e| {
        Diagnostic::error(
            "Invalid value from Terraform",
            format!("The {what} sent by Terraform does not match the provider schema: {e}"),
        )
        .into()
    })
}

/// Encodes a value the provider produced. Typed models encode untyped (see `model`), so the
/// value is first conformed to the schema's type.
pub fn encode_dynamic(v: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostics> {
    v.clone()
        .conform(ty)
        .and_then(|v| value::encode_msgpack(&v, ty))
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                "Provider produced an invalid value",
                format!(
                    "The {what} does not match the schema: {e}. This is a bug in the provider; \
                     please report it."
                ),
            )
            .into()
        })
}

pub fn diagnostics(diags: Diagnostics) -> Vec<pb::Diagnostic> {
    diags.into_iter().map(diagnostic).collect()
}

fn diagnostic(d: Diagnostic) -> pb::Diagnostic {
    let severity = match d.severity {
        Severity::Error => pb::diagnostic::Severity::Error,
        Severity::Warning => pb::diagnostic::Severity::Warning,
    };
    pb::Diagnostic {
        severity: severity as i32,
        summary: d.summary,
        detail: d.detail,
        attribute: d.attribute.as_ref().map(attribute_path),
    }
}

pub fn attribute_path(path: &AttrPath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: path
            .steps()
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attr(name) => Selector::AttributeName(name.clone()),
                    PathStep::Key(key) => Selector::ElementKeyString(key.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

/// An identity schema as the protocol carries it.
pub fn identity_schema(s: &IdentitySchema) -> pb::ResourceIdentitySchema {
    use pb::resource_identity_schema::IdentityAttribute as Attr;
    pb::ResourceIdentitySchema {
        version: s.version,
        identity_attributes: s
            .attributes
            .iter()
            .map(|a| Attr {
                name: a.name.to_string(),
                r#type: a.ty.to_json_bytes(),
                required_for_import: a.required_for_import,
                optional_for_import: !a.required_for_import,
                description: a.description.to_string(),
            })
            .collect(),
    }
}

/// Identity data, from a value of the identity's type.
pub fn identity_data(identity: &Value, ty: &Type) -> Result<pb::ResourceIdentityData, Diagnostics> {
    Ok(pb::ResourceIdentityData {
        identity_data: Some(encode_dynamic(identity, ty, "identity")?),
    })
}

pub fn schema(s: &Schema) -> pb::Schema {
    pb::Schema {
        version: s.version,
        block: Some(block(&s.block, s.version)),
    }
}

fn block(b: &Block, version: i64) -> pb::schema::Block {
    pb::schema::Block {
        version,
        attributes: b.attributes.iter().map(attribute).collect(),
        block_types: b.blocks.iter().map(nested_block).collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: b.deprecated,
    }
}

fn nested_block(nb: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode;
    let nesting = match nb.nesting {
        Nesting::Single => NestingMode::Single,
        Nesting::List => NestingMode::List,
        Nesting::Set => NestingMode::Set,
        Nesting::Map => NestingMode::Map,
        Nesting::Group => NestingMode::Group,
    };
    pb::schema::NestedBlock {
        type_name: nb.type_name.clone(),
        block: Some(block(&nb.block, 0)),
        nesting: nesting as i32,
        min_items: nb.min_items,
        max_items: nb.max_items,
    }
}

fn attribute(a: &Attribute) -> pb::schema::Attribute {
    use pb::schema::object::NestingMode;
    let (ty, nested_type) = match &a.ty {
        AttrType::Plain(t) => (t.to_json_bytes(), None),
        AttrType::Nested(n) => {
            let nesting = match n.nesting {
                Nesting::Single | Nesting::Group => NestingMode::Single,
                Nesting::List => NestingMode::List,
                Nesting::Set => NestingMode::Set,
                Nesting::Map => NestingMode::Map,
            };
            #[allow(deprecated)]
            let object = pb::schema::Object {
                attributes: n.attributes.iter().map(attribute).collect(),
                nesting: nesting as i32,
                min_items: 0,
                max_items: 0,
            };
            (Vec::new(), Some(object))
        }
    };
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: ty,
        description: a.description.clone(),
        required: a.required,
        optional: a.optional,
        computed: a.computed,
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: a.deprecated,
        nested_type,
        write_only: a.write_only,
    }
}

pub fn function(sig: &FunctionSignature) -> pb::Function {
    pb::Function {
        parameters: sig.parameters.iter().map(parameter).collect(),
        variadic_parameter: sig.variadic.as_ref().map(parameter),
        r#return: Some(pb::function::Return {
            r#type: sig.return_type.to_json_bytes(),
        }),
        summary: sig.summary.to_string(),
        description: sig.description.to_string(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecation_message: String::new(),
    }
}

fn parameter(p: &Parameter) -> pb::function::Parameter {
    pb::function::Parameter {
        name: p.name.to_string(),
        r#type: p.ty.to_json_bytes(),
        allow_null_value: p.allow_null,
        allow_unknown_values: p.allow_unknown,
        description: p.description.to_string(),
        description_kind: pb::StringKind::Markdown as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_convert_step_by_step() {
        use pb::attribute_path::step::Selector;
        let p = attribute_path(&AttrPath::root().attr("tags").key("team").index(2));
        let steps: Vec<_> = p.steps.into_iter().filter_map(|s| s.selector).collect();
        assert_eq!(
            steps,
            vec![
                Selector::AttributeName("tags".into()),
                Selector::ElementKeyString("team".into()),
                Selector::ElementKeyInt(2),
            ]
        );
    }

    #[test]
    fn absent_dynamic_value_is_null() {
        let v = decode_dynamic(None, &Type::String, "state").expect("decodes");
        assert!(v.is_null());
        let empty = pb::DynamicValue::default();
        assert!(
            decode_dynamic(Some(&empty), &Type::String, "state")
                .expect("decodes")
                .is_null()
        );
    }

    #[test]
    fn nested_attributes_carry_their_nesting() {
        let s = Schema::new(
            1,
            Block::new(vec![
                Attribute::nested(
                    "items",
                    Nesting::Map,
                    vec![Attribute::string("id").required()],
                )
                .optional(),
            ]),
        );
        let pbs = schema(&s);
        let attr = &pbs.block.expect("block").attributes[0];
        let nested = attr.nested_type.as_ref().expect("nested");
        assert_eq!(nested.nesting, pb::schema::object::NestingMode::Map as i32);
        assert!(attr.r#type.is_empty());
    }
}
