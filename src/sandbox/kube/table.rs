//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for on `get`, with the
//! columns real clusters print for common kinds and CRDs' `additionalPrinterColumns`
//! (evaluated with the small JSONPath subset CRDs use in practice).

use serde_json::{Value, json};

use super::types::ResourceType;

/// One printed column: header, OpenAPI type, and how to compute the cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub kind: String,
    pub json_path: String,
    pub priority: i64,
}

impl Column {
    fn new(name: &str, kind: &str, json_path: &str) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            json_path: json_path.into(),
            priority: 0,
        }
    }
}

/// A CRD version's `additionalPrinterColumns`.
pub fn crd_columns(version: &Value) -> Vec<Column> {
    let Some(cols) = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let s = |c: &Value, k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    cols.iter()
        .map(|c| Column {
            name: s(c, "name"),
            kind: s(c, "type"),
            json_path: s(c, "jsonPath"),
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
        })
        .collect()
}

fn columns(rt: &ResourceType) -> Vec<Column> {
    let age = Column::new("Age", "date", ".metadata.creationTimestamp");
    let mut cols = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => vec![Column::new("Status", "string", ".status.phase")],
        ("", "Secret") => vec![
            Column::new("Type", "string", ".type"),
            Column::new("Data", "data-count", ".data"),
        ],
        ("", "ConfigMap") => vec![Column::new("Data", "data-count", ".data")],
        ("apps", "Deployment") => vec![
            Column::new("Ready", "ready", ""),
            Column::new("Up-to-date", "integer", ".status.updatedReplicas"),
            Column::new("Available", "integer", ".status.availableReplicas"),
        ],
        _ if !rt.columns.is_empty() => return rt.columns.clone(),
        _ => Vec::new(),
    };
    cols.push(age);
    cols
}

/// Renders objects as a Table (`include` is the `includeObject` parameter).
pub fn table(rt: &ResourceType, items: &[Value], resource_version: Value, include: &str) -> Value {
    let cols = columns(rt);
    let mut defs = vec![json!({ "name": "Name", "type": "string", "format": "name",
                                "description": "Name must be unique within a namespace.", "priority": 0 })];
    defs.extend(cols.iter().map(|c| {
        let kind = if matches!(c.kind.as_str(), "data-count" | "integer") { "integer" } else { "string" };
        json!({ "name": c.name, "type": kind, "format": "", "description": "", "priority": c.priority })
    }));
    let rows: Vec<Value> = items.iter().map(|o| row(&cols, o, include)).collect();
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": { "resourceVersion": resource_version },
            "columnDefinitions": defs, "rows": rows })
}

fn row(cols: &[Column], o: &Value, include: &str) -> Value {
    let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
    cells.extend(cols.iter().map(|c| cell(c, o)));
    let mut row = json!({ "cells": cells });
    match include {
        "Object" => row["object"] = o.clone(),
        "None" => {}
        _ => {
            row["object"] = json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})) })
        }
    }
    row
}

fn cell(c: &Column, o: &Value) -> Value {
    match c.kind.as_str() {
        "ready" => {
            let ready = o
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let want = o
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            json!(format!("{ready}/{want}"))
        }
        "data-count" => json!(
            eval(o, &c.json_path)
                .first()
                .and_then(|d| d.as_object())
                .map_or(0, |m| m.len())
        ),
        "integer" => json!(
            eval(o, &c.json_path)
                .first()
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        "date" => match eval(o, &c.json_path).first().and_then(Value::as_str) {
            Some(t) => json!(age(t)),
            None => json!("<unknown>"),
        },
        _ => {
            let vals: Vec<String> = eval(o, &c.json_path)
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect();
            json!(vals.join(","))
        }
    }
}

/// Human age of an RFC 3339 timestamp, as kubectl prints it.
pub fn age(created: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Filter(String, String),
}

/// Parses `.a.b[0].c[?(@.type=="Ready")].d`; anything else yields no steps (empty cell).
fn parse(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            steps.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("[?(@.") {
            let close = r.find(")]")?;
            let (key, value) = r[..close].split_once("==")?;
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            steps.push(Step::Filter(key.trim().to_string(), value.to_string()));
            rest = &r[close + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            steps.push(Step::Index(r[..close].parse().ok()?));
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

fn eval(o: &Value, path: &str) -> Vec<Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut cur = vec![o.clone()];
    for step in steps {
        cur = cur
            .into_iter()
            .flat_map(|v| match &step {
                Step::Field(f) => v.get(f).cloned().into_iter().collect::<Vec<_>>(),
                Step::Index(i) => v.get(i).cloned().into_iter().collect(),
                Step::Filter(k, want) => v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|item| {
                                item.get(k).and_then(Value::as_str) == Some(want.as_str())
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({ "status": { "conditions": [
            { "type": "Reconciling", "status": "False" },
            { "type": "Ready", "status": "True", "message": "ok" } ] } });
        assert_eq!(
            eval(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            eval(&o, ".status.conditions[0].type"),
            vec![json!("Reconciling")]
        );
        assert!(eval(&o, ".spec.url").is_empty());
    }
}
