//! Keeping files in a GitLab repository equal to what Terraform wants, through the commits
//! API: all files of one change go into one atomic commit, and nothing is committed when the
//! repository already holds the wanted content (no empty commits).

use super::{CommitAction, CommitActionKind, CommitRequest, GitlabClient, GitlabError};

/// One file's wanted state: `Some(content)` to create or update, `None` to delete.
#[derive(Clone, Debug, PartialEq)]
pub struct WantedFile {
    pub path: String,
    pub content: Option<String>,
}

/// Who the commit says made it, and why.
#[derive(Clone, Debug, Default)]
pub struct CommitMeta {
    pub message: String,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
}

/// Commits the differences between `wanted` and the branch in one commit. Returns the new
/// commit's id, or `None` when nothing had to change.
pub async fn sync_files(
    client: &GitlabClient,
    project: &str,
    branch: &str,
    wanted: &[WantedFile],
    meta: &CommitMeta,
) -> Result<Option<String>, GitlabError> {
    let mut actions = Vec::new();
    for file in wanted {
        let current = client.file(project, &file.path, branch).await?;
        let action = match (&current, &file.content) {
            (None, None) => None,
            (None, Some(content)) => Some((CommitActionKind::Create, Some(content.clone()), None)),
            (Some(cur), Some(content)) if cur.content == content.as_bytes() => None,
            (Some(cur), Some(content)) => Some((
                CommitActionKind::Update,
                Some(content.clone()),
                Some(cur.last_commit_id.clone()),
            )),
            (Some(cur), None) => Some((
                CommitActionKind::Delete,
                None,
                Some(cur.last_commit_id.clone()),
            )),
        };
        if let Some((action, content, last_commit_id)) = action {
            actions.push(CommitAction {
                action,
                path: file.path.clone(),
                content,
                last_commit_id,
            });
        }
    }
    if actions.is_empty() {
        return Ok(None);
    }
    let request = CommitRequest {
        branch: branch.to_string(),
        message: meta.message.clone(),
        author_name: meta.author_name.clone(),
        author_email: meta.author_email.clone(),
        actions,
    };
    Ok(Some(client.commit(project, &request).await?.id))
}

/// The current content of a file, as text, or `None` when it does not exist.
pub async fn read_text(
    client: &GitlabClient,
    project: &str,
    branch: &str,
    path: &str,
) -> Result<Option<String>, GitlabError> {
    Ok(client
        .file(project, path, branch)
        .await?
        .map(|f| String::from_utf8_lossy(&f.content).into_owned()))
}
