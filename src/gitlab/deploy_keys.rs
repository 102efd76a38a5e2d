//! Project deploy keys: list, read, add and delete. A key cannot change after it is added
//! (neither its text nor its expiry), so rotation adds a new one and deletes the old.
//!
//! Adding is made safe to repeat: a key's fingerprint is unique in its project, so an add
//! whose answer was lost is settled by looking the fingerprint up, and the key found is the
//! one that was sent (never a look-alike).

use reqwest::Method;
use serde_json::json;

use super::client::GitlabClient;
use super::error::{self, GitlabError, Missing};
use super::transport::{Call, decode};
use super::types::DeployKey;

/// What to add.
#[derive(Clone, Debug)]
pub struct NewDeployKey<'a> {
    pub title: &'a str,
    /// `<type> <base64> [comment]`.
    pub key: &'a str,
    /// Its SHA-256 fingerprint, `SHA256:...`, to recognise it in GitLab's answers.
    pub fingerprint_sha256: &'a str,
    pub can_push: bool,
    /// `YYYY-MM-DD` or RFC 3339.
    pub expires_at: &'a str,
}

impl GitlabClient {
    /// Every deploy key of `project` (paginated).
    pub async fn deploy_keys(&self, project: &str) -> Result<Vec<DeployKey>, GitlabError> {
        let call = self.project_call(
            error::LIST_DEPLOY_KEYS,
            Method::GET,
            "/projects/:id/deploy_keys",
            project,
            "/deploy_keys",
        )?;
        self.inner.transport.get_all(call).await
    }

    /// One deploy key; `None` when it is gone (deleted or expired and removed).
    pub async fn deploy_key(
        &self,
        project: &str,
        id: i64,
    ) -> Result<Option<DeployKey>, GitlabError> {
        let call = self.deploy_key_call(error::READ_DEPLOY_KEY, Method::GET, project, id)?;
        match self.inner.transport.send_allow_404(&call).await? {
            Some(reply) => decode(call.op, &reply.body).map(Some),
            None => Ok(None),
        }
    }

    /// Adds a deploy key, or finds it when an earlier add of the same key did happen.
    pub async fn add_deploy_key(
        &self,
        project: &str,
        key: &NewDeployKey<'_>,
    ) -> Result<DeployKey, GitlabError> {
        let body = json!({
            "title": key.title,
            "key": key.key,
            "can_push": key.can_push,
            "expires_at": key.expires_at,
        });
        let mut call = self.project_call(
            error::CREATE_DEPLOY_KEY,
            Method::POST,
            "/projects/:id/deploy_keys",
            project,
            "/deploy_keys",
        )?;
        call.body = Some(&body);
        match self.inner.transport.send(&call).await {
            Ok(reply) => decode(call.op, &reply.body),
            Err(e) if e.maybe_applied() => self
                .deploy_key_by_fingerprint(project, key.fingerprint_sha256)
                .await?
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// The project's deploy key with this SHA-256 fingerprint.
    pub async fn deploy_key_by_fingerprint(
        &self,
        project: &str,
        fingerprint_sha256: &str,
    ) -> Result<Option<DeployKey>, GitlabError> {
        let keys = self.deploy_keys(project).await?;
        Ok(keys
            .into_iter()
            .find(|k| k.fingerprint_sha256.as_deref() == Some(fingerprint_sha256)))
    }

    /// Renames a deploy key (the one thing besides `can_push` GitLab lets change).
    pub async fn rename_deploy_key(
        &self,
        project: &str,
        id: i64,
        title: &str,
    ) -> Result<DeployKey, GitlabError> {
        let body = json!({ "title": title });
        let mut call = self.deploy_key_call(error::UPDATE_DEPLOY_KEY, Method::PUT, project, id)?;
        call.body = Some(&body);
        let reply = self.inner.transport.send(&call).await?;
        decode(call.op, &reply.body)
    }

    /// Deletes a deploy key. Already gone counts as done.
    pub async fn delete_deploy_key(&self, project: &str, id: i64) -> Result<(), GitlabError> {
        let call = self.deploy_key_call(error::DELETE_DEPLOY_KEY, Method::DELETE, project, id)?;
        self.inner.transport.send_allow_404(&call).await.map(drop)
    }

    fn deploy_key_call<'a>(
        &self,
        op: error::Operation,
        method: Method,
        project: &'a str,
        id: i64,
    ) -> Result<Call<'a>, GitlabError> {
        let mut call = self.project_call(
            op,
            method,
            "/projects/:id/deploy_keys/:key_id",
            project,
            &format!("/deploy_keys/{id}"),
        )?;
        call.missing = Missing::DeployKey {
            project: project.to_string(),
            id,
        };
        Ok(call)
    }
}
