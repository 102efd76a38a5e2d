//! CI/CD variables of a project or a group ([`VariableOwner`]), always addressed by key and
//! environment scope
//! (`filter[environment_scope]`), because a key may exist once per scope and GitLab answers
//! 409 when a request leaves it ambiguous.
//!
//! Values travel as [`Secret`]. Whether a variable is hidden is fixed at its creation
//! (`masked_and_hidden`), so callers that need to change it delete and create again.
//! Creating is made safe to repeat: when the answer of a create is lost, the variable is
//! looked up and, if it is there, its value written again, so it surely holds ours.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::GitlabClient;
use super::error::{self, GitlabError, Missing};
use super::transport::{Call, decode, encode_segment};
use super::types::CiVariable;
use crate::secret::Secret;

/// Whose variables: a project's or a group's (path or ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariableOwner<'a> {
    Project(&'a str),
    Group(&'a str),
}

impl<'a> VariableOwner<'a> {
    pub fn path(&self) -> &'a str {
        match self {
            Self::Project(p) | Self::Group(p) => p,
        }
    }
}

/// A variable to write.
#[derive(Clone, Debug)]
pub struct VariableSpec<'a> {
    pub key: &'a str,
    pub value: &'a Secret,
    pub environment_scope: &'a str,
    /// Masked in job logs and never shown again (only at creation).
    pub masked_and_hidden: bool,
    pub protected: bool,
    /// Shown in GitLab beside the key; readable even when the value is hidden.
    pub description: Option<&'a str>,
}

impl VariableSpec<'_> {
    fn body(&self, creating: bool) -> Value {
        let mut body = json!({
            "value": self.value.expose(),
            "protected": self.protected,
            "raw": true,
            "variable_type": "env_var",
            "environment_scope": self.environment_scope,
        });
        if let Some(description) = self.description {
            body["description"] = json!(description);
        }
        if creating {
            body["key"] = json!(self.key);
            body["masked_and_hidden"] = json!(self.masked_and_hidden);
            body["masked"] = json!(self.masked_and_hidden);
        }
        body
    }
}

impl GitlabClient {
    /// The variable `key` of `scope`; `None` when there is none.
    pub async fn variable(
        &self,
        owner: VariableOwner<'_>,
        key: &str,
        scope: &str,
    ) -> Result<Option<CiVariable>, GitlabError> {
        let call = self.variable_call(error::READ_VARIABLE, Method::GET, owner, key, scope)?;
        match self.inner.transport.send_allow_404(&call).await? {
            Some(reply) => decode(call.op, &reply.body).map(Some),
            None => Ok(None),
        }
    }

    /// Creates a variable; a create whose answer was lost is settled by writing the value
    /// to the variable found.
    pub async fn create_variable(
        &self,
        owner: VariableOwner<'_>,
        spec: &VariableSpec<'_>,
    ) -> Result<CiVariable, GitlabError> {
        let body = spec.body(true);
        let mut call = self.owner_call(
            error::WRITE_VARIABLE,
            Method::POST,
            ["/projects/:id/variables", "/groups/:id/variables"],
            owner,
            "/variables",
        )?;
        call.body = Some(&body);
        let outcome = self.inner.transport.send(&call).await;
        let outcome = outcome.and_then(|reply| decode(call.op, &reply.body));
        match outcome {
            Err(e) if e.maybe_applied() => {
                match self
                    .variable(owner, spec.key, spec.environment_scope)
                    .await?
                {
                    Some(_) => self.update_variable(owner, spec).await,
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    /// Writes the value and settings of an existing variable (not whether it is hidden).
    pub async fn update_variable(
        &self,
        owner: VariableOwner<'_>,
        spec: &VariableSpec<'_>,
    ) -> Result<CiVariable, GitlabError> {
        let body = spec.body(false);
        let mut call = self.variable_call(
            error::WRITE_VARIABLE,
            Method::PUT,
            owner,
            spec.key,
            spec.environment_scope,
        )?;
        call.body = Some(&body);
        let reply = self.inner.transport.send(&call).await?;
        decode(call.op, &reply.body)
    }

    /// Deletes the variable `key` of `scope`. Already gone counts as done.
    pub async fn delete_variable(
        &self,
        owner: VariableOwner<'_>,
        key: &str,
        scope: &str,
    ) -> Result<(), GitlabError> {
        let call = self.variable_call(error::DELETE_VARIABLE, Method::DELETE, owner, key, scope)?;
        self.inner.transport.send_allow_404(&call).await.map(drop)
    }

    fn variable_call<'a>(
        &self,
        op: error::Operation,
        method: Method,
        owner: VariableOwner<'a>,
        key: &str,
        scope: &str,
    ) -> Result<Call<'a>, GitlabError> {
        let mut call = self.owner_call(
            op,
            method,
            ["/projects/:id/variables/:key", "/groups/:id/variables/:key"],
            owner,
            &format!("/variables/{}", encode_segment(key)),
        )?;
        call.url
            .query_pairs_mut()
            .append_pair("filter[environment_scope]", scope);
        call.missing = Missing::Variable {
            project: owner.path().to_string(),
            key: key.to_string(),
            scope: scope.to_string(),
        };
        Ok(call)
    }

    /// A call under the project's or the group's path; `routes` are their templates.
    fn owner_call<'a>(
        &self,
        op: error::Operation,
        method: Method,
        routes: [&'static str; 2],
        owner: VariableOwner<'a>,
        suffix: &str,
    ) -> Result<Call<'a>, GitlabError> {
        match owner {
            VariableOwner::Project(p) => self.project_call(op, method, routes[0], p, suffix),
            VariableOwner::Group(g) => self.group_call(op, method, routes[1], g, suffix),
        }
    }
}
