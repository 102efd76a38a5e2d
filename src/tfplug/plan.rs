//! Schema-driven behaviour shared by every resource: configuration validation, defaults,
//! computed-value planning (with UseStateForUnknown), RequiresReplace and write-only handling.
//!
//! The rules follow Terraform's plan validity contract: non-computed attributes equal the
//! configuration; computed attributes left null by the configuration may become unknown, but
//! only when the resource actually changes, otherwise every plan would show noise.

use super::diag::Diagnostics;
use super::schema::{AttrType, Attribute, Block, Nesting, PlanModifier};
use super::value::{AttrPath, Value};

/// Runs attribute validators over a configuration and enforces write-only rules.
pub fn validate_config(
    block: &Block,
    config: &Value,
    write_only_allowed: bool,
    diags: &mut Diagnostics,
) {
    validate_attrs(
        &block.attributes,
        config,
        &AttrPath::root(),
        write_only_allowed,
        diags,
    );
    for nested in &block.blocks {
        let path = AttrPath::root().attr(&nested.type_name);
        for_each_element(config.get_attr(&nested.type_name), &path, |elem, p| {
            validate_config_at(&nested.block, elem, p, write_only_allowed, diags)
        });
    }
}

fn validate_config_at(
    block: &Block,
    config: &Value,
    path: &AttrPath,
    write_only_allowed: bool,
    diags: &mut Diagnostics,
) {
    validate_attrs(&block.attributes, config, path, write_only_allowed, diags);
}

fn validate_attrs(
    attrs: &[Attribute],
    object: &Value,
    base: &AttrPath,
    write_only_allowed: bool,
    diags: &mut Diagnostics,
) {
    for attr in attrs {
        let path = base.clone().attr(&attr.name);
        let value = object.get_attr(&attr.name).unwrap_or(&Value::Null);
        if value.is_null() {
            continue;
        }
        if attr.write_only && !write_only_allowed {
            diags.error_at(
                path.clone(),
                "Write-only attribute not supported by this Terraform",
                format!(
                    "{path} is write-only: its value is never stored in state. This Terraform or \
                     OpenTofu version does not support write-only attributes, so the value would \
                     end up in state. Upgrade to Terraform 1.11 or later, or remove the attribute."
                ),
            );
            continue;
        }
        if !value.is_known() {
            continue;
        }
        for v in &attr.validators {
            v.validate(value, &path, diags);
        }
        if let AttrType::Nested(nested) = &attr.ty {
            for_each_element(Some(value), &path, |elem, p| {
                validate_attrs(&nested.attributes, elem, p, write_only_allowed, diags)
            });
        }
    }
}

/// Calls `f` for each known, non-null object inside a nested value: the value itself for a
/// single object, each element for a list/set/map.
fn for_each_element(value: Option<&Value>, path: &AttrPath, mut f: impl FnMut(&Value, &AttrPath)) {
    let Some(value) = value else { return };
    match value {
        Value::Object(_) => f(value, path),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            for (i, item) in items.iter().enumerate() {
                if item.is_known() && !item.is_null() {
                    f(item, &path.clone().index(i as i64));
                }
            }
        }
        Value::Map(items) => {
            for (k, item) in items {
                if item.is_known() && !item.is_null() {
                    f(item, &path.clone().key(k));
                }
            }
        }
        _ => {}
    }
}

/// The outcome of planning one resource instance.
#[derive(Debug)]
pub struct PlannedChange {
    pub planned: Value,
    pub requires_replace: Vec<AttrPath>,
}

/// Turns Terraform's proposed new state into the provider's planned state.
pub fn plan_resource(
    block: &Block,
    prior: &Value,
    proposed: Value,
    config: &Value,
) -> PlannedChange {
    let mut planned = proposed;
    if planned.is_null() {
        // Destroy: nothing to plan.
        return PlannedChange {
            planned,
            requires_replace: Vec::new(),
        };
    }
    walk_block(block, config, prior, &mut planned, Pass::Defaults);
    let changed = prior.is_null() || planned != *prior;
    if changed {
        walk_block(block, config, prior, &mut planned, Pass::Computed);
    }
    let requires_replace = if prior.is_null() {
        Vec::new()
    } else {
        replacement_paths(&block.attributes, prior, &planned, &AttrPath::root())
    };
    PlannedChange {
        planned,
        requires_replace,
    }
}

/// Sets the schema's defaults where `state` is null: an imported state knows only what its ID
/// and the live object say, and the settings nothing can observe take their defaults, as a
/// configuration that omits them would.
pub fn fill_defaults(block: &Block, state: &mut Value) {
    let as_config = state.clone();
    walk_block(block, &as_config, &Value::Null, state, Pass::ValueDefaults);
}

/// Clears write-only attributes from a state about to be stored.
pub fn strip_write_only(block: &Block, state: &mut Value) {
    walk_block(
        block,
        &Value::Null,
        &Value::Null,
        state,
        Pass::StripWriteOnly,
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Defaults into a planned state, which holds no write-only value.
    Defaults,
    /// Defaults into a value as it is (a configuration keeps its write-only values).
    ValueDefaults,
    Computed,
    StripWriteOnly,
}

fn walk_block(block: &Block, config: &Value, prior: &Value, planned: &mut Value, pass: Pass) {
    walk_attrs(&block.attributes, config, prior, planned, pass);
    for nested in &block.blocks {
        let (Some(cfg), Value::Object(fields)) =
            (config.get_attr(&nested.type_name), &mut *planned)
        else {
            continue;
        };
        let Some(slot) = fields.get_mut(&nested.type_name) else {
            continue;
        };
        let prior_elem = prior.get_attr(&nested.type_name).unwrap_or(&Value::Null);
        walk_elements(nested.nesting, cfg, prior_elem, slot, |c, p, s| {
            walk_block(&nested.block, c, p, s, pass)
        });
    }
}

fn walk_attrs(attrs: &[Attribute], config: &Value, prior: &Value, planned: &mut Value, pass: Pass) {
    let Value::Object(fields) = planned else {
        return;
    };
    for attr in attrs {
        let Some(slot) = fields.get_mut(&attr.name) else {
            continue;
        };
        let cfg = config.get_attr(&attr.name).unwrap_or(&Value::Null);
        let pri = prior.get_attr(&attr.name).unwrap_or(&Value::Null);
        walk_attr(attr, cfg, pri, slot, pass);
    }
}

fn walk_attr(attr: &Attribute, cfg: &Value, pri: &Value, slot: &mut Value, pass: Pass) {
    if attr.write_only {
        // Terraform requires write-only values to be null in plans and state.
        if pass != Pass::ValueDefaults {
            *slot = Value::Null;
        }
        return;
    }
    if pass != Pass::StripWriteOnly && cfg.is_null() {
        match (pass, &attr.default) {
            (Pass::Defaults | Pass::ValueDefaults, Some(default)) => *slot = default.clone(),
            (Pass::Computed, None) if attr.computed => {
                *slot = if attr.has_modifier(PlanModifier::UseStateForUnknown) && !pri.is_null() {
                    pri.clone()
                } else {
                    Value::unknown()
                };
            }
            _ => {}
        }
        return;
    }
    if let AttrType::Nested(nested) = &attr.ty {
        walk_elements(nested.nesting, cfg, pri, slot, |c, p, s| {
            walk_attrs(&nested.attributes, c, p, s, pass)
        });
    }
}

/// Pairs up configuration, prior and planned elements of a nested value. Sets have no stable
/// element identity, so their elements are planned without a prior.
fn walk_elements(
    nesting: Nesting,
    cfg: &Value,
    pri: &Value,
    slot: &mut Value,
    mut f: impl FnMut(&Value, &Value, &mut Value),
) {
    if !slot.is_known() || slot.is_null() {
        return;
    }
    match (nesting, slot) {
        (Nesting::Single | Nesting::Group, slot) => f(cfg, pri, slot),
        (Nesting::List, Value::List(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                let c = cfg.as_list().and_then(|l| l.get(i)).unwrap_or(&Value::Null);
                let p = pri.as_list().and_then(|l| l.get(i)).unwrap_or(&Value::Null);
                f(c, p, item);
            }
        }
        (Nesting::Set, Value::Set(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                let c = cfg.as_list().and_then(|l| l.get(i)).unwrap_or(&Value::Null);
                f(c, &Value::Null, item);
            }
        }
        (Nesting::Map, Value::Map(items)) => {
            for (k, item) in items.iter_mut() {
                let c = cfg.as_map().and_then(|m| m.get(k)).unwrap_or(&Value::Null);
                let p = pri.as_map().and_then(|m| m.get(k)).unwrap_or(&Value::Null);
                f(c, p, item);
            }
        }
        _ => {}
    }
}

fn replacement_paths(
    attrs: &[Attribute],
    prior: &Value,
    planned: &Value,
    base: &AttrPath,
) -> Vec<AttrPath> {
    let mut out = Vec::new();
    for attr in attrs {
        let path = base.clone().attr(&attr.name);
        let before = prior.get_attr(&attr.name).unwrap_or(&Value::Null);
        let after = planned.get_attr(&attr.name).unwrap_or(&Value::Null);
        if attr.has_modifier(PlanModifier::RequiresReplace) && before != after {
            out.push(path);
            continue;
        }
        if let AttrType::Nested(nested) = &attr.ty
            && nested.nesting == Nesting::Single
            && after.is_known()
            && !after.is_null()
        {
            out.extend(replacement_paths(&nested.attributes, before, after, &path));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn block() -> Block {
        Block::new(vec![
            Attribute::string("name").required().requires_replace(),
            Attribute::string("size").default("small"),
            Attribute::string("note").optional(),
            Attribute::string("id").computed().use_state_for_unknown(),
            Attribute::string("updated_at").computed(),
            Attribute::string("secret").optional().write_only(),
        ])
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn config(name: &str, note: Value) -> Value {
        obj(&[
            ("name", name.into()),
            ("size", Value::Null),
            ("note", note),
            ("id", Value::Null),
            ("updated_at", Value::Null),
            ("secret", "s3cret".into()),
        ])
    }

    fn prior() -> Value {
        obj(&[
            ("name", "a".into()),
            ("size", "small".into()),
            ("note", Value::Null),
            ("id", "42".into()),
            ("updated_at", "t1".into()),
            ("secret", Value::Null),
        ])
    }

    /// What Terraform proposes: config values, prior values for computed-null attributes.
    fn proposed(config: &Value, prior: &Value) -> Value {
        let mut out = config.clone();
        if let Value::Object(fields) = &mut out {
            for key in ["size", "id", "updated_at"] {
                fields.insert(
                    key.into(),
                    prior.get_attr(key).cloned().unwrap_or(Value::Null),
                );
            }
        }
        out
    }

    #[test]
    fn create_defaults_and_unknown_computed() {
        let cfg = config("a", Value::Null);
        let plan = plan_resource(&block(), &Value::Null, proposed(&cfg, &Value::Null), &cfg);
        let p = &plan.planned;
        assert_eq!(p.get_attr("size"), Some(&Value::from("small")));
        assert!(!p.get_attr("id").expect("id").is_known());
        assert!(!p.get_attr("updated_at").expect("updated_at").is_known());
        assert!(
            p.get_attr("secret").expect("secret").is_null(),
            "write-only never planned"
        );
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn unchanged_resource_plans_no_unknowns() {
        let cfg = config("a", Value::Null);
        let prior = prior();
        let plan = plan_resource(&block(), &prior, proposed(&cfg, &prior), &cfg);
        assert_eq!(plan.planned, prior);
    }

    #[test]
    fn update_keeps_stable_computed_and_marks_the_rest() {
        let cfg = config("a", "hello".into());
        let prior = prior();
        let plan = plan_resource(&block(), &prior, proposed(&cfg, &prior), &cfg);
        assert_eq!(plan.planned.get_attr("id"), Some(&Value::from("42")));
        assert!(
            !plan
                .planned
                .get_attr("updated_at")
                .expect("attr")
                .is_known()
        );
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn requires_replace_names_the_path() {
        let cfg = config("b", Value::Null);
        let prior = prior();
        let plan = plan_resource(&block(), &prior, proposed(&cfg, &prior), &cfg);
        assert_eq!(plan.requires_replace, vec![AttrPath::root().attr("name")]);
    }

    #[test]
    fn write_only_refused_without_client_support() {
        let cfg = config("a", Value::Null);
        let mut diags = Diagnostics::new();
        validate_config(&block(), &cfg, false, &mut diags);
        let d = diags.iter().next().expect("diagnostic");
        assert_eq!(d.attribute, Some(AttrPath::root().attr("secret")));
        let mut ok = Diagnostics::new();
        validate_config(&block(), &cfg, true, &mut ok);
        assert!(ok.is_empty());
    }

    /// A configuration given its defaults keeps its write-only values (the one place a
    /// resource reads them); a plan never carries them.
    #[test]
    fn defaults_keep_a_configurations_write_only_values_and_plans_drop_them() {
        let mut cfg = config("a", Value::Null);
        if let Value::Object(fields) = &mut cfg {
            fields.insert("secret".into(), "s3cret".into());
        }
        let mut with_defaults = cfg.clone();
        fill_defaults(&block(), &mut with_defaults);
        assert_eq!(with_defaults.get_attr("secret"), Some(&"s3cret".into()));
        assert_eq!(with_defaults.get_attr("size"), Some(&"small".into()));
        let plan = plan_resource(&block(), &Value::Null, cfg.clone(), &cfg);
        assert_eq!(plan.planned.get_attr("secret"), Some(&Value::Null));
    }
}
