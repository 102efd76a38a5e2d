//! Tests of the GitLab emulator, driven through its router as an HTTP client would.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use base64::Engine;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::http::date_after_days;
use super::{GitlabConfig, GitlabEmulator, InstanceSettings};

const BASE: &str = "http://127.0.0.1:9999";

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<absent>")
    }
}

struct World {
    emu: Arc<GitlabEmulator>,
    app: Router,
    root: String,
}

fn world() -> World {
    let emu = GitlabEmulator::new(GitlabConfig {
        base_url: BASE.to_owned(),
        kas_url: "ws://127.0.0.1:9999/-/kubernetes-agent/".to_owned(),
    });
    let app = emu.router();
    let root = emu.root_token();
    World { emu, app, root }
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let response = app
        .clone()
        .oneshot(req)
        .await
        .expect("router is infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        raw,
    }
}

impl World {
    async fn call(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> Resp {
        let mut builder = Request::builder().method(method).uri(uri);
        if !token.is_empty() {
            builder = builder.header("PRIVATE-TOKEN", token);
        }
        let body = match body {
            Some(b) => {
                builder = builder.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        send(&self.app, builder.body(body).expect("request")).await
    }
    async fn get(&self, uri: &str) -> Resp {
        self.call("GET", uri, &self.root, None).await
    }
    async fn post(&self, uri: &str, body: Value) -> Resp {
        self.call("POST", uri, &self.root, Some(body)).await
    }
    async fn create_agent(&self, name: &str) -> u64 {
        let r = self
            .post(
                "/api/v4/projects/fleet%2Fagents/cluster_agents",
                json!({"name": name}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_u64().expect("agent id")
    }
    async fn commit(&self, actions: Value) -> Resp {
        self.post(
            "/api/v4/projects/fleet%2Fgitops/repository/commits",
            json!({"branch": "main", "commit_message": "change", "actions": actions}),
        )
        .await
    }
    async fn raw_file(&self, path: &str) -> Resp {
        let encoded = path.replace('/', "%2F");
        self.get(&format!(
            "/api/v4/projects/fleet%2Fgitops/repository/files/{encoded}/raw?ref=main"
        ))
        .await
    }
}

// ---- auth, roles, headers ----

#[tokio::test]
async fn auth_accepts_both_headers_and_rejects_bad_tokens_with_401() {
    let w = world();
    let ok = w.get("/api/v4/user").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["username"], "root");
    let bearer = Request::get("/api/v4/projects/1")
        .header("Authorization", format!("Bearer {}", w.root))
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&w.app, bearer).await.status, 200);
    for token in ["", "glpat-nope"] {
        let r = w.call("GET", "/api/v4/projects/1", token, None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body, json!({"message": "401 Unauthorized"}));
    }
}

#[tokio::test]
async fn rate_limit_headers_on_success_and_error() {
    let w = world();
    let ok = w.get("/api/v4/version").await;
    let err = w.call("GET", "/api/v4/version", "bad", None).await;
    let missing = w.get("/api/v4/no/such/route").await;
    assert_eq!(missing.status, 404);
    // Every request counts, answered or refused: the count goes 1, 2, 3.
    for (expected, r) in (1u64..).zip([&ok, &err, &missing]) {
        assert_eq!(r.header("ratelimit-limit"), "2000");
        let observed: u64 = r.header("ratelimit-observed").parse().expect("observed");
        let remaining: u64 = r.header("ratelimit-remaining").parse().expect("remaining");
        assert_eq!(observed, expected);
        assert_eq!(remaining, 2000 - expected);
        let reset: u64 = r.header("ratelimit-reset").parse().expect("reset");
        assert!(reset.is_multiple_of(60) && reset > 1_700_000_000);
        assert!(r.header("ratelimit-resettime").ends_with(" GMT"));
    }
}

#[tokio::test]
async fn metadata_reports_kas() {
    let w = world();
    let r = w.get("/api/v4/metadata").await;
    assert_eq!(
        r.body["kas"]["externalUrl"],
        "ws://127.0.0.1:9999/-/kubernetes-agent/"
    );
    assert_eq!(r.body["kas"]["enabled"], true);
    assert_eq!(r.body["enterprise"], false);
    assert_eq!(w.get("/api/v4/version").await.body, r.body);
}

#[tokio::test]
async fn project_lookup_by_path_and_permissions() {
    let w = world();
    let r = w.get("/api/v4/projects/fleet%2Fagents").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["path_with_namespace"], "fleet/agents");
    assert_eq!(r.body["default_branch"], "main");
    assert_eq!(r.body["namespace"]["full_path"], "fleet");
    assert_eq!(r.body["permissions"]["group_access"]["access_level"], 50);
    assert_eq!(r.body["web_url"], format!("{BASE}/fleet/agents"));
    let missing = w.get("/api/v4/projects/fleet%2Fnope").await;
    assert_eq!(
        (missing.status, missing.body.clone()),
        (404, json!({"message": "404 Project Not Found"}))
    );
    assert_eq!(
        w.get("/api/v4/groups/fleet").await.body["full_path"],
        "fleet"
    );
    assert_eq!(
        w.get("/api/v4/projects")
            .await
            .body
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn roles_give_404_to_outsiders_and_403_to_low_roles() {
    let w = world();
    let agent = w.create_agent("a1").await;
    let outsider = w.emu.create_user_with_token("outsider", 0);
    let guest = w.emu.create_user_with_token("guest", 10);
    let reporter = w.emu.create_user_with_token("reporter", 20);
    let developer = w.emu.create_user_with_token("dev", 30);
    let agents = "/api/v4/projects/fleet%2Fagents/cluster_agents";
    let r = w.call("GET", agents, &outsider, None).await;
    assert_eq!(
        (r.status, r.body),
        (404, json!({"message": "404 Project Not Found"}))
    );
    // Without read_cluster, GitLab hides agents behind 404s instead of answering 403.
    let r = w.call("GET", agents, &guest, None).await;
    assert_eq!(
        (r.status, r.body),
        (404, json!({"message": "404 ClusterAgents Not Found"}))
    );
    let r = w
        .call("GET", &format!("{agents}/{agent}"), &reporter, None)
        .await;
    assert_eq!(
        (r.status, r.body),
        (404, json!({"message": "404 Not found"}))
    );
    assert_eq!(
        w.call("GET", "/api/v4/projects/fleet%2Fagents", &guest, None)
            .await
            .status,
        200
    );
    assert_eq!(w.call("GET", agents, &reporter, None).await.status, 404);
    let readme = "/api/v4/projects/fleet%2Fagents/repository/files/README.md?ref=main";
    assert_eq!(w.call("GET", readme, &reporter, None).await.status, 200);
    let r = w.call("GET", readme, &guest, None).await;
    assert_eq!(
        (r.status, r.body),
        (403, json!({"message": "403 Forbidden"}))
    );
    assert_eq!(w.call("GET", agents, &developer, None).await.status, 200);
    let tokens = format!("{agents}/{agent}/tokens");
    assert_eq!(w.call("GET", &tokens, &developer, None).await.status, 200);
    let create = w
        .call("POST", &tokens, &developer, Some(json!({"name": "t"})))
        .await;
    assert_eq!(create.status, 403);
    let create = w
        .call("POST", agents, &developer, Some(json!({"name": "x"})))
        .await;
    assert_eq!(create.status, 403);
    let keys = "/api/v4/projects/fleet%2Fagents/deploy_keys";
    assert_eq!(w.call("GET", keys, &developer, None).await.status, 403);
    let vars = "/api/v4/projects/fleet%2Fagents/variables";
    assert_eq!(w.call("GET", vars, &developer, None).await.status, 403);
    let maintainer = w.emu.create_user_with_token("maint", 40);
    assert_eq!(w.call("GET", vars, &maintainer, None).await.status, 200);
}

// ---- agents and agent tokens ----

#[tokio::test]
async fn agent_name_validation_and_uniqueness() {
    let w = world();
    w.create_agent("prod-eu-1").await;
    let url = "/api/v4/projects/fleet%2Fagents/cluster_agents";
    let dup = w.post(url, json!({"name": "prod-eu-1"})).await;
    assert_eq!(dup.status, 400);
    assert_eq!(
        dup.body,
        json!({"message": "400 Bad request - [\"Name has already been taken\"]"})
    );
    for bad in ["-x", "x-", "Upper", "a_b", &"a".repeat(64)] {
        let r = w.post(url, json!({"name": bad})).await;
        assert_eq!(r.status, 400, "{bad}");
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("400 Bad request - [\"Name "),
            "{bad}: {}",
            r.body
        );
    }
    assert_eq!(
        w.post(url, json!({})).await.body,
        json!({"error": "name is missing"})
    );
    let r = w.get(url).await;
    assert_eq!(
        r.body[0]["config_project"]["path_with_namespace"],
        "fleet/agents"
    );
    assert_eq!(r.body[0]["created_by_user_id"], 1);
}

#[tokio::test]
async fn two_active_tokens_rule_and_revocation() {
    let w = world();
    let agent = w.create_agent("c1").await;
    let url = format!("/api/v4/projects/fleet%2Fagents/cluster_agents/{agent}/tokens");
    let first = w
        .post(&url, json!({"name": "one", "description": "d"}))
        .await;
    assert_eq!(first.status, 201);
    let value = first.body["token"]
        .as_str()
        .expect("token value")
        .to_owned();
    assert!(value.starts_with("glagent-") && value.len() > 40);
    assert_eq!(first.body["status"], "active");
    assert_eq!(first.body["last_used_at"], Value::Null);
    assert_eq!(w.post(&url, json!({"name": "two"})).await.status, 201);
    let third = w.post(&url, json!({"name": "three"})).await;
    assert_eq!(third.status, 400);
    assert_eq!(
        third.body,
        json!({"message": "400 Bad request - An agent can have only two active tokens at a time"})
    );
    let id = first.body["id"].as_u64().expect("id");
    let got = w.get(&format!("{url}/{id}")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("token").is_none());
    let revoke = w
        .call("DELETE", &format!("{url}/{id}"), &w.root, None)
        .await;
    assert_eq!(revoke.status, 204);
    let gone = w.get(&format!("{url}/{id}")).await;
    assert_eq!(
        (gone.status, gone.body),
        (404, json!({"message": "404 Not found"}))
    );
    let list = w.get(&url).await;
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
    assert_eq!(list.body[0]["name"], "two");
    assert_eq!(w.post(&url, json!({"name": "three"})).await.status, 201);
    assert!(
        !w.emu.mark_agent_token_used(&value),
        "revoked tokens are not marked"
    );
}

#[tokio::test]
async fn token_values_never_leak_and_mark_used_works() {
    let w = world();
    let agent = w.create_agent("c2").await;
    let url = format!("/api/v4/projects/fleet%2Fagents/cluster_agents/{agent}/tokens");
    let created = w.post(&url, json!({"name": "one"})).await;
    let value = created.body["token"].as_str().expect("token").to_owned();
    let id = created.body["id"].as_u64().expect("id");
    assert!(!w.emu.snapshot().to_string().contains(&value));
    assert!(!w.emu.persisted().to_string().contains(&value));
    let list = w.get(&url).await;
    assert!(!list.body.to_string().contains(&value));
    assert!(
        list.body[0].get("last_used_at").is_none(),
        "the list presents AgentTokenBasic"
    );
    let before = w.emu.version();
    assert!(w.emu.mark_agent_token_used(&value));
    assert!(!w.emu.mark_agent_token_used("glagent-unknown"));
    assert!(w.emu.version() > before);
    let got = w.get(&format!("{url}/{id}")).await;
    assert!(got.body["last_used_at"].is_string());
    let snap = w.emu.snapshot();
    assert!(snap["agents"][0]["tokens"][0]["last_used_at"].is_string());
    assert_eq!(snap["agents"][0]["tokens"][0]["status"], "active");
}

#[tokio::test]
async fn deleting_an_agent_revokes_its_tokens() {
    let w = world();
    let agent = w.create_agent("c3").await;
    let url = format!("/api/v4/projects/fleet%2Fagents/cluster_agents/{agent}");
    let value = w
        .post(&format!("{url}/tokens"), json!({"name": "t"}))
        .await
        .body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(w.call("DELETE", &url, &w.root, None).await.status, 204);
    assert_eq!(w.get(&url).await.status, 404);
    assert!(!w.emu.mark_agent_token_used(&value));
}

// ---- pagination ----

#[tokio::test]
async fn pagination_headers_and_links_across_three_pages() {
    let w = world();
    for i in 0..7 {
        w.create_agent(&format!("p{i}")).await;
    }
    let path = "/api/v4/projects/fleet%2Fagents/cluster_agents";
    let r = w.get(&format!("{path}?foo=bar&page=2&per_page=3")).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(3));
    assert_eq!(r.body[0]["name"], "p3");
    let expect = [
        ("x-page", "2"),
        ("x-per-page", "3"),
        ("x-next-page", "3"),
        ("x-prev-page", "1"),
        ("x-total", "7"),
        ("x-total-pages", "3"),
    ];
    for (name, value) in expect {
        assert_eq!(r.header(name), value, "{name}");
    }
    let link = r.header("link");
    for (page, rel) in [(1, "prev"), (3, "next"), (1, "first"), (3, "last")] {
        let url = format!("<{BASE}{path}?foo=bar&page={page}&per_page=3>; rel=\"{rel}\"");
        assert!(link.contains(&url), "{link} lacks {url}");
    }
    let last = w.get(&format!("{path}?page=3&per_page=3")).await;
    assert_eq!(last.body.as_array().map(Vec::len), Some(1));
    assert_eq!(last.header("x-next-page"), "");
    assert!(!last.header("link").contains("rel=\"next\""));
    let first = w.get(path).await;
    assert_eq!(
        (first.header("x-page"), first.header("x-per-page")),
        ("1", "20")
    );
    assert_eq!(first.header("x-prev-page"), "");
    let clamped = w.get(&format!("{path}?per_page=1000")).await;
    assert_eq!(clamped.header("x-per-page"), "100");
    assert!(clamped.header("link").contains("per_page=100"));
}

// ---- repository ----

#[tokio::test]
async fn multi_file_commit_and_reads() {
    let w = world();
    let r = w
        .commit(json!([
            {"action": "create", "file_path": ".gitlab/agents/a/config.yaml", "content": "ci_access: {}\n"},
            {"action": "create", "file_path": "bin/data", "content": "AAEC", "encoding": "base64"},
        ]))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sha = r.body["id"].as_str().expect("sha").to_owned();
    assert_eq!(sha.len(), 40);
    assert_eq!(r.body["short_id"], &sha[..8]);
    assert_eq!(r.body["title"], "change");
    assert_eq!(r.body["author_name"], "Administrator");
    assert_eq!(r.body["parent_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["stats"]["additions"], 2);
    let file = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/files/.gitlab%2Fagents%2Fa%2Fconfig.yaml?ref=main")
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.body["file_name"], "config.yaml");
    assert_eq!(file.body["last_commit_id"], sha.as_str());
    assert_eq!(file.body["commit_id"], sha.as_str());
    assert_eq!(file.body["encoding"], "base64");
    assert_eq!(file.header("x-gitlab-last-commit-id"), sha.as_str());
    let content = base64::engine::general_purpose::STANDARD
        .decode(file.body["content"].as_str().expect("content"))
        .expect("base64");
    assert_eq!(content, b"ci_access: {}\n");
    assert_eq!(w.raw_file("bin/data").await.raw, vec![0, 1, 2]);
    let missing = w.raw_file("nope.txt").await;
    assert_eq!(
        (missing.status, missing.body),
        (404, json!({"message": "404 File Not Found"}))
    );
    let tree = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/tree?recursive=true")
        .await;
    let paths: Vec<&str> = tree
        .body
        .as_array()
        .expect("tree")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&".gitlab/agents/a") && paths.contains(&"README.md"),
        "{paths:?}"
    );
    let top = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/tree")
        .await;
    assert_eq!(top.body.as_array().map(Vec::len), Some(3));
    let branch = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/branches/main")
        .await;
    assert_eq!(branch.body["commit"]["id"], sha.as_str());
    assert_eq!(
        w.get("/api/v4/projects/fleet%2Fgitops/repository/branches/nope")
            .await
            .status,
        404
    );
    let commit = w
        .get(&format!(
            "/api/v4/projects/fleet%2Fgitops/repository/commits/{sha}"
        ))
        .await;
    assert_eq!(commit.body["message"], "change");
}

#[tokio::test]
async fn failing_action_leaves_repository_unchanged() {
    let w = world();
    w.commit(json!([{"action": "create", "file_path": "a.txt", "content": "one"}]))
        .await;
    let before = w.emu.snapshot();
    let version = w.emu.version();
    let r = w
        .commit(json!([
            {"action": "update", "file_path": "a.txt", "content": "two"},
            {"action": "create", "file_path": "b.txt", "content": "b"},
            {"action": "create", "file_path": "README.md", "content": "dup"},
        ]))
        .await;
    assert_eq!(
        (r.status, r.body),
        (
            400,
            json!({"message": "A file with this name already exists"})
        )
    );
    assert_eq!(w.emu.snapshot(), before);
    assert_eq!(w.emu.version(), version);
    assert_eq!(w.raw_file("a.txt").await.raw, b"one");
    assert_eq!(w.raw_file("b.txt").await.status, 404);
}

#[tokio::test]
async fn commit_error_messages() {
    let w = world();
    let first = w
        .commit(json!([{"action": "create", "file_path": "a.txt", "content": "1"}]))
        .await;
    let stale = first.body["id"].as_str().expect("sha").to_owned();
    let second = w
        .commit(json!([{"action": "update", "file_path": "a.txt", "content": "2", "last_commit_id": stale}]))
        .await;
    assert_eq!(second.status, 201, "matching last_commit_id is accepted");
    let conflict = w
        .commit(json!([{"action": "update", "file_path": "a.txt", "content": "3", "last_commit_id": stale}]))
        .await;
    assert_eq!(conflict.status, 400);
    assert_eq!(
        conflict.body["message"],
        "The file has changed since you started editing it: a.txt"
    );
    for action in ["update", "delete"] {
        let r = w
            .commit(json!([{"action": action, "file_path": "zz", "content": "x"}]))
            .await;
        assert_eq!(
            r.body,
            json!({"message": "A file with this name doesn't exist"}),
            "{action}"
        );
    }
    let r = w.post(
        "/api/v4/projects/fleet%2Fgitops/repository/commits",
        json!({"branch": "feature", "commit_message": "m", "actions": [{"action": "create", "file_path": "f", "content": "x"}]}),
    ).await;
    assert_eq!(
        r.body,
        json!({"message": "You can only create or edit files when you are on a branch"})
    );
    let r = w.post(
        "/api/v4/projects/fleet%2Fgitops/repository/commits",
        json!({"branch": "feature", "start_branch": "main", "commit_message": "m", "actions": [{"action": "create", "file_path": "f", "content": "x"}]}),
    ).await;
    assert_eq!(r.status, 201, "start_branch creates the branch");
    let empty = w.commit(json!([])).await;
    assert_eq!(
        (empty.status, empty.body),
        (400, json!({"error": "actions is empty"}))
    );
    let unchanged = w
        .commit(json!([{"action": "update", "file_path": "a.txt", "content": "2"}]))
        .await;
    assert_eq!(
        unchanged.status, 201,
        "GitLab commits even when content is unchanged"
    );
}

#[tokio::test]
async fn move_and_delete_and_history_filters() {
    let w = world();
    w.commit(json!([{"action": "create", "file_path": "dir/a", "content": "a"}]))
        .await;
    w.commit(json!([{"action": "create", "file_path": "other", "content": "o"}]))
        .await;
    let mv = w
        .commit(json!([{"action": "move", "previous_path": "dir/a", "file_path": "dir/b"}]))
        .await;
    assert_eq!(mv.status, 201, "{}", mv.body);
    assert_eq!(w.raw_file("dir/b").await.raw, b"a");
    assert_eq!(w.raw_file("dir/a").await.status, 404);
    let history = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/commits?ref_name=main&path=dir")
        .await;
    assert_eq!(history.body.as_array().map(Vec::len), Some(2));
    assert_eq!(history.body[0]["id"], mv.body["id"]);
    let all = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/commits")
        .await;
    assert_eq!(all.header("x-total"), "4");
    let del = w
        .commit(json!([{"action": "delete", "file_path": "dir/b"}]))
        .await;
    assert_eq!(del.status, 201);
    let tree = w
        .get("/api/v4/projects/fleet%2Fgitops/repository/tree?path=dir")
        .await;
    assert_eq!(tree.status, 404);
}

#[tokio::test]
async fn file_paths_with_traversal_or_absolute_are_refused_by_the_files_api() {
    let w = world();
    let files = "/api/v4/projects/fleet%2Fgitops/repository/files";
    let invalid = json!({"error": "file_path should be a valid file path"});
    for encoded in [
        "..%2Fsecret",
        "a%2F..%2F..%2Fsecret",
        "a%2F..",
        "..",
        ".",
        "%2Fetc%2Fpasswd",
        "a%5C..%5Cb",
        "%252E%252E%252Fsecret",
        "%252Fetc",
        "a%0Ab",
    ] {
        for suffix in ["?ref=main", "/raw?ref=main", "/raw"] {
            let r = w.get(&format!("{files}/{encoded}{suffix}")).await;
            assert_eq!((r.status, &r.body), (400, &invalid), "{encoded}{suffix}");
        }
    }
    let r = w.get(&format!("{files}/..%2Fsecret")).await;
    assert_eq!(
        r.body,
        json!({"error": "file_path should be a valid file path, ref is missing"})
    );
    // Parameters are validated before the project is looked up.
    let r = w
        .get("/api/v4/projects/fleet%2Fnope/repository/files/..%2Fx?ref=main")
        .await;
    assert_eq!((r.status, r.body), (400, invalid));
    w.commit(json!([{"action": "create", "file_path": "a..b/..c", "content": "ok"}]))
        .await;
    assert_eq!(
        w.raw_file("a..b/..c").await.raw,
        b"ok",
        "dots inside names are fine"
    );
}

#[tokio::test]
async fn commit_paths_are_checked_and_cleaned_as_gitaly_does() {
    let w = world();
    w.commit(json!([{"action": "create", "file_path": "a.txt", "content": "a"}]))
        .await;
    let before = w.emu.snapshot();
    let version = w.emu.version();
    let traversal = json!({"message": "Path cannot include directory traversal"});
    let refused = [
        (
            json!([{"action": "create", "file_path": "../x", "content": "x"}]),
            traversal.clone(),
        ),
        (
            json!([
                {"action": "create", "file_path": "fine.txt", "content": "x"},
                {"action": "update", "file_path": "dir/../../a.txt", "content": "x"},
            ]),
            traversal.clone(),
        ),
        (
            json!([{"action": "move", "previous_path": "/../a.txt", "file_path": "b.txt"}]),
            traversal,
        ),
        (
            json!([{"action": "create", "file_path": "a//b", "content": "x"}]),
            json!({"message": "invalid path: 'a//b'"}),
        ),
        (
            json!([{"action": "create", "file_path": "", "content": "x"}]),
            json!({"message": "You must provide a file path"}),
        ),
    ];
    for (actions, body) in refused {
        let r = w.commit(actions.clone()).await;
        assert_eq!((r.status, r.body), (400, body), "{actions}");
    }
    assert_eq!(w.emu.snapshot(), before, "nothing was committed");
    assert_eq!(w.emu.version(), version);
    let r = w
        .commit(json!([
            {"action": "create", "file_path": "/abs/./x.txt", "content": "x"},
            {"action": "update", "file_path": "dir/../a.txt", "content": "b"},
        ]))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(w.raw_file("abs/x.txt").await.raw, b"x");
    assert_eq!(w.raw_file("a.txt").await.raw, b"b");
}

#[tokio::test]
async fn developers_cannot_push_to_the_protected_default_branch() {
    let w = world();
    let dev = w.emu.create_user_with_token("dev", 30);
    let body = json!({"branch": "main", "commit_message": "m", "actions": [{"action": "create", "file_path": "f", "content": "x"}]});
    let r = w
        .call(
            "POST",
            "/api/v4/projects/fleet%2Fgitops/repository/commits",
            &dev,
            Some(body),
        )
        .await;
    assert_eq!(r.status, 403);
}

// ---- deploy keys ----

fn ssh_key(kind: &str, blob_kind: &str) -> String {
    let mut blob = Vec::new();
    let mut push = |bytes: &[u8]| {
        blob.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        blob.extend_from_slice(bytes);
    };
    push(blob_kind.as_bytes());
    push(&[7u8; 32]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&blob);
    format!("{kind} {encoded} flux@cluster")
}

/// A distinct, valid public key line.
fn ssh_key_with_comment(comment: &str) -> String {
    crate::keys::ssh::generate(crate::keys::ssh::Algorithm::Ed25519, comment)
        .expect("generates")
        .public_openssh
}

#[tokio::test]
async fn deploy_keys_mask_comments_and_honour_the_maximum_lifetime() {
    let w = world();
    let url = "/api/v4/projects/fleet%2Fgitops/deploy_keys";
    let key = ssh_key("ssh-ed25519", "ssh-ed25519");
    let r = w
        .post(
            url,
            json!({"title": "flux", "key": key, "expires_at": "2999-01-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let shown = r.body["key"].as_str().expect("key");
    assert!(!shown.contains("flux@cluster"), "{shown}");
    assert!(
        shown.ends_with(" Administrator (127.0.0.1:9999)"),
        "{shown}"
    );
    let past = w
        .post(
            url,
            json!({"title": "old", "key": ssh_key_with_comment("a"), "expires_at": "2001-01-01"}),
        )
        .await;
    assert_eq!(
        (past.status, past.body),
        (400, json!({"message": {"key": ["has expired"]}}))
    );
    w.emu.set_settings(InstanceSettings {
        max_ssh_key_lifetime: Some(30),
    });
    let long = w
        .post(
            url,
            json!({"title": "long", "key": ssh_key_with_comment("b"), "expires_at": "2999-01-01"}),
        )
        .await;
    assert_eq!(long.status, 400);
    let message = long.body["message"]["key"][0].as_str().expect("message");
    assert!(
        message.starts_with("has an invalid expiration date"),
        "{message}"
    );
    let none = w
        .post(
            url,
            json!({"title": "none", "key": ssh_key_with_comment("c")}),
        )
        .await;
    assert_eq!(none.status, 400, "{}", none.body);
    let within = w
        .post(
            url,
            json!({"title": "ok", "key": ssh_key_with_comment("d"), "expires_at": date_after_days(10)}),
        )
        .await;
    assert_eq!(within.status, 201, "{}", within.body);
}

#[tokio::test]
async fn deploy_keys_validate_and_reject_duplicates() {
    let w = world();
    let url = "/api/v4/projects/fleet%2Fgitops/deploy_keys";
    let key = ssh_key("ssh-ed25519", "ssh-ed25519");
    let r = w
        .post(
            url,
            json!({"title": "flux", "key": key, "can_push": false, "expires_at": "2999-01-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body["fingerprint_sha256"]
            .as_str()
            .expect("fp")
            .starts_with("SHA256:")
    );
    assert_eq!(
        r.body["fingerprint"]
            .as_str()
            .expect("md5")
            .split(':')
            .count(),
        16
    );
    assert_eq!(r.body["expires_at"], "2999-01-01T00:00:00.000Z");
    assert_eq!(r.body["can_push"], false);
    let same = w
        .post(url, json!({"title": "again", "key": format!(" {key} ")}))
        .await;
    assert_eq!(
        (same.status, same.body["id"].clone()),
        (201, r.body["id"].clone()),
        "exact repeat returns the existing key"
    );
    let recommented = key.replace("flux@cluster", "other@host");
    let dup = w
        .post(url, json!({"title": "again", "key": recommented}))
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(
        dup.body,
        json!({"message": {"deploy_key.fingerprint_sha256": ["has already been taken"]}})
    );
    for bad in [
        ssh_key("ssh-rsa", "ssh-ed25519"),
        "ssh-ed25519 !!!".to_owned(),
        "hello".to_owned(),
    ] {
        let r = w.post(url, json!({"title": "bad", "key": bad})).await;
        assert_eq!(
            (r.status, r.body),
            (400, json!({"message": {"key": ["is invalid"]}}))
        );
    }
    let id = r.body["id"].as_u64().expect("id");
    let put = w
        .call(
            "PUT",
            &format!("{url}/{id}"),
            &w.root,
            Some(json!({"title": "renamed", "can_push": true, "key": "x"})),
        )
        .await;
    assert_eq!(
        (
            put.body["title"].clone(),
            put.body["can_push"].clone(),
            put.body["key"].clone()
        ),
        (json!("renamed"), json!(true), r.body["key"].clone()),
        "the key itself never changes"
    );
    assert_eq!(w.get(url).await.body.as_array().map(Vec::len), Some(1));
    assert_eq!(
        w.call("DELETE", &format!("{url}/{id}"), &w.root, None)
            .await
            .status,
        204
    );
    let gone = w.get(&format!("{url}/{id}")).await;
    assert_eq!(
        (gone.status, gone.body),
        (404, json!({"message": "404 Deploy Key Not Found"}))
    );
}

// ---- CI variables ----

#[tokio::test]
async fn variables_masking_hiding_and_scopes() {
    let w = world();
    let url = "/api/v4/projects/fleet%2Fgitops/variables";
    let short = w
        .post(url, json!({"key": "K", "value": "short", "masked": true}))
        .await;
    assert_eq!(
        (short.status, short.body),
        (400, json!({"message": {"value": ["is invalid"]}}))
    );
    let spaced = w
        .post(
            url,
            json!({"key": "K", "value": "has white space", "masked": true}),
        )
        .await;
    assert_eq!(spaced.status, 400);
    let bad_key = w.post(url, json!({"key": "no-dash", "value": "v"})).await;
    assert_eq!(bad_key.status, 400);
    let hidden = w
        .post(url, json!({"key": "COSIGN_PASSWORD", "value": "s3cretpassw0rd", "masked_and_hidden": true, "protected": true}))
        .await;
    assert_eq!(hidden.status, 201, "{}", hidden.body);
    assert_eq!(
        (hidden.body["masked"].clone(), hidden.body["hidden"].clone()),
        (json!(true), json!(true))
    );
    let got = w.get(&format!("{url}/COSIGN_PASSWORD")).await;
    assert_eq!(got.body["value"], Value::Null);
    assert_eq!(w.get(url).await.body[0]["value"], Value::Null);
    assert!(!w.emu.snapshot().to_string().contains("s3cretpassw0rd"));
    let put = w
        .call(
            "PUT",
            &format!("{url}/COSIGN_PASSWORD"),
            &w.root,
            Some(json!({"value": "an0therpassword", "hidden": false})),
        )
        .await;
    assert_eq!((put.status, put.body["hidden"].clone()), (200, json!(true)));
    for scope in ["production", "staging"] {
        let r = w
            .post(
                url,
                json!({"key": "DEPLOY", "value": scope, "environment_scope": scope}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let dup = w
        .post(
            url,
            json!({"key": "DEPLOY", "value": "x", "environment_scope": "staging"}),
        )
        .await;
    assert_eq!(
        (dup.status, dup.body),
        (
            400,
            json!({"message": {"key": ["(DEPLOY) has already been taken"]}})
        )
    );
    let ambiguous = json!({"message": "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"});
    for method in ["GET", "PUT", "DELETE"] {
        let r = w
            .call(
                method,
                &format!("{url}/DEPLOY"),
                &w.root,
                Some(json!({"value": "y"})),
            )
            .await;
        assert_eq!((r.status, r.body), (409, ambiguous.clone()), "{method}");
    }
    let one = w
        .get(&format!(
            "{url}/DEPLOY?filter%5Benvironment_scope%5D=staging"
        ))
        .await;
    assert_eq!(
        (one.status, one.body["value"].clone()),
        (200, json!("staging"))
    );
    let put = w
        .call(
            "PUT",
            &format!("{url}/DEPLOY"),
            &w.root,
            Some(json!({"value": "z", "filter": {"environment_scope": "production"}})),
        )
        .await;
    assert_eq!(put.body["value"], "z");
    let del = w
        .call(
            "DELETE",
            &format!("{url}/DEPLOY?filter[environment_scope]=staging"),
            &w.root,
            None,
        )
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(
        w.get(&format!("{url}/DEPLOY")).await.body["environment_scope"],
        "production"
    );
    let missing = w.get(&format!("{url}/NOPE")).await;
    assert_eq!(
        (missing.status, missing.body),
        (404, json!({"message": "404 Variable Not Found"}))
    );
    let defaults = w.post(url, json!({"key": "PLAIN", "value": "v"})).await;
    assert_eq!(
        (
            defaults.body["environment_scope"].clone(),
            defaults.body["variable_type"].clone()
        ),
        (json!("*"), json!("env_var"))
    );
}

// ---- project access tokens ----

#[tokio::test]
async fn access_tokens_authenticate_as_project_bots_and_rotate() {
    let w = world();
    let url = "/api/v4/projects/fleet%2Fagents/access_tokens";
    let r = w.post(url, json!({"name": "ci", "scopes": ["api"], "access_level": 40, "expires_at": "2999-12-31"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("glpat-"));
    let id = r.body["id"].as_u64().expect("id");
    assert_eq!(
        w.call(
            "GET",
            "/api/v4/projects/fleet%2Fagents/cluster_agents",
            &token,
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        w.call("GET", "/api/v4/projects/fleet%2Fgitops", &token, None)
            .await
            .status,
        404
    );
    let me = w.call("GET", "/api/v4/user", &token, None).await;
    assert_eq!(me.body["bot"], true);
    let got = w.get(&format!("{url}/{id}")).await;
    assert!(got.body.get("token").is_none());
    let rotated = w
        .post(
            &format!("{url}/{id}/rotate"),
            json!({"expires_at": "2999-06-01"}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_token = rotated.body["token"]
        .as_str()
        .expect("new token")
        .to_owned();
    assert_ne!(new_token, token);
    assert_eq!(
        w.call("GET", "/api/v4/projects/fleet%2Fagents", &token, None)
            .await
            .status,
        401
    );
    assert_eq!(
        w.call("GET", "/api/v4/projects/fleet%2Fagents", &new_token, None)
            .await
            .status,
        200
    );
    assert_eq!(w.get(&format!("{url}/{id}")).await.body["revoked"], true);
    let again = w.post(&format!("{url}/{id}/rotate"), json!({})).await;
    assert_eq!(
        (again.status, again.body),
        (
            400,
            json!({"message": "400 Bad request - token already revoked"})
        )
    );
    let unknown = w.get(&format!("{url}/999")).await;
    assert_eq!(
        (unknown.status, unknown.body),
        (
            404,
            json!({"message": "404 project Access Token Not Found"})
        )
    );
    let new_id = rotated.body["id"].as_u64().expect("id");
    assert_eq!(
        w.call("DELETE", &format!("{url}/{new_id}"), &w.root, None)
            .await
            .status,
        204
    );
    assert_eq!(
        w.call("GET", "/api/v4/projects/fleet%2Fagents", &new_token, None)
            .await
            .status,
        401
    );
    assert!(!w.emu.persisted().to_string().contains(&new_token));
}

#[tokio::test]
async fn access_token_levels_and_scopes_are_enforced() {
    let w = world();
    let url = "/api/v4/projects/fleet%2Fagents/access_tokens";
    let maintainer = w.emu.create_user_with_token("m", 40);
    let owner_token = w
        .call(
            "POST",
            url,
            &maintainer,
            Some(json!({"name": "o", "scopes": ["api"], "access_level": 50})),
        )
        .await;
    assert_eq!(owner_token.status, 400);
    let dev = w.emu.create_user_with_token("d", 30);
    let denied = w
        .call(
            "POST",
            url,
            &dev,
            Some(json!({"name": "x", "scopes": ["api"]})),
        )
        .await;
    assert_eq!(
        denied.status, 400,
        "GitLab's CreateService refuses with 400"
    );
    assert_eq!(
        w.call("GET", url, &dev, None).await.status,
        401,
        "and the list with 401"
    );
    let reader = w
        .post(
            url,
            json!({"name": "r", "scopes": ["read_api"], "access_level": 40}),
        )
        .await;
    let reader = reader.body["token"].as_str().expect("token").to_owned();
    let agents = "/api/v4/projects/fleet%2Fagents/cluster_agents";
    assert_eq!(w.call("GET", agents, &reader, None).await.status, 200);
    let write = w
        .call("POST", agents, &reader, Some(json!({"name": "x"})))
        .await;
    assert_eq!(
        (write.status, write.body["error"].clone()),
        (403, json!("insufficient_scope"))
    );
}

// ---- persistence ----

#[tokio::test]
async fn persisted_state_round_trips_through_restore() {
    let w = world();
    let agent = w.create_agent("keep").await;
    let tokens = format!("/api/v4/projects/fleet%2Fagents/cluster_agents/{agent}/tokens");
    let value = w.post(&tokens, json!({"name": "t"})).await.body["token"]
        .as_str()
        .expect("token")
        .to_owned();
    w.commit(json!([{"action": "create", "file_path": "x.yaml", "content": "x: 1\n"}]))
        .await;
    let user = w.emu.create_user_with_token("persisted-user", 40);
    let restored = GitlabEmulator::restore(
        GitlabConfig {
            base_url: BASE.to_owned(),
            kas_url: "ws://k/".to_owned(),
        },
        w.emu.persisted(),
    )
    .expect("restore");
    assert_eq!(restored.snapshot(), w.emu.snapshot());
    assert_eq!(
        restored.root_token(),
        w.root,
        "the printed root token survives restarts"
    );
    let w2 = World {
        app: restored.router(),
        root: restored.root_token(),
        emu: restored,
    };
    assert_eq!(
        w2.call("GET", "/api/v4/user", &user, None).await.body["username"],
        "persisted-user"
    );
    assert_eq!(
        w2.call("GET", "/api/v4/user", &w.root, None).await.status,
        200
    );
    assert_eq!(w2.get(&tokens).await.body.as_array().map(Vec::len), Some(1));
    assert!(w2.emu.mark_agent_token_used(&value));
    assert_eq!(w2.raw_file("x.yaml").await.raw, b"x: 1\n");
    assert_eq!(
        w2.create_agent("next").await,
        agent + 1,
        "id counters survive"
    );
    assert!(
        GitlabEmulator::restore(
            GitlabConfig {
                base_url: BASE.into(),
                kas_url: String::new()
            },
            json!({"users": 3})
        )
        .is_err()
    );
}

#[tokio::test]
async fn seeded_world_matches_the_sandbox_contract() {
    let w = world();
    let snap = w.emu.snapshot();
    let projects: Vec<&str> = snap["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .filter_map(|p| p["path_with_namespace"].as_str())
        .collect();
    assert_eq!(projects, ["fleet/agents", "fleet/gitops"]);
    for p in snap["projects"].as_array().expect("projects") {
        assert!(p["files"]["main"]["README.md"].is_string());
        assert_eq!(p["commits"].as_array().map(Vec::len), Some(1));
    }
    let version = w.emu.version();
    w.create_agent("v").await;
    assert!(w.emu.version() > version);
}

#[tokio::test]
async fn expired_and_revoked_personal_tokens_are_401() {
    let w = world();
    let expired = w.emu.create_user_with_token("old", 40);
    let revoked = w.emu.create_user_with_token("gone", 40);
    let (expired_hash, revoked_hash) = (
        super::state::hash_token(&expired),
        super::state::hash_token(&revoked),
    );
    w.emu.mutate(|world| {
        for t in &mut world.personal_tokens {
            if t.token_hash == expired_hash {
                t.expires_at = Some("2000-01-01".to_owned());
            }
            if t.token_hash == revoked_hash {
                t.revoked = true;
            }
        }
    });
    for token in [&expired, &revoked] {
        let r = w.call("GET", "/api/v4/user", token, None).await;
        assert_eq!(
            (r.status, r.body),
            (401, json!({"message": "401 Unauthorized"}))
        );
    }
}

#[tokio::test]
async fn serves_over_a_real_listener() {
    let w = world();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(axum::serve(listener, w.app.clone()).into_future());
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /api/v4/projects/fleet%2Fagents HTTP/1.1\r\nHost: x\r\nPRIVATE-TOKEN: {}\r\nConnection: close\r\n\r\n",
        w.root
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"path_with_namespace\":\"fleet/agents\""));
    assert!(
        response
            .to_ascii_lowercase()
            .contains("ratelimit-remaining")
    );
    server.abort();
}

#[tokio::test]
async fn empty_and_out_of_range_pages() {
    let w = world();
    let empty = w
        .get("/api/v4/projects/fleet%2Fagents/cluster_agents")
        .await;
    assert_eq!(empty.body, json!([]));
    assert_eq!(
        (empty.header("x-total"), empty.header("x-total-pages")),
        ("0", "1")
    );
    let beyond = w
        .get("/api/v4/projects/fleet%2Fagents/repository/commits?page=5")
        .await;
    assert_eq!(beyond.body, json!([]));
    assert_eq!(
        (beyond.header("x-prev-page"), beyond.header("x-next-page")),
        ("", "")
    );
    let bad = w
        .get("/api/v4/projects/fleet%2Fagents/cluster_agents?page=abc")
        .await;
    assert_eq!(
        (bad.status, bad.body),
        (400, json!({"error": "page is invalid"}))
    );
}

mod pagination_props {
    use axum::http::Uri;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::sandbox::gitlab::http::{Params, paginate};

    fn page(total: usize, page: usize, per_page: usize) -> (Vec<Value>, String, String) {
        let items: Vec<Value> = (0..total).map(|i| json!(i)).collect();
        let query = Params::from_pairs(vec![
            ("page".to_owned(), page.to_string()),
            ("per_page".to_owned(), per_page.to_string()),
        ]);
        let uri: Uri = "/api/v4/x?page=1".parse().unwrap_or_default();
        let response =
            paginate(items, &query, &uri, "http://h").unwrap_or_else(|e| panic!("{e:?}"));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (next, pages) = (header("x-next-page"), header("x-total-pages"));
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            usize::MAX,
        ))
        .and_then(Result::ok)
        .unwrap_or_default();
        let items = serde_json::from_slice::<Vec<Value>>(&body).unwrap_or_default();
        (items, next, pages)
    }

    proptest! {
        /// Following x-next-page from page 1 visits every item exactly once, in order.
        #[test]
        fn walking_next_pages_yields_every_item_once(total in 0usize..250, per_page in 1usize..150) {
            let mut seen = Vec::new();
            let mut current = 1;
            loop {
                let (items, next, pages) = page(total, current, per_page);
                let clamped = per_page.min(100);
                prop_assert_eq!(pages, total.div_ceil(clamped).max(1).to_string());
                seen.extend(items);
                match next.parse::<usize>() {
                    Ok(n) => current = n,
                    Err(_) => break,
                }
            }
            let expected: Vec<Value> = (0..total).map(|i| json!(i)).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}

#[tokio::test]
async fn terraform_state_answers_with_gitlabs_codes_and_honours_the_lock() {
    let w = world();
    let url = "/api/v4/projects/fleet%2Fgitops/terraform/state/prod";
    assert_eq!(w.get(url).await.status, 404, "no state yet");
    let lock = |id: &str| {
        json!({"ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": "a@b",
               "Version": "1.11.4", "Created": "2026-12-03T00:00:00Z", "Path": ""})
    };
    let taken = w.post(&format!("{url}/lock"), lock("one")).await;
    assert_eq!((taken.status, &taken.body["ID"]), (200, &json!("one")));
    assert_eq!(taken.body["Who"], "root", "the GitLab user holds it");
    let refused = w.post(&format!("{url}/lock"), lock("two")).await;
    assert_eq!((refused.status, &refused.body["ID"]), (409, &json!("one")));
    assert_eq!(w.get(url).await.status, 204, "locked, no content yet");
    let state = json!({"version": 4, "serial": 1, "resources": []});
    let wrong = w.post(&format!("{url}?ID=two"), state.clone()).await;
    assert_eq!(wrong.status, 409, "only the holder writes");
    let right = w.post(&format!("{url}?ID=one"), state.clone()).await;
    assert_eq!(right.status, 200);
    assert_eq!(w.get(url).await.body, state);
    let unlock_wrong = w
        .call("DELETE", &format!("{url}/lock?ID=two"), &w.root, None)
        .await;
    assert_eq!(unlock_wrong.status, 409);
    let unlock = w
        .call("DELETE", &format!("{url}/lock"), &w.root, Some(lock("one")))
        .await;
    assert_eq!(unlock.status, 200);
    let missing = w.post(&format!("{url}/lock"), json!({"ID": "x"})).await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(w.call("DELETE", url, &w.root, None).await.status, 200);
    assert_eq!(w.get(url).await.status, 404);
}

// ---- GraphQL ----

impl World {
    async fn graphql(&self, token: &str, query: &str, variables: Value) -> Resp {
        let body = json!({ "query": query, "variables": variables });
        self.call("POST", "/api/graphql", token, Some(body)).await
    }
}

#[tokio::test]
async fn graphql_serves_agents_with_their_active_tokens_in_pages() {
    let w = world();
    let mut agents = Vec::new();
    for name in ["b", "a", "c"] {
        agents.push((name, w.create_agent(name).await));
    }
    let tokens =
        |agent: u64| format!("/api/v4/projects/fleet%2Fagents/cluster_agents/{agent}/tokens");
    let (_, b) = agents[0];
    let first = w.post(&tokens(b), json!({"name": "old"})).await;
    w.post(&tokens(b), json!({"name": "new", "description": "d"}))
        .await;
    let revoked = w.post(&tokens(agents[1].1), json!({"name": "gone"})).await;
    let revoked_id = revoked.body["id"].as_u64().expect("id");
    w.call(
        "DELETE",
        &format!("{}/{revoked_id}", tokens(agents[1].1)),
        &w.root,
        None,
    )
    .await;
    assert!(
        w.emu
            .mark_agent_token_used(first.body["token"].as_str().expect("value"))
    );

    let query = "query($path: ID!, $after: String) {
      project(fullPath: $path) {
        clusterAgents(first: 2, after: $after) {
          count
          pageInfo { hasNextPage endCursor }
          nodes { __typename id name ...Tokens }
        }
      }
    }
    fragment Tokens on ClusterAgent {
      active: tokens { nodes { id name description status lastUsedAt createdAt } }
    }";
    let page = w
        .graphql(&w.root, query, json!({ "path": "fleet/agents" }))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let connection = &page.body["data"]["project"]["clusterAgents"];
    assert_eq!(connection["count"], 3);
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
    let names: Vec<&str> = connection["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["a", "b"], "ordered by name");
    let b_node = &connection["nodes"][1];
    assert_eq!(b_node["__typename"], "ClusterAgent");
    assert_eq!(b_node["id"], format!("gid://gitlab/Clusters::Agent/{b}"));
    let b_tokens = b_node["active"]["nodes"].as_array().expect("tokens");
    // Most recently used first; ids are global ids; statuses GitLab's enum.
    assert_eq!(b_tokens.len(), 2);
    assert_eq!(
        b_tokens[0]["id"],
        format!("gid://gitlab/Clusters::AgentToken/{}", first.body["id"])
    );
    assert!(b_tokens[0]["lastUsedAt"].is_string());
    assert_eq!(b_tokens[1]["name"], "new");
    assert_eq!(b_tokens[1]["description"], "d");
    assert_eq!(b_tokens[1]["status"], "ACTIVE");
    assert!(b_tokens[1]["lastUsedAt"].is_null());
    assert_eq!(
        connection["nodes"][0]["active"]["nodes"],
        json!([]),
        "revoked tokens are not listed"
    );

    let cursor = connection["pageInfo"]["endCursor"].clone();
    let next = w
        .graphql(
            &w.root,
            query,
            json!({ "path": "fleet/agents", "after": cursor }),
        )
        .await;
    let connection = &next.body["data"]["project"]["clusterAgents"];
    assert_eq!(connection["nodes"][0]["name"], "c");
    assert_eq!(connection["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn graphql_refuses_as_gitlab_does() {
    let w = world();
    w.create_agent("a").await;
    let agents = "{ project(fullPath: \"fleet/agents\") { clusterAgents { nodes { name } } } }";

    // A field the schema lacks fails the whole query.
    let r = w
        .graphql(
            &w.root,
            "{ project(fullPath: \"fleet/agents\") { clusterAgents { nodes { nome } } } }",
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("data").is_none(), "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["message"],
        "Field 'nome' doesn't exist on type 'ClusterAgent'"
    );
    assert_eq!(r.body["errors"][0]["extensions"]["code"], "undefinedField");
    let r = w.graphql(&w.root, "{ project(fullPath: ", json!({})).await;
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Parse error")),
        "{}",
        r.body
    );

    // Projects the caller cannot see are null; below Developer, agents are not listed.
    let outsider = w.emu.create_user_with_token("outsider", 0);
    let r = w.graphql(&outsider, agents, json!({})).await;
    assert_eq!(r.body["data"]["project"], Value::Null);
    let r = w.graphql("", agents, json!({})).await;
    assert_eq!(r.body["data"]["project"], Value::Null, "anonymous");
    let reporter = w.emu.create_user_with_token("reporter", 20);
    let r = w.graphql(&reporter, agents, json!({})).await;
    assert_eq!(
        r.body["data"]["project"]["clusterAgents"]["nodes"],
        json!([])
    );
    let developer = w.emu.create_user_with_token("dev", 30);
    let r = w.graphql(&developer, agents, json!({})).await;
    assert_eq!(
        r.body["data"]["project"]["clusterAgents"]["nodes"],
        json!([{ "name": "a" }])
    );

    // A bad token is 401; mutations are not served.
    assert_eq!(w.graphql("glpat-nope", agents, json!({})).await.status, 401);
    let r = w.graphql(&w.root, "mutation { x }", json!({})).await;
    assert!(r.body["errors"][0]["message"].is_string(), "{}", r.body);
}
