//! The `gitlabflux_deploy_key` list resource (`terraform query`, Terraform 1.14+): the deploy
//! keys of a project whose private halves a Secret in a cluster holds, each importable as a
//! `gitlabflux_deploy_key` with that Secret.

use async_trait::async_trait;
use serde::Deserialize;

use super::context::{ClusterChoice, ProviderData, gitlab, kube_client, on_cluster};
use super::deploy_key::key_error;
use crate::gitlab::DeployKey;
use crate::keys::deploy_key::project_keys;
use crate::keys::owner;
use crate::tfplug::{
    Attribute, Block, Ctx, DiagResult, Diagnostic, Found, ListResource, Schema, Value,
};

/// How many keys held elsewhere the warning names before it only counts.
const NAMED_ELSEWHERE: usize = 10;

pub struct DeployKeyList;

#[derive(Deserialize)]
struct Query {
    project: String,
    cluster_name: Option<String>,
}

#[async_trait]
impl ListResource<ProviderData> for DeployKeyList {
    fn type_name(&self) -> &'static str {
        "gitlabflux_deploy_key"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::string("project")
                    .required()
                    .description("Project of the deploy keys (path or ID)."),
                Attribute::string("cluster_name").optional().description(
                    "One of the provider's `clusters` to look for Secrets in; default: the \
                     provider's `kubernetes`. Results import with this `cluster_name`.",
                ),
            ])
            .description(
                "The deploy keys of a GitLab project whose private halves a Secret in the \
                 cluster holds, as `gitlabflux_deploy_key` \
                 wrote it (found by the Secret's `gitlabflux.io/deploy-key-id` label, confirmed \
                 by its fingerprint annotation; only Secret metadata is read). A key held by no \
                 such Secret (another cluster's, or added by hand) cannot be managed without \
                 its private half: the query names it in a warning instead.",
            ),
        )
    }

    async fn list(&self, ctx: &Ctx<ProviderData>, config: &Value) -> DiagResult<Vec<Found>> {
        let query: Query = config.decode()?;
        let cluster_name = query.cluster_name.as_deref();
        let kube = kube_client(ctx, ClusterChoice::named(cluster_name)).await?;
        let keys = project_keys(gitlab(ctx)?, &kube, &query.project)
            .await
            .map_err(key_error)?;
        if !keys.elsewhere.is_empty() {
            ctx.warn(held_elsewhere(&query.project, &keys.elsewhere));
        }
        Ok(keys
            .held
            .into_iter()
            .map(|(key, secret)| Found {
                display_name: format!(
                    "deploy key {} \"{}\" in {}/{}",
                    key.id,
                    owner::unmarked(&key.title),
                    secret.namespace,
                    secret.name
                ),
                import_id: on_cluster(
                    format!(
                        "{}:{}:{}/{}",
                        query.project, key.id, secret.namespace, secret.name
                    ),
                    cluster_name.unwrap_or_default(),
                ),
            })
            .collect())
    }
}

fn held_elsewhere(project: &str, keys: &[DeployKey]) -> Diagnostic {
    let mut named: Vec<String> = keys
        .iter()
        .take(NAMED_ELSEWHERE)
        .map(|k| format!("{} \"{}\"", k.id, owner::unmarked(&k.title)))
        .collect();
    if keys.len() > NAMED_ELSEWHERE {
        named.push(format!("and {} more", keys.len() - NAMED_ELSEWHERE));
    }
    Diagnostic::warning(
        match keys.len() {
            1 => format!("1 deploy key of {project} is held by no Secret in this cluster"),
            n => format!("{n} deploy keys of {project} are held by no Secret in this cluster"),
        },
        format!(
            "No Secret in the cluster queried holds these keys as gitlabflux_deploy_key \
             writes them: {}. They may belong to other clusters (query with their \
             cluster_name), or were added outside this provider; to take one over, \
             import it naming the Secret that holds its private half \
             (<project>:<id>:<namespace>/<name>), or let a gitlabflux_deploy_key with \
             adopt_existing replace it.",
            named.join(", ")
        ),
    )
}
