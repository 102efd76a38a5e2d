//! A tiny content-addressed Git-like repository: branches point at commits, every commit holds
//! its full tree (path -> blob id + the last commit that touched it), blobs are stored once.
//! Commits through the commits API are validated completely before anything is written, so a
//! failing action leaves the repository untouched (GitLab's multi-action commits are atomic).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::http::{ApiError, ApiResult, now_iso};
use super::paths;
use crate::digest::hex;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Repository {
    pub branches: BTreeMap<String, String>,
    pub commits: BTreeMap<String, Commit>,
    /// blob id -> content, base64 in persisted form.
    pub blobs: BTreeMap<String, String>,
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TreeEntry {
    pub blob_id: String,
    pub last_commit_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Change {
    pub action: String,
    pub file_path: String,
    pub previous_path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Commit {
    pub id: String,
    pub seq: u64,
    pub parent_ids: Vec<String>,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub authored_date: String,
    pub committed_date: String,
    pub tree: BTreeMap<String, TreeEntry>,
    pub changes: Vec<Change>,
    pub additions: u64,
    pub deletions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionKind {
    Create,
    Update,
    Delete,
    Move,
    Chmod,
}

impl ActionKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "create" => Self::Create,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "move" => Self::Move,
            "chmod" => Self::Chmod,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Move => "move",
            Self::Chmod => "chmod",
        }
    }
}

/// One action of a commit request, its paths as the client sent them.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub kind: ActionKind,
    pub file_path: String,
    pub previous_path: Option<String>,
    pub content: Option<Vec<u8>>,
    pub last_commit_id: Option<String>,
}

impl Action {
    /// The action with its paths checked and cleaned as Gitaly does; a previous path only
    /// means something to a move, so other actions drop it.
    fn with_clean_paths(&self) -> ApiResult<Self> {
        let previous_path = match (self.kind, &self.previous_path) {
            (ActionKind::Move, Some(p)) => Some(paths::commit_path(p)?),
            _ => None,
        };
        Ok(Self {
            file_path: paths::commit_path(&self.file_path)?,
            previous_path,
            ..self.clone()
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CommitRequest {
    pub branch: String,
    pub start_branch: Option<String>,
    pub start_sha: Option<String>,
    pub force: bool,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub actions: Vec<Action>,
}

/// Git's blob id, as GitLab's trees list it.
pub(crate) fn blob_id(content: &[u8]) -> String {
    crate::digest::git_blob_id(content)
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Repository {
    /// A repository whose `branch` holds one commit adding README.md.
    pub fn initial(branch: &str, author_name: &str, author_email: &str, project: &str) -> Self {
        let mut repo = Repository::default();
        let readme = format!("# {project}\n\nSeeded by gitlabflux-sandbox.\n");
        let request = CommitRequest {
            branch: branch.to_owned(),
            start_branch: None,
            start_sha: None,
            force: false,
            message: "Initial commit".to_owned(),
            author_name: author_name.to_owned(),
            author_email: author_email.to_owned(),
            actions: vec![Action {
                kind: ActionKind::Create,
                file_path: "README.md".to_owned(),
                previous_path: None,
                content: Some(readme.into_bytes()),
                last_commit_id: None,
            }],
        };
        // An empty repository accepts a first commit on any branch, so this cannot fail.
        let _ = repo.commit(request);
        repo
    }

    pub fn blob(&self, id: &str) -> Vec<u8> {
        self.blobs
            .get(id)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default()
    }

    /// Resolves a branch name or a (full or abbreviated) commit id.
    pub fn resolve(&self, reference: &str) -> Option<&Commit> {
        if let Some(sha) = self.branches.get(reference) {
            return self.commits.get(sha);
        }
        if reference.len() >= 7 && reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.commits.values().find(|c| c.id.starts_with(reference));
        }
        None
    }

    /// First-parent history from `head`, newest first.
    pub fn history<'a>(&'a self, head: &'a Commit) -> Vec<&'a Commit> {
        let mut out = vec![head];
        let mut current = head;
        while let Some(parent) = current.parent_ids.first().and_then(|p| self.commits.get(p)) {
            out.push(parent);
            current = parent;
        }
        out
    }

    /// Applies a multi-action commit atomically and returns the new commit id.
    pub fn commit(&mut self, req: CommitRequest) -> ApiResult<String> {
        let parent = self.start_point(&req)?;
        let mut tree = parent
            .as_ref()
            .and_then(|p| self.commits.get(p))
            .map(|c| c.tree.clone())
            .unwrap_or_default();
        let mut staged = BTreeMap::new();
        let mut stats = (0u64, 0u64);
        let mut actions = Vec::with_capacity(req.actions.len());
        for action in &req.actions {
            // Gitaly checks an action's paths when it reaches the action, after the earlier
            // ones: the first failing action decides the answer, and nothing is written.
            let action = action.with_clean_paths()?;
            self.apply(&mut tree, &action, &mut staged, &mut stats)?;
            actions.push(action);
        }
        self.seq += 1;
        let id = self.commit_id(&parent, &tree, &req);
        let changed: BTreeSet<&str> = actions.iter().map(|a| a.file_path.as_str()).collect();
        for (path, entry) in tree.iter_mut() {
            if changed.contains(path.as_str()) {
                entry.last_commit_id = id.clone();
            }
        }
        self.blobs.extend(staged);
        let now = now_iso();
        self.commits.insert(
            id.clone(),
            Commit {
                id: id.clone(),
                seq: self.seq,
                parent_ids: parent.into_iter().collect(),
                message: req.message.clone(),
                author_name: req.author_name.clone(),
                author_email: req.author_email.clone(),
                authored_date: now.clone(),
                committed_date: now,
                tree,
                changes: actions.iter().map(change_of).collect(),
                additions: stats.0,
                deletions: stats.1,
            },
        );
        self.branches.insert(req.branch, id.clone());
        Ok(id)
    }

    /// The parent commit id for a commit request, following GitLab's branch rules.
    fn start_point(&self, req: &CommitRequest) -> ApiResult<Option<String>> {
        if self.commits.is_empty() {
            return Ok(None);
        }
        if let Some(sha) = &req.start_sha {
            return self
                .resolve(sha)
                .map(|c| Some(c.id.clone()))
                .ok_or_else(|| ApiError::bad_request(format!("Cannot find start_sha '{sha}'")));
        }
        let exists = self.branches.contains_key(&req.branch);
        match &req.start_branch {
            Some(start) if exists && start != &req.branch && !req.force => {
                Err(ApiError::bad_request(format!(
                    "A branch called '{}' already exists. Switch to that branch in order to make changes",
                    req.branch
                )))
            }
            Some(start) if !exists || req.force => self.branch_head(start),
            _ => self.branch_head(&req.branch),
        }
    }

    fn branch_head(&self, branch: &str) -> ApiResult<Option<String>> {
        self.branches
            .get(branch)
            .map(|sha| Some(sha.clone()))
            .ok_or_else(|| {
                ApiError::bad_request("You can only create or edit files when you are on a branch")
            })
    }

    fn apply(
        &self,
        tree: &mut BTreeMap<String, TreeEntry>,
        action: &Action,
        staged: &mut BTreeMap<String, String>,
        stats: &mut (u64, u64),
    ) -> ApiResult<()> {
        let path = action.file_path.as_str();
        check_last_commit(tree, action)?;
        let old = tree.get(path).map(|e| e.blob_id.clone());
        match action.kind {
            ActionKind::Create => {
                if old.is_some() || is_directory(tree, path) {
                    return Err(exists());
                }
                let content = action.content.clone().unwrap_or_default();
                self.stage(tree, path, &content, staged, stats, None);
            }
            ActionKind::Update => {
                let old = old.ok_or_else(missing)?;
                let content = action.content.clone().unwrap_or_default();
                let previous = self.blob_or_staged(&old, staged);
                self.stage(tree, path, &content, staged, stats, Some(&previous));
            }
            ActionKind::Delete => {
                let old = old.ok_or_else(missing)?;
                stats.1 += line_count(&self.blob_or_staged(&old, staged));
                tree.remove(path);
            }
            ActionKind::Move => self.apply_move(tree, action, staged, stats)?,
            ActionKind::Chmod => {
                old.ok_or_else(missing)?;
            }
        }
        Ok(())
    }

    fn apply_move(
        &self,
        tree: &mut BTreeMap<String, TreeEntry>,
        action: &Action,
        staged: &mut BTreeMap<String, String>,
        stats: &mut (u64, u64),
    ) -> ApiResult<()> {
        let from = action
            .previous_path
            .as_deref()
            .ok_or_else(|| ApiError::param("previous_path is missing"))?;
        let source = tree
            .get(from)
            .map(|e| e.blob_id.clone())
            .ok_or_else(missing)?;
        if from != action.file_path && tree.contains_key(&action.file_path) {
            return Err(exists());
        }
        let previous = self.blob_or_staged(&source, staged);
        tree.remove(from);
        let content = action.content.clone().unwrap_or_else(|| previous.clone());
        self.stage(
            tree,
            &action.file_path,
            &content,
            staged,
            stats,
            Some(&previous),
        );
        Ok(())
    }

    fn stage(
        &self,
        tree: &mut BTreeMap<String, TreeEntry>,
        path: &str,
        content: &[u8],
        staged: &mut BTreeMap<String, String>,
        stats: &mut (u64, u64),
        previous: Option<&[u8]>,
    ) {
        let (added, removed) = line_diff(previous.unwrap_or_default(), content);
        stats.0 += added;
        stats.1 += removed;
        let id = blob_id(content);
        staged.entry(id.clone()).or_insert_with(|| b64(content));
        tree.insert(
            path.to_owned(),
            TreeEntry {
                blob_id: id,
                last_commit_id: String::new(),
            },
        );
    }

    fn blob_or_staged(&self, id: &str, staged: &BTreeMap<String, String>) -> Vec<u8> {
        match staged.get(id) {
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            None => self.blob(id),
        }
    }

    fn commit_id(
        &self,
        parent: &Option<String>,
        tree: &BTreeMap<String, TreeEntry>,
        req: &CommitRequest,
    ) -> String {
        let mut hasher = Sha256::new();
        hasher.update(parent.as_deref().unwrap_or("").as_bytes());
        for (path, entry) in tree {
            hasher.update(path.as_bytes());
            hasher.update(entry.blob_id.as_bytes());
        }
        hasher.update(req.message.as_bytes());
        hasher.update(self.seq.to_le_bytes());
        hasher.update(now_iso().as_bytes());
        hex(&hasher.finalize()[..20])
    }

    /// GitLab's commit entity (with stats, as the create and single-commit endpoints show).
    pub fn commit_json(&self, commit: &Commit, web_base: &str, with_stats: bool) -> Value {
        let title = commit.message.lines().next().unwrap_or("").to_owned();
        let mut value = json!({
            "id": commit.id,
            "short_id": commit.id.get(..8).unwrap_or(&commit.id),
            "created_at": commit.committed_date,
            "parent_ids": commit.parent_ids,
            "title": title,
            "message": commit.message,
            "author_name": commit.author_name,
            "author_email": commit.author_email,
            "authored_date": commit.authored_date,
            "committer_name": commit.author_name,
            "committer_email": commit.author_email,
            "committed_date": commit.committed_date,
            "trailers": {},
            "extended_trailers": {},
            "web_url": format!("{web_base}/-/commit/{}", commit.id),
        });
        if with_stats {
            value["stats"] = json!({
                "additions": commit.additions,
                "deletions": commit.deletions,
                "total": commit.additions + commit.deletions,
            });
            value["status"] = Value::Null;
            value["project_id"] = Value::Null;
            value["last_pipeline"] = Value::Null;
        }
        value
    }
}

fn change_of(action: &Action) -> Change {
    Change {
        action: action.kind.name().to_owned(),
        file_path: action.file_path.clone(),
        previous_path: action.previous_path.clone(),
    }
}

fn check_last_commit(tree: &BTreeMap<String, TreeEntry>, action: &Action) -> ApiResult<()> {
    let Some(expected) = &action.last_commit_id else {
        return Ok(());
    };
    let path = match action.kind {
        ActionKind::Move => action.previous_path.as_deref().unwrap_or(&action.file_path),
        _ => action.file_path.as_str(),
    };
    match tree.get(path) {
        Some(entry) if &entry.last_commit_id != expected => Err(ApiError::bad_request(format!(
            "The file has changed since you started editing it: {path}"
        ))),
        _ => Ok(()),
    }
}

fn is_directory(tree: &BTreeMap<String, TreeEntry>, path: &str) -> bool {
    let prefix = format!("{path}/");
    tree.keys().any(|k| k.starts_with(&prefix))
}

fn exists() -> ApiError {
    ApiError::bad_request("A file with this name already exists")
}

fn missing() -> ApiError {
    ApiError::bad_request("A file with this name doesn't exist")
}

fn line_count(content: &[u8]) -> u64 {
    String::from_utf8_lossy(content).lines().count() as u64
}

/// Lines added and removed, counted as a multiset difference (good enough for `stats`).
fn line_diff(old: &[u8], new: &[u8]) -> (u64, u64) {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let mut pool: BTreeMap<&str, i64> = BTreeMap::new();
    for line in old.lines() {
        *pool.entry(line).or_default() += 1;
    }
    let mut added = 0;
    for line in new.lines() {
        match pool.get_mut(line) {
            Some(n) if *n > 0 => *n -= 1,
            _ => added += 1,
        }
    }
    let removed = pool.values().filter(|n| **n > 0).sum::<i64>() as u64;
    (added, removed)
}

/// Tree listing entries under `path` (direct children, or everything when `recursive`).
pub(crate) fn tree_entries(commit: &Commit, path: &str, recursive: bool) -> Option<Vec<Value>> {
    let dir = path.trim_matches('/');
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    let mut files: Vec<(String, &TreeEntry)> = Vec::new();
    for (file, entry) in commit.tree.range(prefix.clone()..) {
        let Some(rest) = file.strip_prefix(&prefix) else {
            break;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if recursive {
            for i in 1..parts.len() {
                dirs.insert(format!("{prefix}{}", parts[..i].join("/")));
            }
            files.push((file.clone(), entry));
        } else if parts.len() == 1 {
            files.push((file.clone(), entry));
        } else {
            dirs.insert(format!("{prefix}{}", parts[0]));
        }
    }
    if !dir.is_empty() && dirs.is_empty() && files.is_empty() {
        return None;
    }
    let tree = dirs
        .into_iter()
        .map(|d| tree_item(&d, "tree", &blob_id(d.as_bytes()), "040000"));
    let blobs = files
        .into_iter()
        .map(|(f, e)| tree_item(&f, "blob", &e.blob_id, "100644"));
    Some(tree.chain(blobs).collect())
}

fn tree_item(path: &str, kind: &str, id: &str, mode: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({"id": id, "name": name, "type": kind, "path": path, "mode": mode})
}
