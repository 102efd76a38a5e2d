//! Repository files, trees and atomic multi-file commits.
//!
//! A tree listing gives every file's git blob id, so a refresh checks a directory of files
//! against what it expects with one request (shared and cached until this client commits),
//! fetching only the files that differ.
//!
//! Commits are never repeated after an ambiguous failure: a repeated create would fail with
//! "already exists" and a repeated update with a stale `last_commit_id`, both misleading. The
//! next plan re-reads the files and converges instead.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{GitlabClient, project_key};
use super::error::{self, GitlabError, Missing};
use super::transport::{decode, encode_segment};
use super::types::{Commit, CommitAction, CommitRequest, RepoFile, RepoFileJson};

impl GitlabClient {
    /// The file at `git_ref`; `None` when the file (or the ref) does not exist. A missing
    /// project is an error, not `None`.
    pub async fn file(
        &self,
        project: &str,
        path: &str,
        git_ref: &str,
    ) -> Result<Option<RepoFile>, GitlabError> {
        let mut call = self.project_call(
            error::READ_FILE,
            Method::GET,
            "/projects/:id/repository/files/:file_path",
            project,
            &format!("/repository/files/{}", encode_segment(path)),
        )?;
        call.url.query_pairs_mut().append_pair("ref", git_ref);
        call.missing = Missing::File {
            project: project.to_string(),
            path: path.to_string(),
        };
        let Some(reply) = self.inner.transport.send_allow_404(&call).await? else {
            return Ok(None);
        };
        let raw: RepoFileJson = decode(call.op, &reply.body)?;
        repo_file(call.op, raw).map(Some)
    }

    /// Whether `branch` exists in the project: checked before anything is created on the way
    /// to a commit to it.
    pub async fn branch_exists(&self, project: &str, branch: &str) -> Result<bool, GitlabError> {
        let call = self.project_call(
            error::READ_FILE,
            Method::GET,
            "/projects/:id/repository/branches/:branch",
            project,
            &format!("/repository/branches/{}", encode_segment(branch)),
        )?;
        Ok(self.inner.transport.send_allow_404(&call).await?.is_some())
    }

    /// One atomic commit of all `actions` to `branch`.
    pub async fn commit(
        &self,
        project: &str,
        commit: &CommitRequest,
    ) -> Result<Commit, GitlabError> {
        let body = commit_body(commit);
        let mut call = self.project_call(
            error::COMMIT,
            Method::POST,
            "/projects/:id/repository/commits",
            project,
            "/repository/commits",
        )?;
        call.body = Some(&body);
        let sent = self.inner.transport.send(&call).await;
        // Whatever became of the commit, trees read before it may be stale now.
        self.inner.trees.clear();
        decode(call.op, &sent?.body)
    }

    /// The git blob id of every file under `dir` at `git_ref`, by path (one recursive,
    /// paginated listing, shared and cached); a missing directory lists nothing.
    pub async fn blob_ids(
        &self,
        project: &str,
        git_ref: &str,
        dir: &str,
    ) -> Result<Arc<HashMap<String, String>>, GitlabError> {
        let key = (project_key(project), git_ref.to_string(), dir.to_string());
        let client = self.clone();
        let (project, git_ref, dir) = (project.to_string(), git_ref.to_string(), dir.to_string());
        self.inner
            .trees
            .get(key, move || {
                Box::pin(async move {
                    client
                        .fetch_blob_ids(&project, &git_ref, &dir)
                        .await
                        .map(Arc::new)
                })
            })
            .await
    }

    async fn fetch_blob_ids(
        &self,
        project: &str,
        git_ref: &str,
        dir: &str,
    ) -> Result<HashMap<String, String>, GitlabError> {
        let mut call = self.project_call(
            error::READ_FILE,
            Method::GET,
            "/projects/:id/repository/tree",
            project,
            "/repository/tree",
        )?;
        call.url
            .query_pairs_mut()
            .append_pair("ref", git_ref)
            .append_pair("path", dir)
            .append_pair("recursive", "true");
        let entries: Vec<TreeEntry> = match self.inner.transport.get_all(call).await {
            Ok(entries) => entries,
            // The project exists (callers look it up first): the directory or ref does not.
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.kind == "blob")
            .map(|e| (e.path, e.id))
            .collect())
    }
}

/// One entry of a tree listing.
#[derive(serde::Deserialize)]
struct TreeEntry {
    id: String,
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

fn repo_file(op: error::Operation, raw: RepoFileJson) -> Result<RepoFile, GitlabError> {
    let content = match raw.encoding.as_deref() {
        Some("base64") | None => base64::engine::general_purpose::STANDARD
            .decode(raw.content.trim())
            .map_err(|e| GitlabError::Decode {
                op,
                message: format!("file content is not valid base64: {e}"),
            })?,
        Some(_) => raw.content.into_bytes(),
    };
    // Older GitLab versions omit the digest; compute it so callers can always compare.
    let content_sha256 = if raw.content_sha256.is_empty() {
        crate::digest::sha256_hex(&content)
    } else {
        raw.content_sha256
    };
    Ok(RepoFile {
        content,
        last_commit_id: raw.last_commit_id,
        blob_id: raw.blob_id,
        content_sha256,
    })
}

fn commit_body(commit: &CommitRequest) -> Value {
    let mut body = Map::new();
    body.insert("branch".into(), json!(commit.branch));
    body.insert("commit_message".into(), json!(commit.message));
    if let Some(name) = &commit.author_name {
        body.insert("author_name".into(), json!(name));
    }
    if let Some(email) = &commit.author_email {
        body.insert("author_email".into(), json!(email));
    }
    let actions: Vec<Value> = commit.actions.iter().map(action_json).collect();
    body.insert("actions".into(), Value::Array(actions));
    Value::Object(body)
}

fn action_json(action: &CommitAction) -> Value {
    let mut value = json!({ "action": action.action, "file_path": action.path });
    if let Some(content) = &action.content {
        value["content"] = json!(content);
        value["encoding"] = json!("text");
    }
    if let Some(id) = &action.last_commit_id {
        value["last_commit_id"] = json!(id);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::types::CommitActionKind;

    #[test]
    fn commit_body_has_gitlabs_field_names() {
        let body = commit_body(&CommitRequest {
            branch: "main".into(),
            message: "msg".into(),
            author_name: None,
            author_email: Some("a@b".into()),
            actions: vec![CommitAction {
                action: CommitActionKind::Update,
                path: "a.yaml".into(),
                content: Some("x".into()),
                last_commit_id: Some("abc".into()),
            }],
        });
        assert_eq!(
            body,
            json!({"branch": "main", "commit_message": "msg", "author_email": "a@b",
                   "actions": [{"action": "update", "file_path": "a.yaml", "content": "x",
                                "encoding": "text", "last_commit_id": "abc"}]})
        );
    }

    #[test]
    fn file_content_is_decoded_and_digest_filled_in() {
        let raw = RepoFileJson {
            content: "aGk=".into(),
            encoding: Some("base64".into()),
            last_commit_id: "c".into(),
            blob_id: "b".into(),
            content_sha256: String::new(),
        };
        let file = repo_file(error::READ_FILE, raw).expect("decodes");
        assert_eq!(file.content, b"hi");
        assert_eq!(file.content_sha256.len(), 64);
    }
}
