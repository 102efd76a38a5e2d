//! Repository endpoints: atomic multi-action commits, commit history, files (JSON and raw),
//! trees and branches.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::{Value, json};

use super::Emu;
use crate::sandbox::gitlab::http::{
    ApiError, ApiResult, BodyParams, Params, QueryParams, created, invalid_param, missing_param,
    ok, paginate, refuse_params,
};
use crate::sandbox::gitlab::paths::file_path_problem;
use crate::sandbox::gitlab::repository::{
    Action, ActionKind, Commit, CommitRequest, Repository, tree_entries,
};
use crate::sandbox::gitlab::state::{Caller, DEVELOPER, MAINTAINER, Project, REPORTER, World};

fn web_base(w: &World, p: &Project, base: &str) -> String {
    format!("{base}/{}", w.full_path(p))
}

fn parse_action(index: usize, raw: &Value) -> ApiResult<Action> {
    let field = |name: &str| format!("actions[{index}][{name}]");
    let params = match raw {
        Value::Object(map) => Params(map.clone()),
        _ => return Err(invalid_param("actions")),
    };
    let kind = params
        .required_str("action")
        .map_err(|_| missing_param(&field("action")))?;
    let kind = ActionKind::parse(&kind).ok_or_else(|| {
        ApiError::param(format!("{} does not have a valid value", field("action")))
    })?;
    let file_path = params
        .required_str("file_path")
        .map_err(|_| missing_param(&field("file_path")))?;
    let encoding = params.str("encoding")?.unwrap_or_else(|| "text".to_owned());
    let content = match (params.str("content")?, encoding.as_str()) {
        (None, _) => None,
        (Some(c), "text") => Some(c.into_bytes()),
        (Some(c), "base64") => Some(
            base64::engine::general_purpose::STANDARD
                .decode(c.trim())
                .map_err(|_| ApiError::bad_request("Failed to decode base64 content"))?,
        ),
        _ => {
            return Err(ApiError::param(format!(
                "{} does not have a valid value",
                field("encoding")
            )));
        }
    };
    if matches!(kind, ActionKind::Create | ActionKind::Update) && content.is_none() {
        return Err(missing_param(&field("content")));
    }
    // The paths go on as sent: Gitaly checks and cleans them when the commit is written.
    Ok(Action {
        kind,
        file_path,
        previous_path: params.str("previous_path")?,
        content,
        last_commit_id: params.str("last_commit_id")?,
    })
}

fn parse_commit_request(body: &Params, author: (String, String)) -> ApiResult<CommitRequest> {
    let branch = body.required_str("branch")?;
    let message = body.required_str("commit_message")?;
    let actions = match body.raw("actions") {
        None => return Err(missing_param("actions")),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::param("actions is empty"));
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, a)| parse_action(i, a))
            .collect::<ApiResult<Vec<_>>>()?,
        Some(_) => return Err(invalid_param("actions")),
    };
    Ok(CommitRequest {
        branch,
        start_branch: body.str("start_branch")?,
        start_sha: body.str("start_sha")?,
        force: body.bool("force")?.unwrap_or(false),
        message,
        author_name: body.str("author_name")?.unwrap_or(author.0),
        author_email: body.str("author_email")?.unwrap_or(author.1),
        actions,
    })
}

pub(super) async fn create_commit(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    BodyParams(body): BodyParams,
) -> ApiResult {
    let base = emu.config().base_url.clone();
    let commit = emu.write(|w| {
        let index = w.project_index(&caller, &id, DEVELOPER)?;
        let author = w
            .user(caller.user_id)
            .map(|u| (u.name.clone(), u.email.clone()))
            .unwrap_or_default();
        let request = parse_commit_request(&body, author)?;
        let project = &w.projects[index];
        // The default branch is protected: only Maintainers may push to it.
        if request.branch == project.default_branch
            && w.access_level(&caller, project).unwrap_or(0) < MAINTAINER
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                json!({"message": "403 Forbidden - You are not allowed to push into this branch"}),
            ));
        }
        let web = web_base(w, project, &base);
        let repo = &mut w.projects[index].repo;
        let id = repo.commit(request)?;
        let commit = repo
            .commits
            .get(&id)
            .ok_or_else(|| ApiError::not_found("Commit"))?;
        let mut json = repo.commit_json(commit, &web, true);
        json["project_id"] = json!(w.projects[index].id);
        Ok(json)
    })?;
    created(commit)
}

fn resolve_ref<'a>(
    repo: &'a Repository,
    project: &Project,
    reference: Option<&str>,
) -> ApiResult<&'a Commit> {
    let reference = reference.unwrap_or(&project.default_branch);
    repo.resolve(reference)
        .ok_or_else(|| ApiError::not_found("Commit"))
}

fn touches(commit: &Commit, path: &str) -> bool {
    let dir = format!("{}/", path.trim_end_matches('/'));
    commit.changes.iter().any(|c| {
        let hit = |p: &str| p == path || p.starts_with(&dir);
        hit(&c.file_path) || c.previous_path.as_deref().is_some_and(hit)
    })
}

pub(super) async fn list_commits(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let base = emu.config().base_url.clone();
    let reference = q.str("ref_name")?;
    let path = q.str("path")?;
    let items = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        let web = web_base(w, project, &base);
        let head = resolve_ref(&project.repo, project, reference.as_deref())?;
        Ok::<_, ApiError>(
            project
                .repo
                .history(head)
                .into_iter()
                .filter(|c| path.as_deref().is_none_or(|p| touches(c, p)))
                .map(|c| project.repo.commit_json(c, &web, false))
                .collect(),
        )
    })?;
    paginate(items, &q, &uri, &base)
}

pub(super) async fn get_commit(
    State(emu): Emu,
    caller: Caller,
    Path((id, sha)): Path<(String, String)>,
) -> ApiResult {
    let base = emu.config().base_url.clone();
    let commit = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        let commit = project
            .repo
            .resolve(&sha)
            .ok_or_else(|| ApiError::not_found("Commit"))?;
        let mut json = project
            .repo
            .commit_json(commit, &web_base(w, project, &base), true);
        json["project_id"] = json!(project.id);
        Ok::<_, ApiError>(json)
    })?;
    ok(commit)
}

/// A file at a ref: (content, blob id, head commit id, last commit id).
fn read_file(
    project: &Project,
    path: &str,
    reference: Option<&str>,
) -> ApiResult<(Vec<u8>, String, String, String)> {
    let head = resolve_ref(&project.repo, project, reference)?;
    let entry = head
        .tree
        .get(path.trim_start_matches('/'))
        .ok_or_else(|| ApiError::not_found("File"))?;
    Ok((
        project.repo.blob(&entry.blob_id),
        entry.blob_id.clone(),
        head.id.clone(),
        entry.last_commit_id.clone(),
    ))
}

pub(super) async fn get_file(
    State(emu): Emu,
    caller: Caller,
    Path((id, file_path)): Path<(String, String)>,
    QueryParams(q): QueryParams,
) -> ApiResult {
    // Grape validates every declared parameter, in order, and reports all failures at once.
    let reference = q.str("ref")?;
    let missing_ref = reference.is_none().then(|| "ref is missing".to_owned());
    refuse_params([file_path_problem("file_path", &file_path), missing_ref])?;
    let reference = reference.unwrap_or_default();
    let (content, blob_id, commit_id, last_commit_id) = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        read_file(project, &file_path, Some(&reference))
    })?;
    let file_name = file_path.rsplit('/').next().unwrap_or(&file_path);
    let sha256 = crate::digest::sha256_hex(&content);
    // GitLab mirrors the metadata in X-Gitlab-* headers so `HEAD` can check a file cheaply.
    let headers = [
        ("x-gitlab-blob-id", blob_id.clone()),
        ("x-gitlab-commit-id", commit_id.clone()),
        ("x-gitlab-last-commit-id", last_commit_id.clone()),
        ("x-gitlab-content-sha256", sha256.clone()),
        ("x-gitlab-encoding", "base64".to_owned()),
        ("x-gitlab-file-name", file_name.to_owned()),
        ("x-gitlab-file-path", file_path.clone()),
        ("x-gitlab-ref", reference.clone()),
        ("x-gitlab-size", content.len().to_string()),
    ];
    let body = json!({
        "file_name": file_name,
        "file_path": file_path,
        "size": content.len(),
        "encoding": "base64",
        "content_sha256": sha256,
        "ref": reference,
        "blob_id": blob_id,
        "commit_id": commit_id,
        "last_commit_id": last_commit_id,
        "execute_filemode": false,
        "content": base64::engine::general_purpose::STANDARD.encode(&content),
    });
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    for (name, value) in headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

pub(super) async fn get_raw_file(
    State(emu): Emu,
    caller: Caller,
    Path((id, file_path)): Path<(String, String)>,
    QueryParams(q): QueryParams,
) -> ApiResult {
    refuse_params([file_path_problem("file_path", &file_path)])?;
    let reference = q.str("ref")?;
    let (content, blob_id, commit_id, last_commit_id) = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        read_file(project, &file_path, reference.as_deref())
    })?;
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
        (header::HeaderName::from_static("x-gitlab-blob-id"), blob_id),
        (
            header::HeaderName::from_static("x-gitlab-commit-id"),
            commit_id,
        ),
        (
            header::HeaderName::from_static("x-gitlab-last-commit-id"),
            last_commit_id,
        ),
    ];
    Ok((StatusCode::OK, headers, content).into_response())
}

pub(super) async fn tree(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let reference = q.str("ref")?;
    let path = q.str("path")?.unwrap_or_default();
    let recursive = q.bool("recursive")?.unwrap_or(false);
    let items = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        let head = resolve_ref(&project.repo, project, reference.as_deref())
            .map_err(|_| ApiError::not_found("Tree"))?;
        tree_entries(head, &path, recursive).ok_or_else(|| ApiError::not_found("Tree"))
    })?;
    paginate(items, &q, &uri, &emu.config().base_url)
}

fn branch_json(w: &World, project: &Project, name: &str, base: &str) -> Option<Value> {
    let sha = project.repo.branches.get(name)?;
    let commit = project.repo.commits.get(sha)?;
    let web = web_base(w, project, base);
    let default = name == project.default_branch;
    Some(json!({
        "name": name,
        "commit": project.repo.commit_json(commit, &web, false),
        "merged": false,
        "protected": default,
        "default": default,
        "developers_can_push": !default,
        "developers_can_merge": !default,
        "can_push": true,
        "web_url": format!("{web}/-/tree/{name}"),
    }))
}

pub(super) async fn list_branches(
    State(emu): Emu,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams,
    uri: Uri,
) -> ApiResult {
    let base = emu.config().base_url.clone();
    let search = q.str("search")?;
    let items = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        Ok::<_, ApiError>(
            project
                .repo
                .branches
                .keys()
                .filter(|b| search.as_deref().is_none_or(|s| b.contains(s)))
                .filter_map(|b| branch_json(w, project, b, &base))
                .collect(),
        )
    })?;
    paginate(items, &q, &uri, &base)
}

pub(super) async fn get_branch(
    State(emu): Emu,
    caller: Caller,
    Path((id, branch)): Path<(String, String)>,
) -> ApiResult {
    let base = emu.config().base_url.clone();
    let branch = emu.read(|w| {
        let project = w.project(&caller, &id, REPORTER)?;
        branch_json(w, project, &branch, &base).ok_or_else(|| ApiError::not_found("Branch"))
    })?;
    ok(branch)
}
