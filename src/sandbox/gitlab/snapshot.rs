//! The assertion dump behind the admin API's `GET /gitlab/state`: everything a test may want to
//! check, and by construction nothing secret (no token values or hashes, no hidden values).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::repository::{Repository, b64};
use super::routes::variable_json;
use super::state::{Project, World};

pub(super) fn snapshot(w: &World, base: &str) -> Value {
    json!({
        "users": w.users.iter().map(|u| json!({
            "id": u.id, "username": u.username, "admin": u.admin, "bot": u.bot,
        })).collect::<Vec<_>>(),
        "groups": w.groups.iter().map(|g| json!({
            "id": g.id, "path": g.path, "members": g.members,
        })).collect::<Vec<_>>(),
        "projects": w.projects.iter().map(|p| project(w, p, base)).collect::<Vec<_>>(),
        "agents": agents(w),
    })
}

fn agents(w: &World) -> Vec<Value> {
    w.agents
        .iter()
        .map(|a| {
            let project = w.projects.iter().find(|p| p.id == a.project_id);
            let tokens: Vec<Value> = w
                .agent_tokens
                .iter()
                .filter(|t| t.agent_id == a.id)
                .map(|t| {
                    json!({
                        "id": t.id,
                        "name": t.name,
                        "description": t.description,
                        "status": if t.revoked { "revoked" } else { "active" },
                        "revoked": t.revoked,
                        "revoked_at": t.revoked_at,
                        "created_at": t.created_at,
                        "last_used_at": t.last_used_at,
                    })
                })
                .collect();
            json!({
                "id": a.id,
                "name": a.name,
                "project_id": a.project_id,
                "project": project.map(|p| w.full_path(p)),
                "created_at": a.created_at,
                "max_active_tokens": a.max_active_tokens,
                "tokens": tokens,
            })
        })
        .collect()
}

fn project(w: &World, p: &Project, base: &str) -> Value {
    let access_tokens: Vec<Value> = w
        .access_tokens
        .iter()
        .filter(|t| t.project_id == p.id)
        .map(|t| {
            json!({
                "id": t.id, "name": t.name, "user_id": t.user_id, "scopes": t.scopes,
                "access_level": t.access_level, "revoked": t.revoked,
                "created_at": t.created_at, "expires_at": t.expires_at,
            })
        })
        .collect();
    let variables: Vec<Value> = p.variables.iter().map(variable_json).collect();
    json!({
        "id": p.id,
        "path_with_namespace": w.full_path(p),
        "web_url": format!("{base}/{}", w.full_path(p)),
        "default_branch": p.default_branch,
        "branches": p.repo.branches,
        "files": files(&p.repo),
        "commits": commits(&p.repo),
        "deploy_keys": p.deploy_keys,
        // Serials and the lock only: a state's content may hold secrets.
        "terraform_states": p.terraform_states.iter().map(|(name, st)| (name.clone(), json!({
            "serials": st.versions.iter().map(|v| v.serial).collect::<Vec<_>>(),
            "lock": st.lock.as_ref().map(|l| json!({"id": l.id, "who": l.who, "operation": l.operation})),
        }))).collect::<serde_json::Map<String, Value>>(),
        "variables": variables,
        "access_tokens": access_tokens,
    })
}

/// branch -> path -> content (UTF-8 text, or `base64:`-prefixed for binary content).
fn files(repo: &Repository) -> BTreeMap<String, BTreeMap<String, String>> {
    repo.branches
        .iter()
        .filter_map(|(branch, sha)| {
            let commit = repo.commits.get(sha)?;
            let files = commit
                .tree
                .iter()
                .map(|(path, entry)| {
                    let bytes = repo.blob(&entry.blob_id);
                    let text = String::from_utf8(bytes)
                        .unwrap_or_else(|e| format!("base64:{}", b64(e.as_bytes())));
                    (path.clone(), text)
                })
                .collect();
            Some((branch.clone(), files))
        })
        .collect()
}

/// All commits, newest first.
fn commits(repo: &Repository) -> Vec<Value> {
    let mut all: Vec<_> = repo.commits.values().collect();
    all.sort_by_key(|c| std::cmp::Reverse(c.seq));
    all.into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "message": c.message,
                "author_name": c.author_name,
                "author_email": c.author_email,
                "authored_date": c.authored_date,
                "committed_date": c.committed_date,
                "parent_ids": c.parent_ids,
                "actions": c.changes,
                "stats": {"additions": c.additions, "deletions": c.deletions},
            })
        })
        .collect()
}
