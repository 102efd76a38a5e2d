//! `gitlabflux_agent_token`: an agent token written straight into a cluster Secret, with
//! zero-downtime overlap rotation (create, deliver, restart, confirm `last_used_at`, revoke the
//! old one). The token value is kept in state only with `expose_token = true`.
//! Import ID: `<project path>:<agent id>:<token id>`, with `@<cluster_name>` after it when
//! its Secret is in one of the provider's `clusters`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_identity_attribute, cluster_name_attribute, gitlab, import_target, kube_client,
    on_cluster,
};
use super::support::{
    data_key_validator, dns_label_validator, duration_validator, now_rfc3339,
    object_name_validator, parse_duration, plan_credential_facts, prior_status, rotation_requested,
};
use crate::agent::token::{
    self, Delivery, Restart, SecretTarget, Settled, Status, TokenError, TokenSpec, Want, token_hash,
};
use crate::secret::Secret;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics,
    IdentityAttribute, IdentitySchema, Nesting, NewState, PlanContext, Resource, Schema, Value,
};

pub struct AgentTokenResource;

const DEFAULT_CONFIRM_TIMEOUT: &str = "10m";
/// [`TokenFacts`]' attributes, to mark unknown when a new token is due.
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

/// The resource's attributes.
#[derive(Debug, Serialize, Deserialize)]
struct TokenModel {
    project: String,
    agent_id: i64,
    name: String,
    description: Option<String>,
    kubernetes_secret: Option<SecretModel>,
    restart: Option<Vec<RestartModel>>,
    rotation: Option<RotationModel>,
    expose_token: bool,
    displace_foreign_tokens: bool,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    #[serde(flatten)]
    facts: TokenFacts,
}

/// Computed attributes that change only when the token is (re)created.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFacts {
    token_id: Option<i64>,
    status: Option<String>,
    created_at: Option<String>,
    last_used_at: Option<String>,
    rotated_at: Option<String>,
    token: Option<Secret>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SecretModel {
    namespace: String,
    name: String,
    key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RestartModel {
    kind: String,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RotationModel {
    rotate_after: Option<String>,
    trigger: Option<String>,
    confirm_timeout: String,
}

/// The settings recorded on the token's Secret: an import finds them nowhere else, and the
/// rotate action falls back on them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct RecordedSettings {
    restart: Option<Vec<RestartModel>>,
    rotation: Option<RotationModel>,
    expose_token: Option<bool>,
    displace_foreign_tokens: Option<bool>,
}

impl RecordedSettings {
    /// What a token resource recorded (nothing when the text is not its record).
    pub(super) fn parse(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The workloads the resource restarts after writing a new token.
    pub(super) fn restarts(&self) -> Vec<Restart> {
        self.restart
            .iter()
            .flatten()
            .map(RestartModel::restart)
            .collect()
    }

    /// How long the resource waits for a new token to be used.
    pub(super) fn confirm_timeout(&self) -> Option<&str> {
        self.rotation.as_ref().map(|r| r.confirm_timeout.as_str())
    }
}

impl RestartModel {
    fn restart(&self) -> Restart {
        Restart {
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

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

impl TokenModel {
    fn target(&self) -> Option<SecretTarget> {
        self.kubernetes_secret.as_ref().map(|s| SecretTarget {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            key: s.key.clone(),
        })
    }

    fn settings(&self) -> String {
        let recorded = RecordedSettings {
            restart: self.restart.clone(),
            rotation: self.rotation.clone(),
            expose_token: Some(self.expose_token),
            displace_foreign_tokens: Some(self.displace_foreign_tokens),
        };
        serde_json::to_string(&recorded).unwrap_or_default()
    }

    /// Where the token goes, with the cluster client to get it there.
    async fn delivery(&self, ctx: &Ctx<ProviderData>) -> DiagResult<Option<Delivery>> {
        let Some(target) = self.target() else {
            return Ok(None);
        };
        Ok(Some(Delivery {
            kube: kube_client(ctx, ClusterChoice::of(&self.cluster, &self.cluster_name)).await?,
            target,
            restarts: self
                .restart
                .iter()
                .flatten()
                .map(RestartModel::restart)
                .collect(),
            settings: self.settings(),
        }))
    }

    /// The domain's view of this resource, with what state remembers.
    async fn spec<'a>(
        &'a self,
        ctx: &Ctx<ProviderData>,
        recorded: Option<i64>,
        recorded_hash: Option<&'a str>,
    ) -> DiagResult<TokenSpec<'a>> {
        Ok(TokenSpec {
            project: &self.project,
            agent_id: self.agent_id,
            name: &self.name,
            description: self.description.as_deref().unwrap_or_default(),
            recorded,
            recorded_hash,
            delivery: self.delivery(ctx).await?,
            confirm_timeout: self.confirm_timeout(),
            displace_foreign: self.displace_foreign_tokens,
        })
    }

    fn confirm_timeout(&self) -> Duration {
        let text = self
            .rotation
            .as_ref()
            .map_or(DEFAULT_CONFIRM_TIMEOUT, |r| r.confirm_timeout.as_str());
        parse_duration(text).unwrap_or(Duration::from_secs(600))
    }
}

/// What the plan asks of the token: a new one when inputs that need the value delivered
/// changed, the trigger changed, the Secret lost it or it is older than `rotate_after`;
/// finishing a rotation cut short when state says `rotating`; nothing otherwise. Compares the
/// plan's raw values, because an input still unknown at plan time counts as changed.
fn due(prior: &Value, planned: &Value) -> Option<Want> {
    let changed = |name: &str| prior.get_attr(name) != planned.get_attr(name);
    if ROTATING_INPUTS.iter().any(|n| changed(n)) || rotation_requested(prior, planned) {
        return Some(Want::NewToken);
    }
    // Another cluster (or new credentials for it): deliver there, a new token if it has none.
    if changed("cluster") {
        return Some(Want::Finish);
    }
    match prior_status(prior).as_deref() {
        Some(s) if s == Status::Active.as_str() => None,
        Some(s) if s == Status::Rotating.as_str() => Some(Want::Finish),
        _ => Some(Want::NewToken),
    }
}

pub(super) fn token_error(e: TokenError) -> Diagnostics {
    let d = Diagnostic::error(e.summary(), e.detail());
    match e {
        TokenError::NotConfirmed(_) => {
            d.at(AttrPath::root().attr("rotation").attr("confirm_timeout"))
        }
        TokenError::NoNamespace { .. } => {
            d.at(AttrPath::root().attr("kubernetes_secret").attr("namespace"))
        }
        TokenError::NoWorkload { index, .. } => d.at(AttrPath::root()
            .attr("restart")
            .index(index as i64)
            .attr("name")),
        TokenError::NoRoom { .. } => d.at(AttrPath::root().attr("displace_foreign_tokens")),
        _ => d,
    }
    .into()
}

impl AgentTokenResource {
    /// Converges the resource's tokens (see [`token::converge`]) and returns the new state. A
    /// failed update whose Secret already holds a successor returns that as partial state
    /// (`rotating`), so the next apply finishes the rotation instead of starting another. A
    /// failed create returns none: Terraform would taint it, and replacing a tainted token
    /// would revoke the one in the Secret; the next create adopts what the Secret holds.
    async fn settle(
        &self,
        ctx: &Ctx<ProviderData>,
        mut model: TokenModel,
        want: Want,
        prior: Option<PriorToken>,
    ) -> DiagResult<NewState> {
        let recorded = prior.as_ref().map(|p| p.id);
        let recorded_hash = prior.as_ref().and_then(|p| p.private.token_sha256.clone());
        let spec = model.spec(ctx, recorded, recorded_hash.as_deref()).await?;
        let outcome = token::converge(gitlab(ctx)?, &spec, want, ctx.cancelled()).await;
        drop(spec);
        let settled = match outcome {
            Ok(settled) => settled,
            Err(stopped) => {
                let successor = stopped
                    .current
                    .filter(|c| recorded.is_some() && Some(*c) != recorded);
                let Some(successor) = successor else {
                    return Err(token_error(stopped.error));
                };
                let partial = rotating(model, successor)?;
                ctx.keep_partial_state(partial);
                return Err(token_error(stopped.error));
            }
        };
        warn_displaced(ctx, &settled);
        // The run kept state's token (it only finished a rotation): what state knew holds.
        let kept = prior.filter(|p| p.id == settled.token.id && !settled.created);
        // Without a Secret, a kept token's value is only in state (expose_token).
        let value = settled
            .value
            .or_else(|| kept.as_ref().and_then(|p| p.value.clone()));
        let rotated_at = kept.and_then(|p| p.rotated_at).unwrap_or_else(now_rfc3339);
        let private = Private {
            token_sha256: value.as_ref().map(|v| token_hash(v.expose())),
        };
        model.facts = TokenFacts {
            token_id: Some(settled.token.id),
            status: Some(Status::Active.as_str().into()),
            created_at: Some(settled.token.created_at),
            last_used_at: settled.token.last_used_at,
            rotated_at: Some(rotated_at),
            token: value.filter(|_| model.expose_token),
        };
        Ok(NewState::encode(&model)?.with_private(private.encode()))
    }
}

/// What state remembers of the token an update replaces or finishes.
struct PriorToken {
    id: i64,
    private: Private,
    value: Option<Secret>,
    rotated_at: Option<String>,
}

/// State for a rotation cut short after its token was delivered: the successor, to finish.
fn rotating(mut model: TokenModel, successor: i64) -> DiagResult<NewState> {
    model.facts = TokenFacts {
        token_id: Some(successor),
        status: Some(Status::Rotating.as_str().into()),
        ..TokenFacts::default()
    };
    NewState::encode(&model)
}

fn warn_displaced(ctx: &Ctx<ProviderData>, settled: &Settled) {
    if settled.displaced.is_empty() {
        return;
    }
    ctx.warn(
        Diagnostic::warning(
            "Revoked an agent token this resource did not create",
            format!(
                "displace_foreign_tokens is set and the agent had no room for a new token, so \
                 {} was revoked. Whatever used it no longer authenticates.",
                settled.displaced.join(" and ")
            ),
        )
        .at(AttrPath::root().attr("displace_foreign_tokens")),
    );
}

#[async_trait]
impl Resource<ProviderData> for AgentTokenResource {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent_token"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("project", &["project"])
                    .description("Project of the agent."),
                IdentityAttribute::number("agent_id", &["agent_id"]).description("The agent's ID."),
                IdentityAttribute::number("token_id", &["token_id"])
                    .description("The current token's ID; a rotation moves it to the new token."),
                cluster_identity_attribute(),
            ],
            import_id: |parts| match parts {
                [project, agent, token, cluster] => {
                    on_cluster(format!("{project}:{agent}:{token}"), cluster)
                }
                _ => parts.join(":"),
            },
        })
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
                        Attribute::string("namespace").required().validator(dns_label_validator),
                        Attribute::string("name").required().validator(object_name_validator),
                        Attribute::string("key").default("token").validator(data_key_validator),
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
                        Attribute::string("namespace").required().validator(dns_label_validator),
                        Attribute::string("name").required().validator(object_name_validator),
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
                Attribute::bool("displace_foreign_tokens")
                    .default(false)
                    .description("When the agent already has two active tokens this resource did not create, revoke the least recently used one to make room (with a warning naming it). Off: such an apply fails and revokes nothing."),
                Attribute::string("token").computed().sensitive().description("The token, only with `expose_token = true`."),
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster of `kubernetes_secret`, overriding the provider's `kubernetes`."),
                cluster_name_attribute(),
                Attribute::number("token_id").computed(),
                Attribute::string("status").computed().description("`active`; `rotating` when a rotation was cut short (the next apply finishes it); `secret_out_of_sync` when the Secret lost the token."),
                Attribute::string("created_at").computed(),
                Attribute::string("last_used_at").computed(),
                Attribute::string("rotated_at").computed(),
            ])
            .description(
                "A GitLab agent token delivered straight into a cluster Secret, rotated without \
                 downtime: GitLab's two-active-tokens limit is respected, the new token is \
                 confirmed in use before the old one is revoked.\n\n\
                 Crash-safe: the Secret records which token it holds (label \
                 `gitlabflux.io/agent-token-id`, annotation `gitlabflux.io/agent-token-sha256`), \
                 so a rotation cut short by an error, a lost answer or a killed run is finished \
                 by the next apply (status `rotating`) rather than started again, and no token is \
                 revoked while the Secret holds it or before its successor is in use. Tokens it \
                 creates end their description with `[created by terraform-provider-gitlabflux]`, \
                 so one whose create answer was lost is found and revoked. Tokens it did not \
                 create are never revoked, unless `displace_foreign_tokens = true`.",
            ),
        )
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        if plan.is_destroy() {
            return Ok(());
        }
        let due = !plan.is_create() && due(&plan.prior, &plan.planned).is_some();
        plan_credential_facts::<TokenFacts>(plan, due, &TOKEN_FACTS)?;
        // Known now: without expose_token the value never reaches state.
        #[derive(Deserialize)]
        struct Exposure {
            expose_token: Option<bool>,
        }
        #[derive(Serialize)]
        struct NoToken {
            token: Option<Secret>,
        }
        let exposure: Exposure = plan.planned.decode()?;
        if exposure.expose_token == Some(false) {
            plan.overlay(&NoToken { token: None })?;
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.settle(ctx, req.planned.decode()?, Want::NewToken, None)
            .await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let mut model: TokenModel = current.state.decode()?;
        let Some(token_id) = model.facts.token_id else {
            return Ok(None);
        };
        let private = Private::decode(&current.private);
        let spec = model
            .spec(ctx, Some(token_id), private.token_sha256.as_deref())
            .await?;
        let found = token::inspect(gitlab(ctx)?, &spec)
            .await
            .map_err(token_error)?;
        drop(spec);
        let Some(found) = found else {
            return Ok(None);
        };
        if let Some(recorded) = found.recorded {
            model.facts.created_at = Some(recorded.created_at);
        }
        model.facts.status = Some(found.status.as_str().into());
        Ok(Some(
            NewState::encode(&model)?.with_private(current.private),
        ))
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let planned: TokenModel = req.planned.decode()?;
        if planned.facts.token_id.is_none() {
            let prior: TokenModel = req.prior.decode()?;
            let want = due(&req.prior, &req.planned).unwrap_or(Want::NewToken);
            let recorded = prior.facts.token_id.map(|id| PriorToken {
                id,
                private: Private::decode(&req.private),
                value: prior.facts.token,
                rotated_at: prior.facts.rotated_at,
            });
            return self.settle(ctx, planned, want, recorded).await;
        }
        if let Some(delivery) = planned.delivery(ctx).await? {
            token::record_delivery_settings(&delivery)
                .await
                .map_err(token_error)?;
        }
        Ok(NewState::encode(&planned)?.with_private(req.private))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let model: TokenModel = prior.state.decode()?;
        let private = Private::decode(&prior.private);
        let spec = model
            .spec(ctx, model.facts.token_id, private.token_sha256.as_deref())
            .await?;
        token::retire(gitlab(ctx)?, &spec)
            .await
            .map_err(token_error)
    }

    async fn import(&self, ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (id, cluster_name) = import_target(id);
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
                format!(
                    "Expected <project path>:<agent id>:<token id>, like fleet/agents:12:345 \
                     (with @<cluster_name> after it when its Secret is in one of the \
                     provider's clusters); got \"{id}\"."
                ),
            )
            .into());
        };
        let token = gitlab(ctx)?
            .agent_token(&project, agent_id, token_id)
            .await
            .map_err(|e| token_error(e.into()))?
            .ok_or_else(|| {
                Diagnostic::error(
                    "Agent token not found",
                    format!("Agent {agent_id} of {project} has no active token {token_id}."),
                )
            })?;
        let (secret, settings) = find_token_secret(ctx, cluster_name, token_id).await?;
        let model = TokenModel {
            project,
            agent_id,
            name: token.name,
            description: token
                .description
                .as_deref()
                .map(token::user_description)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            kubernetes_secret: secret,
            restart: settings.restart,
            rotation: settings.rotation,
            expose_token: settings.expose_token.unwrap_or(false),
            displace_foreign_tokens: settings.displace_foreign_tokens.unwrap_or(false),
            cluster: None,
            cluster_name: cluster_name.map(str::to_string),
            facts: TokenFacts {
                token_id: Some(token_id),
                status: Some("active".into()),
                created_at: Some(token.created_at),
                last_used_at: token.last_used_at,
                rotated_at: None,
                token: None,
            },
        };
        NewState::encode(&model)
    }
}

/// The Secret (in the named cluster, else the provider's default) that a token was
/// delivered to, with the settings recorded on it; none when no Secret carries the token.
async fn find_token_secret(
    ctx: &Ctx<ProviderData>,
    cluster_name: Option<&str>,
    token_id: i64,
) -> DiagResult<(Option<SecretModel>, RecordedSettings)> {
    let kube = match kube_client(ctx, ClusterChoice::named(cluster_name)).await {
        Ok(kube) => kube,
        Err(why) => {
            // Not fatal to the import, but never silent: the next plan delivers the token
            // again because kubernetes_secret is unknown.
            ctx.warn(Diagnostic::warning(
                "Token Secret not looked up",
                format!(
                    "The import could not reach the token's cluster, so kubernetes_secret \
                     is left unset: {why}"
                ),
            ));
            return Ok((None, RecordedSettings::default()));
        }
    };
    let Some((target, recorded)) = token::find_delivery(&kube, token_id)
        .await
        .map_err(token_error)?
    else {
        return Ok((None, RecordedSettings::default()));
    };
    let settings = recorded
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let secret = SecretModel {
        namespace: target.namespace,
        name: target.name,
        key: target.key,
    };
    Ok((Some(secret), settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(trigger: &str, rotated_at: &str, rotate_after: Option<&str>) -> TokenModel {
        TokenModel {
            project: "fleet/agents".into(),
            agent_id: 1,
            name: "prod".into(),
            description: None,
            kubernetes_secret: None,
            restart: None,
            rotation: Some(RotationModel {
                rotate_after: rotate_after.map(str::to_string),
                trigger: Some(trigger.into()),
                confirm_timeout: "10m".into(),
            }),
            expose_token: false,
            displace_foreign_tokens: false,
            cluster: None,
            cluster_name: None,
            facts: TokenFacts {
                token_id: Some(7),
                status: Some("active".into()),
                created_at: Some(rotated_at.into()),
                last_used_at: None,
                rotated_at: Some(rotated_at.into()),
                token: None,
            },
        }
    }

    fn state(m: &TokenModel) -> Value {
        let ty = AgentTokenResource.schema().value_type();
        Value::encode(m)
            .expect("encode")
            .conform(&ty)
            .expect("conform")
    }

    #[test]
    fn rotation_is_due_on_trigger_age_drift_and_delivery_changes() {
        let now = now_rfc3339();
        let due =
            |a: &TokenModel, b: &TokenModel| due(&state(a), &state(b)) == Some(Want::NewToken);
        assert!(!due(&model("a", &now, None), &model("a", &now, None)));
        assert!(
            due(&model("a", &now, None), &model("b", &now, None)),
            "trigger"
        );
        let old = "2020-01-01T00:00:00Z";
        assert!(
            due(
                &model("a", old, Some("720h")),
                &model("a", old, Some("720h"))
            ),
            "age"
        );
        assert!(!due(
            &model("a", &now, Some("720h")),
            &model("a", &now, Some("720h"))
        ));
        let mut drifted = model("a", &now, None);
        drifted.facts.status = Some("secret_out_of_sync".into());
        assert!(due(&drifted, &model("a", &now, None)), "secret drift");
        let mut moved = model("a", &now, None);
        moved.kubernetes_secret = Some(SecretModel {
            namespace: "x".into(),
            name: "y".into(),
            key: "token".into(),
        });
        assert!(due(&model("a", &now, None), &moved), "new Secret location");
    }

    #[test]
    fn a_rotation_cut_short_is_finished_not_started_again() {
        let now = now_rfc3339();
        let mut cut_short = model("b", &now, None);
        cut_short.facts.status = Some("rotating".into());
        assert_eq!(
            due(&state(&cut_short), &state(&model("b", &now, None))),
            Some(Want::Finish)
        );
        // A new trigger on top asks for a new token all the same.
        assert_eq!(
            due(&state(&cut_short), &state(&model("c", &now, None))),
            Some(Want::NewToken)
        );
    }

    #[test]
    fn an_unknown_rotating_input_counts_as_a_change() {
        let now = now_rfc3339();
        let prior = state(&model("a", &now, None));
        let mut planned = prior.clone();
        if let Value::Object(fields) = &mut planned {
            fields.insert("description".into(), Value::unknown());
        }
        assert_eq!(due(&prior, &planned), Some(Want::NewToken));
    }
}
