//! A bootstrap's rendered files kept in a GitLab repository (`git_commit`): the three files
//! `flux bootstrap` writes, committed atomically in one commit and only when they change, or
//! removed in one commit on destroy.

use super::render::Rendered;
use crate::gitlab::error::{COMMIT, Missing, Role};
use crate::gitlab::files::{CommitMeta, WantedFile, sync_files};
use crate::gitlab::{GitlabClient, GitlabError};

/// GitLab's access level of the Developer role, the least that may push to a branch.
const DEVELOPER: u32 = 30;

/// The files, under the target's `path`, that a bootstrap writes.
const FILES: [&str; 3] = [
    "gotk-components.yaml",
    "gotk-sync.yaml",
    "kustomization.yaml",
];

/// Where the files go and who the commit says made it.
#[derive(Clone, Debug)]
pub struct CommitTarget<'a> {
    pub project: &'a str,
    /// The project's default branch when `None`.
    pub branch: Option<&'a str>,
    pub path: &'a str,
    pub author_name: Option<&'a str>,
    pub author_email: Option<&'a str>,
}

/// Checks, before anything is applied to a cluster, that the files can be committed: the
/// project is there, the token's user may push to it, and the branch exists. A bootstrap
/// that applied Flux and then failed to commit would leave objects no state records.
pub async fn check_target(
    client: &GitlabClient,
    target: &CommitTarget<'_>,
) -> Result<(), GitlabError> {
    let project = client.project(target.project).await?;
    let path = &project.path_with_namespace;
    if project.access_level.is_some_and(|level| level < DEVELOPER) {
        return Err(GitlabError::Forbidden {
            op: COMMIT,
            project: path.clone(),
            needed_role: Role::Developer,
            missing_scope: None,
            message: "the token's user may not push to the repository".into(),
        });
    }
    let branch = target.branch.unwrap_or(&project.default_branch);
    if !client.branch_exists(path, branch).await? {
        return Err(GitlabError::NotFound {
            op: COMMIT,
            what: Missing::Branch {
                project: path.clone(),
                branch: branch.to_string(),
            },
        });
    }
    Ok(())
}

/// Commits `rendered`'s files (of Flux `version`), or with `None` deletes them.
pub async fn commit_files(
    client: &GitlabClient,
    target: &CommitTarget<'_>,
    rendered: Option<&Rendered>,
    version: Option<&str>,
) -> Result<(), GitlabError> {
    let project = client.project(target.project).await?;
    let branch = target.branch.unwrap_or(&project.default_branch);
    let wanted: Vec<WantedFile> = FILES
        .iter()
        .map(|name| WantedFile {
            path: format!("{}/{name}", target.path.trim_end_matches('/')),
            content: rendered.and_then(|r| r.files.get(*name).cloned()),
        })
        .collect();
    let message = match rendered {
        Some(_) => format!("Bootstrap Flux {} (gitlabflux)", version.unwrap_or("")),
        None => "Remove Flux bootstrap manifests (gitlabflux)".to_string(),
    };
    let meta = CommitMeta {
        message,
        author_name: target.author_name.map(str::to_string),
        author_email: target.author_email.map(str::to_string),
    };
    sync_files(client, &project.path_with_namespace, branch, &wanted, &meta).await?;
    Ok(())
}
