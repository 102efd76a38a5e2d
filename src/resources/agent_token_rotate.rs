//! The `gitlabflux_agent_token_rotate` action (Terraform 1.14+): the zero-downtime rotation of
//! an agent token's Secret on demand, with the guarantees of `gitlabflux_agent_token`'s own
//! rotation. The token agentk runs (the one the Secret holds) is replaced by a new one,
//! delivered, rolled out and confirmed in use before the old one is revoked. The token
//! resource, whose state an action cannot change, takes the new token at its next apply.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::agent_token::{RecordedSettings, token_error};
use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_name_attribute, gitlab, kube_client,
};
use super::support::{
    data_key_validator, dns_label_validator, duration_validator, kube_error, object_name_validator,
    parse_duration,
};
use crate::agent::token::{
    Delivery, Restart, SecretTarget, TokenSpec, recorded_settings, rotate_now,
};
use crate::tfplug::schema::validators;
use crate::tfplug::{Action, Attribute, Block, Ctx, DiagResult, Nesting, Progress, Schema, Value};

pub struct AgentTokenRotate;

const DEFAULT_CONFIRM_TIMEOUT: &str = "10m";

#[derive(Deserialize)]
struct SecretModel {
    namespace: String,
    name: String,
    key: Option<String>,
}

#[derive(Deserialize)]
struct RestartModel {
    kind: Option<String>,
    namespace: String,
    name: String,
}

#[derive(Deserialize)]
struct Config {
    project: String,
    agent_id: i64,
    name: String,
    description: Option<String>,
    kubernetes_secret: SecretModel,
    restart: Option<Vec<RestartModel>>,
    confirm_timeout: Option<String>,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
}

impl Config {
    /// Where the new token goes. Restarts and the confirmation timeout not given here are
    /// the ones the token resource recorded on the Secret: an action that names fewer
    /// workloads than the resource would revoke the old token while agentk still runs it.
    async fn delivery(&self, ctx: &Ctx<ProviderData>) -> DiagResult<(Delivery, Duration)> {
        let secret = &self.kubernetes_secret;
        let kube = kube_client(ctx, ClusterChoice::of(&self.cluster, &self.cluster_name)).await?;
        let target = SecretTarget {
            namespace: secret.namespace.clone(),
            name: secret.name.clone(),
            key: secret.key.clone().unwrap_or_else(|| "token".into()),
        };
        let recorded = recorded_settings(&kube, &target)
            .await
            .map_err(kube_error)?
            .map(|text| RecordedSettings::parse(&text))
            .unwrap_or_default();
        let restarts = match &self.restart {
            Some(given) => given.iter().map(RestartModel::restart).collect(),
            None => recorded.restarts(),
        };
        let confirm_timeout = self
            .confirm_timeout
            .as_deref()
            .or(recorded.confirm_timeout())
            .unwrap_or(DEFAULT_CONFIRM_TIMEOUT);
        let delivery = Delivery {
            kube,
            target,
            restarts,
            // A Secret that a token resource delivered keeps the settings it recorded.
            settings: String::new(),
        };
        Ok((
            delivery,
            parse_duration(confirm_timeout).unwrap_or(Duration::from_secs(600)),
        ))
    }
}

impl RestartModel {
    fn restart(&self) -> Restart {
        Restart {
            kind: self.kind.clone().unwrap_or_else(|| "Deployment".into()),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

#[async_trait]
impl Action<ProviderData> for AgentTokenRotate {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent_token_rotate"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project").required().description("Project of the agent."),
                Attribute::number("agent_id").required().description("The agent's ID."),
                Attribute::string("name")
                    .required()
                    .description("Name of the new token (the token resource's `name`)."),
                Attribute::string("description").optional().description("Description of the new token."),
                Attribute::object(
                    "kubernetes_secret",
                    vec![
                        Attribute::string("namespace").required().validator(dns_label_validator),
                        Attribute::string("name").required().validator(object_name_validator),
                        Attribute::string("key")
                            .optional()
                            .validator(data_key_validator)
                            .description("Default: `token`."),
                    ],
                )
                .required()
                .description("The Secret agentk reads its token from (the token resource's `kubernetes_secret`)."),
                Attribute::nested(
                    "restart",
                    Nesting::List,
                    vec![
                        Attribute::string("kind")
                            .optional()
                            .validator(validators::one_of(&["Deployment", "StatefulSet", "DaemonSet"]))
                            .description("Default: `Deployment`."),
                        Attribute::string("namespace").required().validator(dns_label_validator),
                        Attribute::string("name").required().validator(object_name_validator),
                    ],
                )
                .optional()
                .description("Workloads restarted after the Secret changes; with them, the old token is revoked only once the new one is used. Default: the ones the `gitlabflux_agent_token` that delivered to the Secret restarts."),
                Attribute::string("confirm_timeout")
                    .optional()
                    .validator(duration_validator)
                    .description("How long to wait for the new token to be used. Default: the token resource's `rotation.confirm_timeout`, else `10m`."),
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster of the Secret, overriding the provider's `kubernetes`."),
                cluster_name_attribute(),
            ])
            .description(
                "Rotates an agent token on demand, with no window without a valid token: a new \
                 token is written into the Secret, the workloads restart, and the old token is \
                 revoked once the new one is in use. The `gitlabflux_agent_token` resource takes \
                 the new token at its next apply.",
            ),
        )
    }

    async fn invoke(
        &self,
        ctx: &Ctx<ProviderData>,
        config: &Value,
        progress: &Progress,
    ) -> DiagResult<()> {
        let config: Config = config.decode()?;
        let (delivery, confirm_timeout) = config.delivery(ctx).await?;
        let confirmed = !delivery.restarts.is_empty();
        let spec = TokenSpec {
            project: &config.project,
            agent_id: config.agent_id,
            name: &config.name,
            description: config.description.as_deref().unwrap_or_default(),
            recorded: None,
            recorded_hash: None,
            delivery: Some(delivery),
            confirm_timeout,
            displace_foreign: false,
        };
        progress.report(format!(
            "Rotating the token of agent {} in Secret {}/{}",
            config.agent_id, config.kubernetes_secret.namespace, config.kubernetes_secret.name
        ));
        let (replaced, settled) = rotate_now(gitlab(ctx)?, &spec, ctx.cancelled())
            .await
            .map_err(|stopped| token_error(stopped.error))?;
        let replaced = replaced.map_or_else(|| "none".to_string(), |id| id.to_string());
        let how = if confirmed {
            "delivered and confirmed in use"
        } else {
            "delivered (no workload to restart, so its use was not confirmed)"
        };
        progress.report(format!(
            "Token {} {how}; token {replaced} revoked",
            settled.token.id
        ));
        Ok(())
    }
}
