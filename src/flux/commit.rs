//! A bootstrap's rendered files kept in a GitLab repository (`git_commit`): the three files
//! `flux bootstrap` writes, committed atomically in one commit and only when they change, or
//! removed in one commit on destroy.

use super::render::Rendered;
use crate::gitlab::files::{CommitMeta, WantedFile, sync_files};
use crate::gitlab::{GitlabClient, GitlabError};

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
