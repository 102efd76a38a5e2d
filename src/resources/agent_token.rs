//! `gitlabflux_agent_token`: an agent token written straight into a cluster Secret, with
//! zero-downtime overlap rotation (create, deliver, restart, confirm `last_used_at`, revoke the
//! old one). The token value is kept in state only with `expose_token = true`.
//! Import ID: `<project path>:<agent id>:<token id>`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::support::{self, boolean, duration_validator, gitlab_error, int, kube_error, obj, object, opt, parse_duration, required_string, set, string};
use crate::gitlab::agent_install::{TOKEN_HASH_ANNOTATION, token_hash};
use crate::gitlab::{AgentToken, GitlabClient, GitlabError};
use crate::keys::rotation::{ConfirmPolicy, OverlapRotation, RotationError, rotate};
use crate::kube::{KubeClient, KubeError, ObjRef};
use super::context::{ProviderData, cluster_connection_attributes, gitlab, kube};
use crate::secret::Secret;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, Nesting,
    NewState, PlanContext, Resource, Schema, Value,
};

pub struct AgentTokenResource;

/// Label that lets a read after import find the Secret holding a token.
const TOKEN_ID_LABEL: &str = "gitlabflux.io/agent-token-id";
/// Annotation on that Secret recording the settings an import cannot see elsewhere.
const SETTINGS_ANNOTATION: &str = "gitlabflux.io/agent-token-settings";
/// The attributes [`SETTINGS_ANNOTATION`] records.
const RECORDED_SETTINGS: [&str; 3] = ["restart", "rotation", "expose_token"];
const DEFAULT_CONFIRM_TIMEOUT: &str = "10m";
/// Computed attributes that change only when the token is (re)created.
const TOKEN_FACTS: [&str; 6] = [
    "token_id",
    "status",
    "created_at",
    "last_used_at",
    "rotated_at",
    "token",
];
/// Attributes whose change needs a new token value delivered.
const ROTATING_INPUTS: [&str; 4] = ["name", "description", "kubernetes_secret", "expose_token"];

/// What we remember between runs without storing the token: a hash to recognise it in the
/// Secret.
#[derive(Default, Serialize, Deserialize)]
struct Private {
    token_sha256: Option<String>,
}

impl Private {
    fn decode(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Where the token goes in the cluster.
struct SecretTarget {
    namespace: String,
    name: String,
    key: String,
}

fn secret_target(state: &Value) -> Option<SecretTarget> {
    let s = object(state, "kubernetes_secret")?;
    Some(SecretTarget {
        namespace: string(s, "namespace")?,
        name: string(s, "name")?,
        key: string(s, "key").unwrap_or_else(|| "token".into()),
    })
}

fn restart_targets(state: &Value) -> Vec<(String, String, String)> {
    state
        .get_attr("restart")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            Some((
                string(r, "kind").unwrap_or_else(|| "Deployment".into()),
                string(r, "namespace")?,
                string(r, "name")?,
            ))
        })
        .collect()
}

fn rotation_setting(state: &Value, name: &str) -> Option<String> {
    object(state, "rotation").and_then(|r| string(r, name))
}

/// Whether the plan needs a new token: inputs that need the value delivered changed, the
/// trigger changed, the token is out of sync, or it is older than `rotate_after`.
fn rotation_due(prior: &Value, planned: &Value) -> bool {
    let changed = |name: &str| prior.get_attr(name) != planned.get_attr(name);
    if ROTATING_INPUTS.iter().any(|n| changed(n)) {
        return true;
    }
    if rotation_setting(prior, "trigger") != rotation_setting(planned, "trigger") {
        return true;
    }
    if string(prior, "status").as_deref() != Some("active") {
        return true;
    }
    let Some(after) = rotation_setting(planned, "rotate_after").and_then(|s| parse_duration(&s))
    else {
        return false;
    };
    let since = string(prior, "rotated_at").or_else(|| string(prior, "created_at"));
    since
        .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= after)
}

/// The rotation steps for one agent token.
struct TokenRotation<'a> {
    client: &'a GitlabClient,
    kube: Option<KubeClient>,
    project: String,
    agent_id: i64,
    name: String,
    description: String,
    old_token_id: Option<i64>,
    target: Option<SecretTarget>,
    restarts: Vec<(String, String, String)>,
    settings: String,
}

/// A step failure, from either side.
enum StepError {
    Gitlab(GitlabError),
    Kube(KubeError),
}

impl From<StepError> for Diagnostics {
    fn from(e: StepError) -> Self {
        match e {
            StepError::Gitlab(e) => gitlab_error(e),
            StepError::Kube(e) => kube_error(e),
        }
    }
}

#[async_trait]
impl OverlapRotation for TokenRotation<'_> {
    type New = (AgentToken, Secret);
    type Error = StepError;

    async fn make_room(&self) -> Result<(), StepError> {
        let active = self
            .client
            .agent_tokens(&self.project, self.agent_id)
            .await
            .map_err(StepError::Gitlab)?;
        if active.len() < 2 {
            return Ok(());
        }
        // The list has no last_used_at; ask for each candidate.
        let mut candidates = Vec::new();
        for t in active.iter().filter(|t| Some(t.id) != self.old_token_id) {
            let detail = self
                .client
                .agent_token(&self.project, self.agent_id, t.id)
                .await
                .map_err(StepError::Gitlab)?;
            candidates.push(detail.unwrap_or_else(|| t.clone()));
        }
        // Never used sorts first: it is the least recently used.
        candidates.sort_by(|a, b| a.last_used_at.cmp(&b.last_used_at));
        if let Some(lru) = candidates.first() {
            self.client
                .revoke_agent_token(&self.project, self.agent_id, lru.id)
                .await
                .map_err(StepError::Gitlab)?;
        }
        Ok(())
    }

    async fn create(&self) -> Result<(AgentToken, Secret), StepError> {
        self.client
            .create_agent_token(&self.project, self.agent_id, &self.name, &self.description)
            .await
            .map_err(StepError::Gitlab)
    }

    async fn deliver(&self, (token, value): &(AgentToken, Secret)) -> Result<(), StepError> {
        let (Some(kube), Some(target)) = (&self.kube, &self.target) else {
            return Ok(());
        };
        let mut labels: BTreeMap<String, String> = support::managed_labels("agent-token");
        labels.insert(TOKEN_ID_LABEL.into(), token.id.to_string());
        kube.write_secret_key(&target.namespace, &target.name, &target.key, value, &labels)
            .await
            .map_err(StepError::Kube)?;
        record_settings(kube, target, &self.settings)
            .await
            .map_err(StepError::Kube)?;
        // The pods' token hash lets the agentk install see they run the token now in the Secret.
        let stamp = BTreeMap::from([(
            TOKEN_HASH_ANNOTATION.to_string(),
            token_hash(value.expose()),
        )]);
        for (kind, namespace, name) in &self.restarts {
            kube.restart_with(kind, namespace, name, &stamp)
                .await
                .map_err(StepError::Kube)?;
        }
        Ok(())
    }

    async fn confirmed(&self, (token, _): &(AgentToken, Secret)) -> Result<bool, StepError> {
        let current = self
            .client
            .agent_token(&self.project, self.agent_id, token.id)
            .await
            .map_err(StepError::Gitlab)?;
        Ok(current.is_some_and(|t| t.last_used_at.is_some()))
    }

    async fn retire_old(&self) -> Result<(), StepError> {
        match self.old_token_id {
            Some(id) => self
                .client
                .revoke_agent_token(&self.project, self.agent_id, id)
                .await
                .map_err(StepError::Gitlab),
            None => Ok(()),
        }
    }
}

impl AgentTokenResource {
    /// Creates a token (replacing `old_token_id` if given) and returns the new state.
    async fn issue(
        &self,
        ctx: &Ctx<ProviderData>,
        planned: &Value,
        old_token_id: Option<i64>,
    ) -> DiagResult<NewState> {
        let client = gitlab(ctx)?;
        let target = secret_target(planned);
        let kube_client = match target {
            Some(_) => Some(kube(ctx, planned).await?),
            None => None,
        };
        let restarts = restart_targets(planned);
        let rotation = TokenRotation {
            client,
            kube: kube_client,
            project: required_string(planned, "project")?,
            agent_id: int(planned, "agent_id").ok_or_else(|| {
                Diagnostic::error("Missing agent_id", "agent_id must be known.")
                    .at(AttrPath::root().attr("agent_id"))
            })?,
            name: required_string(planned, "name")?,
            description: string(planned, "description").unwrap_or_default(),
            old_token_id,
            target,
            restarts,
            settings: settings_json(planned),
        };
        let timeout = rotation_setting(planned, "confirm_timeout")
            .and_then(|s| parse_duration(&s))
            .unwrap_or(Duration::from_secs(600));
        let policy = ConfirmPolicy {
            timeout,
            required: !rotation.restarts.is_empty() && rotation.target.is_some(),
        };
        let (token, value) = rotate(&rotation, policy, ctx.cancelled()).await.map_err(|e| match e {
            RotationError::Step(step) => Diagnostics::from(step),
            RotationError::NotConfirmed(t) => Diagnostic::error(
                "New agent token not confirmed in use",
                format!(
                    "The new token was written to the Secret and the workloads were restarted, but \
                     agentk did not use it within {}s (rotation.confirm_timeout). The previous \
                     token was kept active, so the cluster still has a valid token. Check that the \
                     restarted Deployment mounts the Secret and can reach GitLab, then apply again.",
                    t.as_secs()
                ),
            )
            .at(AttrPath::root().attr("rotation").attr("confirm_timeout"))
            .into(),
            RotationError::Cancelled => Diagnostic::error(
                "Rotation cancelled",
                "Terraform was interrupted; the previous token was kept active.",
            )
            .into(),
        })?;
        let confirmed = client
            .agent_token(&rotation.project, rotation.agent_id, token.id)
            .await
            .map_err(gitlab_error)?
            .unwrap_or(token);
        let mut state = planned.clone();
        set(&mut state, "token_id", confirmed.id.into());
        set(&mut state, "status", "active".into());
        set(
            &mut state,
            "created_at",
            confirmed.created_at.as_str().into(),
        );
        set(
            &mut state,
            "last_used_at",
            opt(confirmed.last_used_at.clone()),
        );
        set(&mut state, "rotated_at", now_rfc3339().into());
        let exposed = boolean(planned, "expose_token").unwrap_or(false);
        set(
            &mut state,
            "token",
            if exposed {
                value.expose().into()
            } else {
                Value::Null
            },
        );
        let private = Private {
            token_sha256: Some(token_hash(value.expose())),
        };
        Ok(NewState {
            state,
            private: private.encode(),
        })
    }
}

#[async_trait]
impl Resource<ProviderData> for AgentTokenResource {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent_token"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project").required().requires_replace().description("Project of the agent."),
                Attribute::number("agent_id").required().requires_replace().description("The agent's ID."),
                Attribute::string("name").required().description("Token name. Changing it rotates the token."),
                Attribute::string("description").optional().description("Token description. Changing it rotates the token."),
                Attribute::object(
                    "kubernetes_secret",
                    vec![
                        Attribute::string("namespace").required(),
                        Attribute::string("name").required(),
                        Attribute::string("key").default("token"),
                    ],
                )
                .optional()
                .description("Secret the token is written into (one key; other keys are left alone)."),
                Attribute::nested(
                    "restart",
                    Nesting::List,
                    vec![
                        Attribute::string("kind")
                            .default("Deployment")
                            .validator(validators::one_of(&["Deployment", "StatefulSet", "DaemonSet"])),
                        Attribute::string("namespace").required(),
                        Attribute::string("name").required(),
                    ],
                )
                .optional()
                .description("Workloads restarted after the Secret changes; with them, rotation waits until the new token is used."),
                Attribute::object(
                    "rotation",
                    vec![
                        Attribute::string("rotate_after")
                            .optional()
                            .validator(duration_validator)
                            .description("Rotate when the token is older than this, e.g. `720h`."),
                        Attribute::string("trigger").optional().description("Any string; changing it rotates the token."),
                        Attribute::string("confirm_timeout")
                            .default(DEFAULT_CONFIRM_TIMEOUT)
                            .validator(duration_validator)
                            .description("How long to wait for the new token to be used."),
                    ],
                )
                .optional(),
                Attribute::bool("expose_token")
                    .default(false)
                    .description("Keep the token value in state (`token`), e.g. to feed a Helm chart."),
                Attribute::string("token").computed().sensitive().description("The token, only with `expose_token = true`."),
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster of `kubernetes_secret`, overriding the provider's `kubernetes`."),
                Attribute::number("token_id").computed(),
                Attribute::string("status").computed().description("`active`, or `secret_out_of_sync` when the Secret lost the token."),
                Attribute::string("created_at").computed(),
                Attribute::string("last_used_at").computed(),
                Attribute::string("rotated_at").computed(),
            ])
            .description(
                "A GitLab agent token delivered straight into a cluster Secret, rotated without \
                 downtime: GitLab's two-active-tokens limit is respected, the new token is \
                 confirmed in use before the old one is revoked.",
            ),
        )
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        if !plan.is_create() {
            let rotate = rotation_due(&plan.prior, &plan.planned);
            for name in TOKEN_FACTS {
                let value = if rotate {
                    Value::unknown()
                } else {
                    plan.prior.get_attr(name).cloned().unwrap_or(Value::Null)
                };
                set(&mut plan.planned, name, value);
            }
        }
        // Known now: without expose_token the value never reaches state.
        if boolean(&plan.planned, "expose_token") == Some(false) {
            set(&mut plan.planned, "token", Value::Null);
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.issue(ctx, &req.planned, None).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let client = gitlab(ctx)?;
        let state = &current.state;
        let project = required_string(state, "project")?;
        let (Some(agent_id), Some(token_id)) = (int(state, "agent_id"), int(state, "token_id"))
        else {
            return Ok(None);
        };
        let active = match client.agent_tokens(&project, agent_id).await {
            Ok(list) => list,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(gitlab_error(e)),
        };
        let Some(token) = active.iter().find(|t| t.id == token_id) else {
            return Ok(None);
        };
        let mut new = state.clone();
        set(&mut new, "created_at", token.created_at.as_str().into());
        let private = Private::decode(&current.private);
        let status = match (secret_target(state), &private.token_sha256) {
            (Some(target), Some(hash)) => {
                let kube = kube(ctx, state).await?;
                let held = kube
                    .read_secret_key(&target.namespace, &target.name, &target.key)
                    .await
                    .map_err(kube_error)?;
                if held.is_some_and(|v| &token_hash(v.expose()) == hash) {
                    "active"
                } else {
                    "secret_out_of_sync"
                }
            }
            _ => "active",
        };
        set(&mut new, "status", status.into());
        Ok(Some(NewState {
            state: new,
            private: current.private,
        }))
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let needs_token = !req
            .planned
            .get_attr("token_id")
            .is_some_and(Value::is_known);
        if needs_token {
            return self
                .issue(ctx, &req.planned, int(&req.prior, "token_id"))
                .await;
        }
        if let Some(target) = secret_target(&req.planned) {
            let kube = kube(ctx, &req.planned).await?;
            record_settings(&kube, &target, &settings_json(&req.planned))
                .await
                .map_err(kube_error)?;
        }
        Ok(NewState {
            state: req.planned,
            private: req.private,
        })
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let client = gitlab(ctx)?;
        let state = &prior.state;
        let project = required_string(state, "project")?;
        if let (Some(agent_id), Some(token_id)) = (int(state, "agent_id"), int(state, "token_id")) {
            match client
                .revoke_agent_token(&project, agent_id, token_id)
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(gitlab_error(e)),
            }
        }
        if let Some(target) = secret_target(state) {
            let kube = kube(ctx, state).await?;
            let r = ObjRef::new("v1", "Secret", Some(&target.namespace), &target.name);
            // The token is revoked; remove the Secret only if it holds nothing but our key.
            if let Some(secret) = kube.get(&r).await.map_err(kube_error)? {
                let only_ours = secret["data"]
                    .as_object()
                    .is_none_or(|d| d.keys().all(|k| k == &target.key));
                if only_ours {
                    kube.delete(&r).await.map_err(kube_error)?;
                }
            }
        }
        Ok(())
    }

    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let parts: Vec<&str> = id.rsplitn(3, ':').collect();
        let parsed = match parts.as_slice() {
            [token, agent, project] if !project.is_empty() => token
                .parse::<i64>()
                .ok()
                .zip(agent.parse::<i64>().ok())
                .map(|(t, a)| (project.to_string(), a, t)),
            _ => None,
        };
        let Some((project, agent_id, token_id)) = parsed else {
            return Err(Diagnostic::error(
                "Invalid import ID",
                format!("Expected <project path>:<agent id>:<token id>, like fleet/agents:12:345; got \"{id}\"."),
            )
            .into());
        };
        let client = gitlab(ctx)?;
        let token = client
            .agent_token(&project, agent_id, token_id)
            .await
            .map_err(gitlab_error)?
            .ok_or_else(|| {
                Diagnostic::error(
                    "Agent token not found",
                    format!("Agent {agent_id} of {project} has no active token {token_id}."),
                )
            })?;
        let (secret, settings) = find_token_secret(ctx, token_id).await?;
        let recorded = |name: &str| settings.get(name).cloned().unwrap_or(Value::Null);
        let state = obj([
            ("project", project.as_str().into()),
            ("agent_id", agent_id.into()),
            ("name", token.name.as_str().into()),
            (
                "description",
                opt(token.description.clone().filter(|d| !d.is_empty())),
            ),
            ("kubernetes_secret", secret),
            ("restart", recorded("restart")),
            ("rotation", recorded("rotation")),
            ("expose_token", recorded("expose_token")),
            ("token", Value::Null),
            ("cluster", Value::Null),
            ("token_id", token_id.into()),
            ("status", "active".into()),
            ("created_at", token.created_at.as_str().into()),
            ("last_used_at", opt(token.last_used_at.clone())),
            ("rotated_at", Value::Null),
        ]);
        Ok(NewState::new(state))
    }
}

/// The Secret (in the provider's default cluster) that a token was delivered to, found by
/// the label we put on it, as a `kubernetes_secret` value (null when there is none), with the
/// settings recorded on it.
async fn find_token_secret(
    ctx: &Ctx<ProviderData>,
    token_id: i64,
) -> DiagResult<(Value, BTreeMap<String, Value>)> {
    let kube = match kube(ctx, &Value::Null).await {
        Ok(kube) => kube,
        Err(why) => {
            // Not fatal to the import, but never silent: the next plan delivers the token
            // again because kubernetes_secret is unknown.
            ctx.warn(Diagnostic::warning(
                "Token Secret not looked up",
                format!(
                    "The import could not use the provider's default cluster, so \
                     kubernetes_secret is left unset: {why}"
                ),
            ));
            return Ok((Value::Null, BTreeMap::new()));
        }
    };
    let selector = format!("{TOKEN_ID_LABEL}={token_id}");
    let secrets = kube
        .list("v1", "Secret", None, Some(&selector))
        .await
        .map_err(kube_error)?;
    let Some(s) = secrets.first() else {
        return Ok((Value::Null, BTreeMap::new()));
    };
    let key = s["data"]
        .as_object()
        .and_then(|d| d.keys().next().cloned())
        .unwrap_or_else(|| "token".into());
    let secret = obj([
        ("namespace", opt(s["metadata"]["namespace"].as_str())),
        ("name", opt(s["metadata"]["name"].as_str())),
        ("key", key.into()),
    ]);
    let recorded: serde_json::Value = s["metadata"]["annotations"][SETTINGS_ANNOTATION]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let schema = AgentTokenResource.schema();
    let settings = RECORDED_SETTINGS
        .iter()
        .filter_map(|name| {
            let attr = schema.block.attribute(name)?;
            let value = Value::from_plain_json(&recorded[*name], &attr.value_type()).ok()?;
            Some((name.to_string(), value))
        })
        .collect();
    Ok((secret, settings))
}

/// The settings an import needs, as the JSON recorded on the Secret.
fn settings_json(state: &Value) -> String {
    let recorded: serde_json::Map<String, serde_json::Value> = RECORDED_SETTINGS
        .iter()
        .map(|name| {
            let value = state
                .get_attr(name)
                .and_then(Value::to_plain_json)
                .unwrap_or_default();
            (name.to_string(), value)
        })
        .collect();
    serde_json::Value::Object(recorded).to_string()
}

async fn record_settings(
    kube: &KubeClient,
    target: &SecretTarget,
    settings: &str,
) -> Result<(), KubeError> {
    let r = ObjRef::new("v1", "Secret", Some(&target.namespace), &target.name);
    let annotations = BTreeMap::from([(SETTINGS_ANNOTATION.to_string(), settings.to_string())]);
    kube.annotate(&r, &annotations).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(trigger: &str, rotated_at: &str, rotate_after: Option<&str>) -> Value {
        obj([
            ("name", "prod".into()),
            ("description", Value::Null),
            ("kubernetes_secret", Value::Null),
            ("expose_token", false.into()),
            ("status", "active".into()),
            ("rotated_at", rotated_at.into()),
            ("created_at", rotated_at.into()),
            (
                "rotation",
                obj([
                    ("trigger", trigger.into()),
                    ("rotate_after", opt(rotate_after)),
                    ("confirm_timeout", "10m".into()),
                ]),
            ),
        ])
    }

    #[test]
    fn rotation_is_due_on_trigger_age_drift_and_delivery_changes() {
        let now = now_rfc3339();
        assert!(!rotation_due(
            &state("a", &now, None),
            &state("a", &now, None)
        ));
        assert!(
            rotation_due(&state("a", &now, None), &state("b", &now, None)),
            "trigger"
        );
        let old = "2020-01-01T00:00:00Z";
        assert!(
            rotation_due(
                &state("a", old, Some("720h")),
                &state("a", old, Some("720h"))
            ),
            "age"
        );
        assert!(!rotation_due(
            &state("a", &now, Some("720h")),
            &state("a", &now, Some("720h"))
        ));
        let mut drifted = state("a", &now, None);
        set(&mut drifted, "status", "secret_out_of_sync".into());
        assert!(
            rotation_due(&drifted, &state("a", &now, None)),
            "secret drift"
        );
        let mut moved = state("a", &now, None);
        set(
            &mut moved,
            "kubernetes_secret",
            obj([
                ("namespace", "x".into()),
                ("name", "y".into()),
                ("key", "token".into()),
            ]),
        );
        assert!(
            rotation_due(&state("a", &now, None), &moved),
            "new Secret location"
        );
    }
}
