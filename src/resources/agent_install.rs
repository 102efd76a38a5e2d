//! `gitlabflux_agent_install`: agentk in a cluster (namespace, service account, RBAC,
//! Deployment reading the token Secret), applied server-side as field manager `gitlabflux`.
//! Drift (deleted or edited objects, a token Secret the pods have not picked up) plans a
//! repair. Import ID: `<namespace>/<name>`
//! (`@<cluster_name>` after it in one of the provider's `clusters`).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::context::{
    ClusterChoice, ClusterModel, ProviderData, cluster_connection_attributes,
    cluster_identity_attribute, cluster_name_attribute, gitlab, import_target, kube_client,
    on_cluster,
};
use super::support::{
    ADOPT_EXISTING, agent_error, data_key_validator, dns_label_validator, gitlab_error,
    object_name_validator, split_import_id,
};
use crate::agent::AgentError;
use crate::agent::install::{self, DEFAULT_IMAGE, InstallSpec, Occasion, Rbac};
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, Attribute, Block, Ctx, DiagResult, IdentityAttribute, IdentitySchema, NewState,
    PlanContext, Resource, Schema,
};

pub struct AgentInstall;

/// How long an apply may wait for new kinds to be served, and a destroy for agentk's objects
/// to be gone.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The resource's attributes.
#[derive(Debug, Serialize, Deserialize)]
struct InstallModel {
    namespace: String,
    name: String,
    kas_address: Option<String>,
    image: String,
    replicas: i64,
    /// Required; absent only in an imported state that read has not completed yet.
    token_secret: Option<TokenSecretModel>,
    rbac: String,
    adopt_existing: bool,
    cluster: Option<ClusterModel>,
    cluster_name: Option<String>,
    token_in_sync: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TokenSecretModel {
    name: String,
    key: String,
}

impl InstallModel {
    fn spec(&self, kas_address: String) -> InstallSpec {
        let secret = self.token_secret.as_ref();
        InstallSpec {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            replicas: self.replicas,
            kas_address,
            token_secret_name: secret.map(|s| s.name.clone()).unwrap_or_default(),
            token_secret_key: secret.map(|s| s.key.clone()).unwrap_or_default(),
            rbac: match self.rbac.as_str() {
                "cluster-admin" => Rbac::ClusterAdmin,
                _ => Rbac::Impersonate,
            },
            token_sha256: None,
        }
    }
}

impl AgentInstall {
    async fn apply(
        &self,
        ctx: &Ctx<ProviderData>,
        mut model: InstallModel,
        creating: bool,
    ) -> DiagResult<NewState> {
        let kas_address = match model.kas_address.clone() {
            Some(k) => k,
            None => gitlab(ctx)?
                .metadata()
                .await
                .map_err(gitlab_error)?
                .kas_external_url
                .ok_or_else(|| agent_error(AgentError::NoAgentServer))?,
        };
        let kube = kube_client(ctx, ClusterChoice::of(&model.cluster, &model.cluster_name)).await?;
        let occasion = match creating {
            true => Occasion::Create {
                adopt_existing: model.adopt_existing,
            },
            false => Occasion::Update,
        };
        install::install(&kube, &model.spec(kas_address.clone()), TIMEOUT, occasion)
            .await
            .map_err(agent_error)?;
        model.kas_address = Some(kas_address);
        model.token_in_sync = Some(true);
        NewState::encode(&model)
    }
}

#[async_trait]
impl Resource<ProviderData> for AgentInstall {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent_install"
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(IdentitySchema {
            version: 0,
            attributes: vec![
                IdentityAttribute::string("namespace", &["namespace"])
                    .description("Namespace of agentk."),
                IdentityAttribute::string("name", &["name"])
                    .description("Name of agentk's Deployment."),
                cluster_identity_attribute(),
            ],
            import_id: |parts| match parts {
                [namespace, name, cluster] => on_cluster(format!("{namespace}/{name}"), cluster),
                _ => parts.join("/"),
            },
        })
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("namespace").default("gitlab-agent").requires_replace().validator(dns_label_validator).description("Namespace for agentk."),
                Attribute::string("name").default("gitlab-agent").requires_replace().validator(dns_label_validator).description("Name of the Deployment and service account."),
                Attribute::string("kas_address")
                    .optional()
                    .computed()
                    .use_state_for_unknown()
                    .description("Agent server address. Default: GitLab's `/metadata` `kas.externalUrl`."),
                Attribute::string("image").default(DEFAULT_IMAGE).description("agentk image."),
                Attribute::number("replicas").default(2_i64).validator(validators::int_between(1, 10)),
                Attribute::object(
                    "token_secret",
                    vec![
                        Attribute::string("name").required().validator(object_name_validator),
                        Attribute::string("key").default("token").validator(data_key_validator),
                    ],
                )
                .required()
                .description("Secret holding the agent token (e.g. `gitlabflux_agent_token.kubernetes_secret`)."),
                Attribute::string("rbac")
                    .default("impersonate")
                    .validator(validators::one_of(&["impersonate", "cluster-admin"]))
                    .description(
                        "`impersonate` (default): only the right to impersonate users, groups and \
                         service accounts that shared access needs. `cluster-admin`: full rights.",
                    ),
                Attribute::bool("adopt_existing").default(false).description(ADOPT_EXISTING),
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster to install into, overriding the provider's `kubernetes`."),
                cluster_name_attribute(),
                Attribute::bool("token_in_sync")
                    .computed()
                    .description("Whether the running pods use the token now in the Secret."),
            ])
            .description("agentk, the GitLab agent for Kubernetes, installed in a cluster with least-privilege RBAC."),
        )
    }

    async fn modify_plan(
        &self,
        _ctx: &Ctx<ProviderData>,
        plan: &mut PlanContext,
    ) -> DiagResult<()> {
        // A token the pods have not picked up is drift to repair: plan it back to true.
        if !plan.is_create() && plan.config.is_wholly_known() {
            let mut model: InstallModel = plan.planned.decode()?;
            model.token_in_sync = Some(true);
            plan.set_planned(&model)?;
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, req.planned.decode()?, true).await
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, req.planned.decode()?, false).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let mut model: InstallModel = current.state.decode()?;
        let kube = kube_client(ctx, ClusterChoice::of(&model.cluster, &model.cluster_name)).await?;
        let spec = model.spec(model.kas_address.clone().unwrap_or_default());
        let Some((observed, in_sync)) = install::observe_live(&kube, &spec)
            .await
            .map_err(agent_error)?
        else {
            return Ok(None);
        };
        model.image = observed.image;
        model.replicas = observed.replicas;
        model.kas_address = Some(observed.kas_address);
        model.rbac = observed.rbac.keyword().to_string();
        model.token_secret = Some(TokenSecretModel {
            name: observed.token_secret_name,
            key: observed.token_secret_key,
        });
        model.token_in_sync = Some(in_sync);
        NewState::encode(&model).map(Some)
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let model: InstallModel = prior.state.decode()?;
        let kube = kube_client(ctx, ClusterChoice::of(&model.cluster, &model.cluster_name)).await?;
        install::uninstall(&kube, &model.spec(String::new()), TIMEOUT)
            .await
            .map_err(agent_error)
    }

    async fn import(&self, _ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (id, cluster_name) = import_target(id);
        let (namespace, name) = split_import_id(
            id,
            '/',
            "<namespace>/<name>[@<cluster_name>]",
            "gitlab-agent/gitlab-agent",
        )?;
        // The rest takes the schema's defaults, and read replaces what the cluster shows.
        #[derive(Serialize)]
        struct Imported<'a> {
            namespace: &'a str,
            name: &'a str,
            cluster_name: Option<&'a str>,
        }
        NewState::encode(&Imported {
            namespace,
            name,
            cluster_name,
        })
    }
}
