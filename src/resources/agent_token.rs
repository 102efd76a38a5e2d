//! `gitlabflux_agent_token`: an agent token written straight into a cluster Secret, with
//! zero-downtime overlap rotation (create, deliver, restart, confirm `last_used_at`, revoke the
//! old one). The token value is kept in state only with `expose_token = true`.
//! Import ID: `<project path>:<agent id>:<token id>`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterModel, ProviderData, cluster_connection_attributes, gitlab, kube_client,
};
use super::support::{
    data_key_validator, dns_label_validator, duration_validator, object_name_validator,
    parse_duration,
};
use crate::agent::token::{
    self, Delivery, Restart, SecretTarget, TokenError, TokenSpec, token_hash,
};
use crate::secret::Secret;
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, Diagnostics, Nesting,
    NewState, PlanContext, Resource, Schema, Value,
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
    cluster: Option<ClusterModel>,
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

/// The settings recorded on the token's Secret: an import finds them nowhere else.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordedSettings {
    restart: Option<Vec<RestartModel>>,
    rotation: Option<RotationModel>,
    expose_token: Option<bool>,
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
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
        };
        serde_json::to_string(&recorded).unwrap_or_default()
    }

    /// Where the token goes, with the cluster client to get it there.
    async fn delivery(&self, ctx: &Ctx<ProviderData>) -> DiagResult<Option<Delivery>> {
        let Some(target) = self.target() else {
            return Ok(None);
        };
        Ok(Some(Delivery {
            kube: kube_client(ctx, self.cluster.as_ref()).await?,
            target,
            restarts: self
                .restart
                .iter()
                .flatten()
                .map(|r| Restart {
                    kind: r.kind.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                })
                .collect(),
            settings: self.settings(),
        }))
    }

    fn confirm_timeout(&self) -> Duration {
        let text = self
            .rotation
            .as_ref()
            .map_or(DEFAULT_CONFIRM_TIMEOUT, |r| r.confirm_timeout.as_str());
        parse_duration(text).unwrap_or(Duration::from_secs(600))
    }
}

/// Whether the plan needs a new token: inputs that need the value delivered changed, the
/// trigger changed, the token is out of sync, or it is older than `rotate_after`. Compares
/// the plan's raw values, because an input still unknown at plan time counts as changed.
fn rotation_due(prior: &Value, planned: &Value) -> bool {
    let changed = |name: &str| prior.get_attr(name) != planned.get_attr(name);
    if ROTATING_INPUTS.iter().any(|n| changed(n)) {
        return true;
    }
    let trigger = |v: &Value| {
        v.walk(&AttrPath::root().attr("rotation").attr("trigger"))
            .cloned()
    };
    if trigger(prior) != trigger(planned) {
        return true;
    }
    // Lenient views: the prior state is known, the plan may not be.
    #[derive(Deserialize)]
    struct Age {
        status: Option<String>,
        rotated_at: Option<String>,
        created_at: Option<String>,
    }
    #[derive(Deserialize)]
    struct Policy {
        rotation: Option<RotateAfter>,
    }
    #[derive(Deserialize)]
    struct RotateAfter {
        rotate_after: Option<String>,
    }
    let Ok(age) = prior.decode::<Age>() else {
        return true;
    };
    if age.status.as_deref() != Some("active") {
        return true;
    }
    let after = planned
        .decode::<Policy>()
        .ok()
        .and_then(|p| p.rotation?.rotate_after)
        .and_then(|s| parse_duration(&s));
    let Some(after) = after else {
        return false;
    };
    age.rotated_at
        .or(age.created_at)
        .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= after)
}

fn token_error(e: TokenError) -> Diagnostics {
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
        _ => d,
    }
    .into()
}

impl AgentTokenResource {
    /// Creates a token (replacing `replaces` if given) and returns the new state.
    async fn issue(
        &self,
        ctx: &Ctx<ProviderData>,
        mut model: TokenModel,
        replaces: Option<i64>,
    ) -> DiagResult<NewState> {
        let spec = TokenSpec {
            project: &model.project,
            agent_id: model.agent_id,
            name: &model.name,
            description: model.description.as_deref().unwrap_or_default(),
            replaces,
            delivery: model.delivery(ctx).await?,
            confirm_timeout: model.confirm_timeout(),
        };
        let issued = token::issue(gitlab(ctx)?, &spec, ctx.cancelled())
            .await
            .map_err(token_error)?;
        let private = Private {
            token_sha256: Some(token_hash(issued.value.expose())),
        };
        model.facts = TokenFacts {
            token_id: Some(issued.token.id),
            status: Some("active".into()),
            created_at: Some(issued.token.created_at),
            last_used_at: issued.token.last_used_at,
            rotated_at: Some(now_rfc3339()),
            token: model.expose_token.then_some(issued.value),
        };
        Ok(NewState::encode(&model)?.with_private(private.encode()))
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
            if rotation_due(&plan.prior, &plan.planned) {
                plan.mark_unknown(&TOKEN_FACTS);
            } else {
                // No new token: its facts stay what they are.
                let facts: TokenFacts = plan.prior.decode()?;
                plan.overlay(&facts)?;
            }
        }
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
        self.issue(ctx, req.planned.decode()?, None).await
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
        let Some(active) =
            token::active_token(gitlab(ctx)?, &model.project, model.agent_id, token_id)
                .await
                .map_err(token_error)?
        else {
            return Ok(None);
        };
        model.facts.created_at = Some(active.created_at);
        let private = Private::decode(&current.private);
        let in_sync = match (model.target(), &private.token_sha256) {
            (Some(target), Some(hash)) => {
                let kube = kube_client(ctx, model.cluster.as_ref()).await?;
                token::secret_holds(&kube, &target, hash)
                    .await
                    .map_err(token_error)?
            }
            _ => true,
        };
        model.facts.status = Some(
            if in_sync {
                "active"
            } else {
                "secret_out_of_sync"
            }
            .into(),
        );
        Ok(Some(
            NewState::encode(&model)?.with_private(current.private),
        ))
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        let planned: TokenModel = req.planned.decode()?;
        if planned.facts.token_id.is_none() {
            let prior: TokenModel = req.prior.decode()?;
            return self.issue(ctx, planned, prior.facts.token_id).await;
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
        let kube = match model.target() {
            Some(target) => Some((kube_client(ctx, model.cluster.as_ref()).await?, target)),
            None => None,
        };
        token::revoke(
            gitlab(ctx)?,
            &model.project,
            model.agent_id,
            model.facts.token_id,
            kube.as_ref().map(|(k, t)| (k, t)),
        )
        .await
        .map_err(token_error)
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
        let (secret, settings) = find_token_secret(ctx, token_id).await?;
        let model = TokenModel {
            project,
            agent_id,
            name: token.name,
            description: token.description.filter(|d| !d.is_empty()),
            kubernetes_secret: secret,
            restart: settings.restart,
            rotation: settings.rotation,
            expose_token: settings.expose_token.unwrap_or(false),
            cluster: None,
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

/// The Secret (in the provider's default cluster) that a token was delivered to, with the
/// settings recorded on it; none when no Secret carries the token.
async fn find_token_secret(
    ctx: &Ctx<ProviderData>,
    token_id: i64,
) -> DiagResult<(Option<SecretModel>, RecordedSettings)> {
    let kube = match kube_client(ctx, None).await {
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
            cluster: None,
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
        let due = |a: &TokenModel, b: &TokenModel| rotation_due(&state(a), &state(b));
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
    fn an_unknown_rotating_input_counts_as_a_change() {
        let now = now_rfc3339();
        let prior = state(&model("a", &now, None));
        let mut planned = prior.clone();
        if let Value::Object(fields) = &mut planned {
            fields.insert("description".into(), Value::unknown());
        }
        assert!(rotation_due(&prior, &planned));
    }
}
