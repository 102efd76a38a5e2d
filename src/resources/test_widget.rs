//! `gitlabflux_test_widget`: a test-only resource that exercises the whole protocol layer
//! through the real Terraform binary. Compiled only with the `test-resources` feature, which
//! `cargo test` enables and release builds never do.
//!
//! Widgets live as JSON files in `$GITLABFLUX_TEST_WIDGET_DIR`, so tests can delete or edit
//! them out of band (drift). `$GITLABFLUX_TEST_WIDGET_SCHEMA_VERSION=0` serves the old schema
//! (`flavor` instead of `size`) to prove `UpgradeResourceState` across a version bump.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::context::ProviderData;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, Attribute, Block, Ctx, DiagResult, Diagnostic, NewState, Resource, Schema, Type,
    Value,
};

pub struct TestWidget;

const DIR_VAR: &str = "GITLABFLUX_TEST_WIDGET_DIR";
const VERSION_VAR: &str = "GITLABFLUX_TEST_WIDGET_SCHEMA_VERSION";
/// Private state set at create; Terraform must hand it back on every later call.
const PRIVATE_MARKER: &[u8] = b"widget-private:v1";

fn schema_version() -> i64 {
    match std::env::var(VERSION_VAR).as_deref() {
        Ok("0") => 0,
        _ => 1,
    }
}

/// Version 0 called `size` `flavor`; everything else is the same.
fn size_attr_name(version: i64) -> &'static str {
    if version == 0 { "flavor" } else { "size" }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    name: String,
    size: String,
    tags: Option<BTreeMap<String, String>>,
    secret: Option<String>,
    password_version: Option<i64>,
    password_fingerprint: Option<String>,
    revision: i64,
    settings: Option<Settings>,
    created_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Settings {
    replicas: i64,
    labels: Option<Vec<String>>,
}

fn store_dir() -> DiagResult<PathBuf> {
    std::env::var_os(DIR_VAR).map(PathBuf::from).ok_or_else(|| {
        Diagnostic::error(
            "Test store not set",
            format!("{DIR_VAR} must name a directory."),
        )
        .into()
    })
}

fn record_path(id: &str) -> DiagResult<PathBuf> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Diagnostic::error("Invalid widget ID", "IDs look like w-<name>-<hex>.").into());
    }
    Ok(store_dir()?.join(format!("{id}.json")))
}

fn io_error(what: &str, e: impl std::fmt::Display) -> crate::tfplug::Diagnostics {
    Diagnostic::error("Widget store error", format!("{what}: {e}")).into()
}

fn load(id: &str) -> DiagResult<Option<Record>> {
    match std::fs::read(record_path(id)?) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io_error("corrupt widget record", e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read widget", e)),
    }
}

fn save(r: &Record) -> DiagResult<()> {
    let bytes = serde_json::to_vec_pretty(r).map_err(|e| io_error("cannot encode widget", e))?;
    std::fs::write(record_path(&r.id)?, bytes).map_err(|e| io_error("cannot write widget", e))
}

fn fingerprint(password: Option<&str>) -> Option<String> {
    password.map(|p| {
        let digest = Sha256::digest(p.as_bytes());
        crate::digest::hex(&digest[..6])
    })
}

fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    v.and_then(Value::as_map).map(|m| {
        m.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    })
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_list).map(|l| {
        l.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

/// Fills a record's user-settable fields from a planned state plus its configuration.
fn apply_planned(r: &mut Record, planned: &Value, config: &Value) {
    let size_attr = size_attr_name(schema_version());
    r.name = planned
        .get_attr("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    r.size = planned
        .get_attr(size_attr)
        .and_then(Value::as_str)
        .unwrap_or("small")
        .to_string();
    r.tags = string_map(planned.get_attr("tags"));
    r.secret = planned
        .get_attr("secret")
        .and_then(Value::as_str)
        .map(str::to_string);
    r.password_version = planned.get_attr("password_version").and_then(Value::as_i64);
    // Write-only values are only in the configuration, never in the plan.
    r.password_fingerprint = fingerprint(config.get_attr("password_wo").and_then(Value::as_str));
    r.settings = planned
        .get_attr("settings")
        .filter(|s| !s.is_null())
        .map(|s| Settings {
            replicas: s.get_attr("replicas").and_then(Value::as_i64).unwrap_or(1),
            labels: string_list(s.get_attr("labels")),
        });
}

fn to_state(r: &Record) -> Value {
    let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::from);
    let settings = r.settings.as_ref().map_or(Value::Null, |s| {
        object([
            ("replicas", Value::from(s.replicas)),
            (
                "labels",
                s.labels.as_ref().map_or(Value::Null, |l| {
                    Value::List(l.iter().map(|s| Value::from(s.as_str())).collect())
                }),
            ),
        ])
    });
    object([
        ("id", Value::from(r.id.as_str())),
        ("name", Value::from(r.name.as_str())),
        (
            size_attr_name(schema_version()),
            Value::from(r.size.as_str()),
        ),
        (
            "tags",
            r.tags.as_ref().map_or(Value::Null, |t| {
                Value::Map(
                    t.iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect(),
                )
            }),
        ),
        ("secret", opt(&r.secret)),
        ("password_wo", Value::Null),
        (
            "password_version",
            r.password_version.map_or(Value::Null, Value::from),
        ),
        ("password_fingerprint", opt(&r.password_fingerprint)),
        ("revision", Value::from(r.revision)),
        ("settings", settings),
        ("created_at", Value::from(r.created_at.as_str())),
    ])
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn new_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{name}/{nanos}").as_bytes());
    let hex = crate::digest::hex(&digest[..4]);
    format!("w-{name}-{hex}")
}

#[async_trait]
impl Resource<ProviderData> for TestWidget {
    fn type_name(&self) -> &'static str {
        "gitlabflux_test_widget"
    }

    fn schema(&self) -> Schema {
        let version = schema_version();
        let size = Attribute::string(size_attr_name(version))
            .validator(validators::one_of(&["small", "medium", "large"]))
            .description("Widget size.");
        let size = if version == 0 {
            size.optional()
        } else {
            size.default("small")
        };
        Schema::new(
            version,
            Block::new(vec![
                Attribute::string("id")
                    .computed()
                    .use_state_for_unknown()
                    .description("Widget ID."),
                Attribute::string("name")
                    .required()
                    .requires_replace()
                    .validator(validators::length_between(1, 32))
                    .description("Name; changing it replaces the widget."),
                size,
                Attribute::string_map("tags")
                    .optional()
                    .description("Free-form tags."),
                Attribute::string("secret")
                    .optional()
                    .sensitive()
                    .description("A sensitive value."),
                Attribute::string("password_wo")
                    .optional()
                    .write_only()
                    .description("A write-only value: used at apply, never stored."),
                Attribute::number("password_version")
                    .optional()
                    .description("Bump to send a new `password_wo`."),
                Attribute::string("password_fingerprint")
                    .computed()
                    .description("Short hash of the last `password_wo` received."),
                Attribute::number("revision")
                    .computed()
                    .description("Bumped by every update."),
                Attribute::object(
                    "settings",
                    vec![
                        Attribute::number("replicas")
                            .default(1_i64)
                            .validator(validators::int_between(1, 10)),
                        Attribute::string_list("labels").optional(),
                    ],
                )
                .optional(),
                Attribute::string("created_at")
                    .computed()
                    .use_state_for_unknown(),
            ]),
        )
    }

    async fn create(&self, _ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let name = req
            .planned
            .get_attr("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Lets the tests prove that a panicking handler becomes a diagnostic.
        assert_ne!(name, "panic-please", "test widget asked to panic");
        let mut record = Record {
            id: new_id(name),
            name: String::new(),
            size: String::new(),
            tags: None,
            secret: None,
            password_version: None,
            password_fingerprint: None,
            revision: 1,
            settings: None,
            created_at: now(),
        };
        apply_planned(&mut record, &req.planned, &req.config);
        save(&record)?;
        Ok(NewState {
            state: to_state(&record),
            private: PRIVATE_MARKER.to_vec(),
        })
    }

    async fn read(
        &self,
        _ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let id = current
            .state
            .get_attr("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(load(id)?.map(|r| NewState {
            state: to_state(&r),
            private: current.private,
        }))
    }

    async fn update(&self, _ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let id = req
            .prior
            .get_attr("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if req.private != PRIVATE_MARKER {
            return Err(Diagnostic::error(
                "Private state lost",
                "The private state written at create did not come back with the update.",
            )
            .into());
        }
        let mut record = load(id)?.ok_or_else(|| {
            Diagnostic::error(
                "Widget disappeared",
                format!("Widget {id} was deleted during the update."),
            )
        })?;
        let prior_fingerprint = record.password_fingerprint.clone();
        apply_planned(&mut record, &req.planned, &req.config);
        if record.password_fingerprint.is_none() {
            record.password_fingerprint = prior_fingerprint;
        }
        record.revision += 1;
        save(&record)?;
        Ok(NewState {
            state: to_state(&record),
            private: req.private,
        })
    }

    async fn delete(&self, _ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let id = prior
            .state
            .get_attr("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match std::fs::remove_file(record_path(id)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("cannot delete widget", e)),
        }
    }

    async fn import(&self, _ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let record = load(id)?.ok_or_else(|| {
            Diagnostic::error(
                "Widget not found",
                format!("No widget with ID \"{id}\" exists. Import IDs look like w-<name>-<hex>."),
            )
        })?;
        Ok(NewState {
            state: to_state(&record),
            private: PRIVATE_MARKER.to_vec(),
        })
    }

    fn upgrade_state(&self, version: i64, raw_json: &[u8], current: &Type) -> DiagResult<Value> {
        let mut state: serde_json::Value =
            serde_json::from_slice(raw_json).map_err(|e| io_error("unreadable old state", e))?;
        if version == 0
            && let Some(fields) = state.as_object_mut()
        {
            let flavor = fields.remove("flavor").unwrap_or(serde_json::Value::Null);
            fields.insert("size".into(), flavor);
        }
        let bytes =
            serde_json::to_vec(&state).map_err(|e| io_error("cannot re-encode state", e))?;
        crate::tfplug::resource::decode_state(&bytes, current)
    }
}
