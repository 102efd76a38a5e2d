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

/// A stored widget; also the resource's state, less the write-only `password_wo`.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: String,
    name: String,
    #[serde(alias = "flavor")]
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

/// What the user sets, as planned (and `password_wo`, which only the configuration holds).
#[derive(Debug, Deserialize)]
struct Planned {
    name: String,
    #[serde(alias = "flavor")]
    size: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    secret: Option<String>,
    password_version: Option<i64>,
    settings: Option<Settings>,
}

#[derive(Debug, Deserialize)]
struct WriteOnly {
    password_wo: Option<String>,
}

/// Fills a record's user-settable fields from a planned state plus its configuration.
fn apply_planned(r: &mut Record, planned: &Value, config: &Value) -> DiagResult<()> {
    let p: Planned = planned.decode()?;
    r.name = p.name;
    // Version 0 has no default for `flavor`.
    r.size = p.size.unwrap_or_else(|| "small".into());
    r.tags = p.tags;
    r.secret = p.secret;
    r.password_version = p.password_version;
    // Write-only values are only in the configuration, never in the plan.
    let wo: WriteOnly = config.decode()?;
    r.password_fingerprint = fingerprint(wo.password_wo.as_deref());
    r.settings = p.settings;
    Ok(())
}

/// The state of a record; version 0 of the schema calls `size` `flavor`.
fn to_state(r: &Record) -> DiagResult<Value> {
    let mut state = Value::encode(r)?;
    if let Value::Object(fields) = &mut state
        && let Some(size) = fields.remove("size")
    {
        fields.insert(size_attr_name(schema_version()).to_string(), size);
    }
    Ok(state)
}

/// The ID of a widget's state.
fn id_of(state: &Value) -> DiagResult<String> {
    #[derive(Deserialize)]
    struct Id {
        id: String,
    }
    Ok(state.decode::<Id>()?.id)
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
        let planned: Planned = req.planned.decode()?;
        // Lets the tests prove that a panicking handler becomes a diagnostic.
        assert_ne!(planned.name, "panic-please", "test widget asked to panic");
        let mut record = Record {
            id: new_id(&planned.name),
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
        apply_planned(&mut record, &req.planned, &req.config)?;
        save(&record)?;
        Ok(NewState::new(to_state(&record)?).with_private(PRIVATE_MARKER.to_vec()))
    }

    async fn read(
        &self,
        _ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let Some(record) = load(&id_of(&current.state)?)? else {
            return Ok(None);
        };
        Ok(Some(
            NewState::new(to_state(&record)?).with_private(current.private),
        ))
    }

    async fn update(&self, _ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let id = id_of(&req.prior)?;
        if req.private != PRIVATE_MARKER {
            return Err(Diagnostic::error(
                "Private state lost",
                "The private state written at create did not come back with the update.",
            )
            .into());
        }
        let mut record = load(&id)?.ok_or_else(|| {
            Diagnostic::error(
                "Widget disappeared",
                format!("Widget {id} was deleted during the update."),
            )
        })?;
        let prior_fingerprint = record.password_fingerprint.clone();
        apply_planned(&mut record, &req.planned, &req.config)?;
        if record.password_fingerprint.is_none() {
            record.password_fingerprint = prior_fingerprint;
        }
        record.revision += 1;
        save(&record)?;
        Ok(NewState::new(to_state(&record)?).with_private(req.private))
    }

    async fn delete(&self, _ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        match std::fs::remove_file(record_path(&id_of(&prior.state)?)?) {
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
        Ok(NewState::new(to_state(&record)?).with_private(PRIVATE_MARKER.to_vec()))
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
