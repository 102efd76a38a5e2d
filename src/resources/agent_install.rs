//! `gitlabflux_agent_install`: agentk in a cluster (namespace, service account, RBAC,
//! Deployment reading the token Secret), applied server-side as field manager `gitlabflux`.
//! Drift (deleted or edited objects, a token Secret the pods have not picked up) plans a
//! repair. Import ID: `<namespace>/<name>`.

use async_trait::async_trait;

use super::support::{gitlab_error, int, kube_error, obj, object, required_string, set, split_import_id, string};
use crate::gitlab::agent_install::{self as manifests, InstallSpec, Rbac};
use super::context::{ProviderData, cluster_connection_attributes, gitlab, kube};
use crate::tfplug::schema::validators;
use crate::tfplug::{
    ApplyRequest, AttrPath, Attribute, Block, Ctx, DiagResult, Diagnostic, NewState, PlanContext,
    Resource, Schema, Value,
};

pub struct AgentInstall;

fn spec_from(
    state: &Value,
    kas_address: String,
    token_sha256: Option<String>,
) -> DiagResult<InstallSpec> {
    let secret = object(state, "token_secret");
    Ok(InstallSpec {
        namespace: required_string(state, "namespace")?,
        name: required_string(state, "name")?,
        image: required_string(state, "image")?,
        replicas: int(state, "replicas").unwrap_or(2),
        kas_address,
        token_secret_name: secret.and_then(|s| string(s, "name")).ok_or_else(|| {
            Diagnostic::error("Missing token secret", "token_secret.name is required.")
                .at(AttrPath::root().attr("token_secret"))
        })?,
        token_secret_key: secret
            .and_then(|s| string(s, "key"))
            .unwrap_or_else(|| "token".into()),
        rbac: match string(state, "rbac").as_deref() {
            Some("cluster-admin") => Rbac::ClusterAdmin,
            _ => Rbac::Impersonate,
        },
        token_sha256,
    })
}

impl AgentInstall {
    async fn apply(&self, ctx: &Ctx<ProviderData>, planned: &Value) -> DiagResult<NewState> {
        let kas_address = match string(planned, "kas_address") {
            Some(k) => k,
            None => {
                let meta = gitlab(ctx)?.metadata().await.map_err(gitlab_error)?;
                meta.kas_external_url.ok_or_else(|| {
                    Diagnostic::error(
                        "GitLab has no agent server",
                        "GitLab's /metadata reports no KAS address (the agent server is disabled). Set kas_address.",
                    )
                    .at(AttrPath::root().attr("kas_address"))
                })?
            }
        };
        let kube = kube(ctx, planned).await?;
        let partial = spec_from(planned, kas_address.clone(), None)?;
        let token_sha256 = kube
            .read_secret_key(
                &partial.namespace,
                &partial.token_secret_name,
                &partial.token_secret_key,
            )
            .await
            .map_err(kube_error)?
            .map(|v| manifests::token_hash(v.expose()));
        let spec = InstallSpec {
            token_sha256,
            ..partial
        };
        for object in manifests::objects(&spec) {
            kube.apply(&object, true).await.map_err(kube_error)?;
        }
        // Objects from an earlier RBAC mode must not linger with their rights.
        for stale in manifests::stale_objects(&spec) {
            kube.delete(&stale).await.map_err(kube_error)?;
        }
        let mut state = planned.clone();
        set(&mut state, "kas_address", kas_address.into());
        set(&mut state, "token_in_sync", true.into());
        Ok(NewState::new(state))
    }
}

#[async_trait]
impl Resource<ProviderData> for AgentInstall {
    fn type_name(&self) -> &'static str {
        "gitlabflux_agent_install"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("namespace").default("gitlab-agent").requires_replace().description("Namespace for agentk."),
                Attribute::string("name").default("gitlab-agent").requires_replace().description("Name of the Deployment and service account."),
                Attribute::string("kas_address")
                    .optional()
                    .computed()
                    .use_state_for_unknown()
                    .description("Agent server address. Default: GitLab's `/metadata` `kas.externalUrl`."),
                Attribute::string("image").default(manifests::DEFAULT_IMAGE).description("agentk image."),
                Attribute::number("replicas").default(2_i64).validator(validators::int_between(1, 10)),
                Attribute::object(
                    "token_secret",
                    vec![Attribute::string("name").required(), Attribute::string("key").default("token")],
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
                Attribute::object("cluster", cluster_connection_attributes())
                    .optional()
                    .description("Cluster to install into, overriding the provider's `kubernetes`."),
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
        if !plan.is_create() {
            set(&mut plan.planned, "token_in_sync", true.into());
        }
        Ok(())
    }

    async fn create(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned).await
    }

    async fn update(&self, ctx: &Ctx<ProviderData>, req: ApplyRequest) -> DiagResult<NewState> {
        self.apply(ctx, &req.planned).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderData>,
        current: NewState,
    ) -> DiagResult<Option<NewState>> {
        let state = &current.state;
        let kube = kube(ctx, state).await?;
        let kas = string(state, "kas_address").unwrap_or_default();
        let spec = spec_from(state, kas, None)?;
        let mut live = Vec::new();
        for r in manifests::object_refs(&spec) {
            match kube.get(&r).await.map_err(kube_error)? {
                Some(o) => live.push(o),
                None => return Ok(None),
            }
        }
        let Some(observed) = manifests::observe(&spec, &live) else {
            return Ok(None);
        };
        // The Secret the Deployment mounts, not the one state names: after an import state
        // holds a placeholder, and an out-of-band edit may point the pods elsewhere.
        let secret_hash = kube
            .read_secret_key(
                &spec.namespace,
                &observed.token_secret_name,
                &observed.token_secret_key,
            )
            .await
            .map_err(kube_error)?
            .map(|v| manifests::token_hash(v.expose()));
        let mut new = state.clone();
        set(&mut new, "image", observed.image.into());
        set(&mut new, "replicas", observed.replicas.into());
        set(&mut new, "kas_address", observed.kas_address.into());
        set(&mut new, "rbac", observed.rbac.keyword().into());
        set(
            &mut new,
            "token_secret",
            obj([
                ("name", observed.token_secret_name.into()),
                ("key", observed.token_secret_key.into()),
            ]),
        );
        set(
            &mut new,
            "token_in_sync",
            (secret_hash == observed.token_sha256).into(),
        );
        Ok(Some(NewState::new(new)))
    }

    async fn delete(&self, ctx: &Ctx<ProviderData>, prior: NewState) -> DiagResult<()> {
        let state = &prior.state;
        let kube = kube(ctx, state).await?;
        let spec = spec_from(state, String::new(), None)?;
        // Deployment first, namespace last; the cluster-scoped RBAC would outlive a namespace.
        for r in manifests::all_refs(&spec) {
            kube.delete(&r).await.map_err(kube_error)?;
        }
        Ok(())
    }

    async fn import(&self, _ctx: &Ctx<ProviderData>, id: &str) -> DiagResult<NewState> {
        let (namespace, name) =
            split_import_id(id, '/', "<namespace>/<name>", "gitlab-agent/gitlab-agent")?;
        let state = obj([
            ("namespace", namespace.into()),
            ("name", name.into()),
            ("kas_address", Value::Null),
            ("image", manifests::DEFAULT_IMAGE.into()),
            ("replicas", 2_i64.into()),
            (
                "token_secret",
                obj([("name", "unknown".into()), ("key", "token".into())]),
            ),
            ("rbac", "impersonate".into()),
            ("cluster", Value::Null),
            ("token_in_sync", true.into()),
        ]);
        Ok(NewState::new(state))
    }
}
