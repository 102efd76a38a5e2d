//! The client against the in-process sandbox's GitLab emulator (loopback only): every
//! operation, pagination and request counts, single-flight sharing and invalidation, retries
//! under injected faults, safe creates, error texts, cancellation and secret hygiene.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::gitlab::settings::GitlabSettings;
use crate::sandbox::faults::{Fault, FaultRule, FaultSpec, When};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::secret::Secret;

const PROJECT: &str = "fleet/agents";

/// Tracing caches per-callsite interest process-wide: while the log test installs its
/// thread-local subscriber, no other test here may be emitting through the client's callsites,
/// or their interest can be cached as "never" mid-test. Client tests share this lock; the log
/// test takes it exclusively.
static LOG_CAPTURE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
const AGENTS_ROUTE: &str = "GET /api/v4/projects/{id}/cluster_agents";
const TOKENS_POST: &str = "POST /api/v4/projects/{id}/cluster_agents/{agent_id}/tokens";
const AGENTS_POST: &str = "POST /api/v4/projects/{id}/cluster_agents";

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts")
}

fn client_with(sb: &Sandbox, token: &str, max_retries: u32) -> (GitlabClient, CancellationToken) {
    let settings = GitlabSettings {
        base_url: sb.info.gitlab_url.clone(),
        token: Some(Secret::new(token)),
        ca_file: None,
        max_retries,
    };
    let stop = CancellationToken::new();
    let client = GitlabClient::new(&settings, stop.clone()).expect("client builds");
    (client, stop)
}

fn client(sb: &Sandbox) -> GitlabClient {
    client_with(sb, &sb.info.gitlab_token, 5).0
}

fn requests(sb: &Sandbox, key: &str) -> u64 {
    sb.stats.snapshot()["gitlab"][key].as_u64().unwrap_or(0)
}

/// Injected faults whose "METHOD path -> fault" key contains `needle`.
fn faults(sb: &Sandbox, needle: &str) -> u64 {
    let snap = sb.stats.snapshot();
    snap["faults"]["gitlab"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.contains(needle))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn rule(method: &str, path: &str, times: Option<u64>, fault: Fault) -> FaultRule {
    FaultRule {
        emulator: "gitlab".into(),
        method: method.into(),
        path: path.into(),
        probability: 1.0,
        times,
        when: When::Before,
        fault,
    }
}

fn status(status: u16, retry_after: Option<u64>) -> Fault {
    Fault::Status {
        status,
        retry_after,
    }
}

fn inject(sb: &Sandbox, rules: Vec<FaultRule>) {
    sb.faults.replace(FaultSpec { rules });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_end_to_end() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let meta = gl.metadata().await.expect("metadata");
    assert!(
        meta.kas_enabled && meta.kas_external_url.is_some(),
        "{meta:?}"
    );
    let project = gl.project(PROJECT).await.expect("project");
    assert_eq!(
        (
            project.path_with_namespace.as_str(),
            project.default_branch.as_str()
        ),
        (PROJECT, "main")
    );
    assert_eq!(project.access_level, Some(50));

    let agent = gl.create_agent(PROJECT, "prod").await.expect("agent");
    assert_eq!(agent.config_project_path, PROJECT);
    assert_eq!(
        gl.agent_by_name(PROJECT, "prod").await.expect("list"),
        Some(agent.clone())
    );
    assert_eq!(
        gl.agent_by_id(PROJECT, agent.id)
            .await
            .expect("list")
            .map(|a| a.name),
        Some("prod".into())
    );

    let (token, secret) = gl
        .create_agent_token(PROJECT, agent.id, "tf", "managed by terraform")
        .await
        .expect("token");
    assert!(secret.expose().starts_with("glagent-"));
    assert_eq!(
        (token.status.as_str(), token.description.as_deref()),
        ("active", Some("managed by terraform"))
    );
    assert_eq!(
        gl.agent_tokens(PROJECT, agent.id)
            .await
            .expect("tokens")
            .len(),
        1
    );
    let one = gl
        .agent_token(PROJECT, agent.id, token.id)
        .await
        .expect("get")
        .expect("active");
    assert_eq!(one.last_used_at, None);
    assert!(sb.gitlab.mark_agent_token_used(secret.expose()));
    let used = gl
        .agent_token(PROJECT, agent.id, token.id)
        .await
        .expect("get")
        .expect("active");
    assert!(used.last_used_at.is_some());

    gl.revoke_agent_token(PROJECT, agent.id, token.id)
        .await
        .expect("revoke");
    gl.revoke_agent_token(PROJECT, agent.id, token.id)
        .await
        .expect("revoke twice");
    assert_eq!(
        gl.agent_token(PROJECT, agent.id, token.id)
            .await
            .expect("get"),
        None
    );
    assert!(
        gl.agent_tokens(PROJECT, agent.id)
            .await
            .expect("tokens")
            .is_empty()
    );

    gl.delete_agent(PROJECT, agent.id).await.expect("delete");
    gl.delete_agent(PROJECT, agent.id)
        .await
        .expect("already gone is fine");
    assert_eq!(gl.agent_by_name(PROJECT, "prod").await.expect("list"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_share_one_request_and_invalidate_on_writes() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let writer = client(&sb);
    for i in 0..150 {
        writer
            .create_agent(PROJECT, &format!("a{i:03}"))
            .await
            .expect("create");
    }
    sb.stats.reset();
    let gl = client(&sb);
    let calls = (0..10).map(|_| {
        let gl = gl.clone();
        tokio::spawn(async move { gl.agents(PROJECT).await })
    });
    for call in futures_util::future::join_all(calls).await {
        assert_eq!(call.expect("joined").expect("listed").len(), 150);
    }
    assert_eq!(
        requests(&sb, AGENTS_ROUTE),
        2,
        "one shared list, two pages of 100"
    );
    assert!(
        gl.agent_by_name(PROJECT, "a149")
            .await
            .expect("cached")
            .is_some()
    );
    assert_eq!(requests(&sb, AGENTS_ROUTE), 2, "served from the cache");

    let project_id = gl.project(PROJECT).await.expect("project").id.to_string();
    let extra = gl
        .create_agent(&project_id, "extra")
        .await
        .expect("create by id");
    assert_eq!(
        gl.agents(PROJECT).await.expect("list").len(),
        151,
        "path key invalidated by an id write"
    );
    assert_eq!(requests(&sb, AGENTS_ROUTE), 4);
    gl.delete_agent(PROJECT, extra.id).await.expect("delete");
    assert_eq!(gl.agents(PROJECT).await.expect("list").len(), 150);
    assert_eq!(requests(&sb, AGENTS_ROUTE), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after_then_succeed() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    inject(
        &sb,
        vec![rule(
            "GET",
            "/api/v4/projects/*/cluster_agents",
            Some(1),
            status(429, Some(1)),
        )],
    );
    let started = Instant::now();
    gl.agents(PROJECT).await.expect("succeeds after the 429");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((faults(&sb, "-> 429"), requests(&sb, AGENTS_ROUTE)), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_and_connection_reset_then_succeed() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let path = "/api/v4/projects/*/cluster_agents";
    inject(
        &sb,
        vec![
            rule("GET", path, Some(1), status(503, None)),
            rule("GET", path, Some(1), Fault::Reset),
        ],
    );
    gl.agents(PROJECT)
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(faults(&sb, "-> 503"), 1);
    assert_eq!(faults(&sb, "-> reset"), 1);
    assert_eq!(requests(&sb, AGENTS_ROUTE), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_retries() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let (gl, _stop) = client_with(&sb, &sb.info.gitlab_token, 2);
    inject(
        &sb,
        vec![rule(
            "GET",
            "/api/v4/projects/*/cluster_agents",
            None,
            status(503, None),
        )],
    );
    let err = gl.agents(PROJECT).await.expect_err("keeps failing");
    assert!(
        matches!(
            err,
            GitlabError::Server {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(faults(&sb, "-> 503"), 3);
    assert!(err.detail().contains("503"), "{}", err.detail());

    inject(
        &sb,
        vec![rule("GET", "/api/v4/metadata", None, status(429, Some(0)))],
    );
    let err = gl.metadata().await.expect_err("rate limited");
    assert!(
        matches!(err, GitlabError::RateLimited { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.summary(), "GitLab rate limit exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_creation_is_never_duplicated_after_ambiguous_failures() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let agent = gl.create_agent(PROJECT, "edge").await.expect("agent");
    let tokens = "/api/v4/projects/*/cluster_agents/*/tokens";
    for fault in [status(500, None), Fault::Reset, status(503, None)] {
        sb.stats.reset();
        inject(&sb, vec![rule("POST", tokens, Some(1), fault.clone())]);
        let (token, _secret) = gl
            .create_agent_token(PROJECT, agent.id, "tf", "")
            .await
            .expect("created once");
        assert_eq!(
            requests(&sb, TOKENS_POST),
            1,
            "{fault:?}: exactly one POST reached GitLab"
        );
        let active = client(&sb)
            .agent_tokens(PROJECT, agent.id)
            .await
            .expect("list");
        assert_eq!(active.len(), 1, "{fault:?}");
        gl.revoke_agent_token(PROJECT, agent.id, token.id)
            .await
            .expect("revoke");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsure_token_creation_fails_instead_of_posting_again() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let agent = gl.create_agent(PROJECT, "edge").await.expect("agent");
    assert!(
        gl.agent_tokens(PROJECT, agent.id)
            .await
            .expect("warm")
            .is_empty()
    );
    // Our POST fails ambiguously; the re-check list is slow, and meanwhile a token of the same
    // name appears, exactly as if our create had happened and only its answer was lost.
    inject(
        &sb,
        vec![
            rule(
                "POST",
                "/api/v4/projects/*/tokens",
                Some(1),
                status(500, None),
            ),
            rule(
                "GET",
                "/api/v4/projects/*/tokens",
                Some(1),
                Fault::Latency { latency_ms: 600 },
            ),
        ],
    );
    let ours = tokio::spawn({
        let gl = gl.clone();
        async move { gl.create_agent_token(PROJECT, agent.id, "tf", "").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (other, _) = client(&sb)
        .create_agent_token(PROJECT, agent.id, "tf", "")
        .await
        .expect("the look-alike");
    let err = ours.await.expect("joined").expect_err("cannot be sure");
    assert!(matches!(err, GitlabError::Unconfirmed { .. }), "{err:?}");
    assert!(
        err.detail().contains(&format!("Revoke token {}", other.id)),
        "{}",
        err.detail()
    );
    assert_eq!(requests(&sb, TOKENS_POST), 1, "only the look-alike's POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_creation_settles_lost_answers_but_never_adopts_a_taken_name() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    client(&sb)
        .create_agent(PROJECT, "prod")
        .await
        .expect("create");
    // A later create of that name (fresh client, cold cache) is the conflict: whether an
    // existing agent may be taken over is the caller's decision, not the client's.
    let taken = client(&sb)
        .create_agent(PROJECT, "prod")
        .await
        .expect_err("taken");
    assert!(taken.is_conflict(), "{taken:?}");
    // A create whose answer was lost (502) is settled by looking the name up.
    inject(
        &sb,
        vec![rule(
            "POST",
            "/api/v4/projects/*/cluster_agents",
            Some(1),
            status(502, None),
        )],
    );
    let gl = client(&sb);
    let second = gl
        .create_agent(PROJECT, "stage")
        .await
        .expect("create after 502");
    assert_eq!(requests(&sb, AGENTS_POST), 3);
    let all = gl.agents(PROJECT).await.expect("list");
    assert_eq!(all.iter().filter(|a| a.name == "stage").count(), 1);
    assert!(all.iter().any(|a| a.id == second.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_explain_themselves() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let (bogus, _stop) = client_with(&sb, "glpat-not-a-real-token", 0);
    let err = bogus.agents(PROJECT).await.expect_err("401");
    assert!(matches!(err, GitlabError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.detail(),
        format!(
            "GitLab at {} rejected the token (gitlab.token or GITLAB_TOKEN): it is missing, \
             expired or revoked.",
            sb.info.gitlab_url
        )
    );
    assert!(!format!("{err:?} {err} {}", err.detail()).contains("glpat-not-a-real-token"));

    let reporter = sb.gitlab.create_user_with_token("reporter", 20);
    let (gl, _stop) = client_with(&sb, &reporter, 0);
    let err = gl.create_agent(PROJECT, "prod").await.expect_err("403");
    assert!(
        err.detail().starts_with(
            "The token's user lacks the Maintainer role on fleet/agents, needed to create \
             cluster agents."
        ),
        "{}",
        err.detail()
    );
    let err = gl
        .agents(PROJECT)
        .await
        .expect_err("reporters cannot read agents");
    assert!(
        err.is_not_found() && err.detail().contains("Developer"),
        "{}",
        err.detail()
    );
    let err = client(&sb).project("fleet/agentz").await.expect_err("404");
    assert_eq!(
        err.detail(),
        "Project fleet/agentz does not exist, or the token's user cannot see it (GitLab \
         answers 404 for both)."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_token_ends_a_call_stuck_in_backoff() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let (gl, stop) = client_with(&sb, &sb.info.gitlab_token, 5);
    inject(
        &sb,
        vec![rule(
            "GET",
            "/api/v4/projects/*/cluster_agents",
            None,
            status(503, Some(30)),
        )],
    );
    let call = tokio::spawn({
        let gl = gl.clone();
        async move { gl.agents(PROJECT).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_at = Instant::now();
    stop.cancel();
    let result = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("ends promptly")
        .expect("joined");
    assert!(
        matches!(result, Err(GitlabError::Cancelled { .. })),
        "{result:?}"
    );
    assert!(cancelled_at.elapsed() < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_create_update_delete_with_optimistic_concurrency() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let path = ".gitlab/agents/prod/config.yaml";
    let commit = |action, content: Option<&str>, last: Option<&str>| CommitRequest {
        branch: "main".into(),
        message: "agent config".into(),
        author_name: Some("Terraform".into()),
        author_email: Some("tf@example.com".into()),
        actions: vec![CommitAction {
            action,
            path: path.into(),
            content: content.map(str::to_string),
            last_commit_id: last.map(str::to_string),
        }],
    };
    assert_eq!(gl.file(PROJECT, path, "main").await.expect("read"), None);
    let created = gl
        .commit(
            PROJECT,
            &commit(CommitActionKind::Create, Some("ci_access: {}\n"), None),
        )
        .await
        .expect("create");
    let file = gl
        .file(PROJECT, path, "main")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (file.content.as_slice(), file.last_commit_id.as_str()),
        (&b"ci_access: {}\n"[..], created.id.as_str())
    );
    let updated = gl
        .commit(
            PROJECT,
            &commit(
                CommitActionKind::Update,
                Some("observability: {}\n"),
                Some(&created.id),
            ),
        )
        .await
        .expect("update");
    assert!(updated.id.starts_with(&updated.short_id));
    let stale = gl
        .commit(
            PROJECT,
            &commit(CommitActionKind::Update, Some("x: 1\n"), Some(&created.id)),
        )
        .await
        .expect_err("stale last_commit_id");
    assert!(stale.is_conflict(), "{stale:?}");
    assert!(
        stale
            .detail()
            .contains("has changed since you started editing it")
    );
    gl.commit(
        PROJECT,
        &commit(CommitActionKind::Delete, None, Some(&updated.id)),
    )
    .await
    .expect("delete");
    assert_eq!(gl.file(PROJECT, path, "main").await.expect("read"), None);
    let err = gl
        .file("fleet/nope", path, "main")
        .await
        .expect_err("missing project");
    assert!(
        matches!(
            err,
            GitlabError::NotFound {
                what: Missing::Project(_),
                ..
            }
        ),
        "{err:?}"
    );
}

/// Collects formatted log output for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn debug_logs_show_routes_but_never_tokens() {
    let _exclusive = LOG_CAPTURE.write().await;
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests may have hit our callsites first, with no subscriber on their thread;
    // recompute their interest now that this thread has one.
    tracing::callsite::rebuild_interest_cache();
    let sb = sandbox().await;
    let gl = client(&sb);
    let agent = gl.create_agent(PROJECT, "logged").await.expect("agent");
    let (_, secret) = gl
        .create_agent_token(PROJECT, agent.id, "tf", "")
        .await
        .expect("token");
    let text =
        String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).to_string();
    assert!(
        text.contains("/projects/:id/cluster_agents/:agent_id/tokens"),
        "{text}"
    );
    assert!(text.contains("status=201"), "{text}");
    assert!(
        !text.contains(&sb.info.gitlab_token),
        "PRIVATE-TOKEN leaked"
    );
    assert!(!text.contains(secret.expose()), "agent token leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_adopted_not_duplicated() {
    let sb = sandbox().await;
    let gl = client(&sb);
    for (n, fault) in [Fault::Reset, status(500, None)].into_iter().enumerate() {
        let mut lost = rule("POST", "/api/v4/projects/*/cluster_agents", Some(1), fault);
        lost.when = When::After;
        inject(&sb, vec![lost]);
        let name = format!("lost-answer-{n}");
        let posts = || requests(&sb, "POST /api/v4/projects/{id}/cluster_agents");
        let before = posts();
        let agent = gl.create_agent(PROJECT, &name).await.expect("adopted");
        // One POST: its answer was lost, yet GitLab had made the agent, which the client
        // found and adopted instead of posting again.
        assert_eq!(posts() - before, 1);
        assert_eq!(agent.name, name);
        let same_name = gl
            .agents(PROJECT)
            .await
            .expect("list")
            .iter()
            .filter(|a| a.name == name)
            .count();
        assert_eq!(
            same_name, 1,
            "GitLab carried the create out once: no duplicate"
        );
        assert_eq!(faults(&sb, "after"), n as u64 + 1, "the answer was lost");
    }
}

/// A valid `ssh-ed25519` line built from `seed`, with its SHA-256 fingerprint.
fn ed25519_line(seed: u8, comment: &str) -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), &[seed; 32]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
    let fingerprint = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&blob))
    );
    (format!("ssh-ed25519 {b64} {comment}"), fingerprint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_keys_are_added_found_by_fingerprint_and_deleted() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let (line, fingerprint) = ed25519_line(1, "flux@prod");
    let new = deploy_keys::NewDeployKey {
        title: "flux prod",
        key: &line,
        fingerprint_sha256: &fingerprint,
        can_push: false,
        expires_at: "2030-01-01",
    };
    let added = gl.add_deploy_key("fleet/gitops", &new).await.expect("add");
    assert_eq!(
        added.fingerprint_sha256.as_deref(),
        Some(fingerprint.as_str())
    );
    assert!(!added.can_push);
    assert!(
        added
            .expires_at
            .as_deref()
            .is_some_and(|e| e.starts_with("2030-01-01")),
        "{added:?}"
    );
    let read = gl.deploy_key("fleet/gitops", added.id).await.expect("read");
    assert_eq!(read.as_ref().map(|k| k.id), Some(added.id));

    // An add whose answer was lost: one POST, and the key GitLab made is found, not added twice.
    let (line, fingerprint) = ed25519_line(2, "flux@stage");
    let mut lost = rule(
        "POST",
        "/api/v4/projects/*/deploy_keys",
        Some(1),
        Fault::Reset,
    );
    lost.when = When::After;
    inject(&sb, vec![lost]);
    let posts = || requests(&sb, "POST /api/v4/projects/{id}/deploy_keys");
    let before = posts();
    let second = gl
        .add_deploy_key(
            "fleet/gitops",
            &deploy_keys::NewDeployKey {
                key: &line,
                fingerprint_sha256: &fingerprint,
                ..new
            },
        )
        .await
        .expect("settled by fingerprint");
    assert_eq!(posts() - before, 1);
    let all = gl.deploy_keys("fleet/gitops").await.expect("list");
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|k| k.id == second.id));

    gl.delete_deploy_key("fleet/gitops", added.id)
        .await
        .expect("delete");
    gl.delete_deploy_key("fleet/gitops", added.id)
        .await
        .expect("deleting again is done");
    assert_eq!(
        gl.deploy_key("fleet/gitops", added.id).await.expect("read"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_are_written_per_scope_hidden_when_asked_and_settled_after_a_lost_answer() {
    const OWNER: variables::VariableOwner = variables::VariableOwner::Project(PROJECT);
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let gl = client(&sb);
    let value = Secret::new("c2VjcmV0LXZhbHVlLTEyMzQ1Njc4");
    let hidden = variables::VariableSpec {
        key: "COSIGN_PASSWORD",
        value: &value,
        environment_scope: "*",
        masked_and_hidden: true,
        protected: true,
        description: Some("cosign key"),
    };
    let created = gl.create_variable(OWNER, &hidden).await.expect("create");
    assert!(created.hidden && created.masked && created.protected);
    let read = gl
        .variable(OWNER, "COSIGN_PASSWORD", "*")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.value, None, "a hidden value never comes back");
    let newer = Secret::new("bmV3ZXItdmFsdWUtMTIzNDU2Nzg5");
    gl.update_variable(
        OWNER,
        &variables::VariableSpec {
            value: &newer,
            ..hidden.clone()
        },
    )
    .await
    .expect("update");

    // The same key in another scope is another variable.
    let public = Secret::new("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    let plain = variables::VariableSpec {
        key: "COSIGN_PASSWORD",
        value: &public,
        environment_scope: "production",
        masked_and_hidden: false,
        protected: false,
        description: None,
    };
    gl.create_variable(OWNER, &plain)
        .await
        .expect("second scope");
    let read = gl
        .variable(OWNER, "COSIGN_PASSWORD", "production")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        read.value.as_ref().map(Secret::expose),
        Some(public.expose())
    );

    // A create whose answer was lost: one POST, then the value is written to what GitLab made.
    let mut lost = rule(
        "POST",
        "/api/v4/projects/*/variables",
        Some(1),
        Fault::Reset,
    );
    lost.when = When::After;
    inject(&sb, vec![lost]);
    let posts = || requests(&sb, "POST /api/v4/projects/{id}/variables");
    let before = posts();
    let other = Secret::new("bG9zdC1hbnN3ZXItMTIzNDU2Nzg5");
    gl.create_variable(
        OWNER,
        &variables::VariableSpec {
            key: "COSIGN_PRIVATE_KEY",
            value: &other,
            ..hidden.clone()
        },
    )
    .await
    .expect("settled");
    assert_eq!(posts() - before, 1);

    gl.delete_variable(OWNER, "COSIGN_PASSWORD", "production")
        .await
        .expect("delete");
    gl.delete_variable(OWNER, "COSIGN_PASSWORD", "production")
        .await
        .expect("deleting again is done");
    assert!(
        gl.variable(OWNER, "COSIGN_PASSWORD", "production")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        gl.variable(OWNER, "COSIGN_PASSWORD", "*")
            .await
            .expect("read")
            .is_some(),
        "the other scope is untouched"
    );
}

const GRAPHQL: &str = "POST /api/graphql";
const TOKENS_GET: &str = "GET /api/v4/projects/{id}/cluster_agents/{agent_id}/tokens";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleets_agent_tokens_come_from_one_graphql_read_per_hundred_agents() {
    let _shared = LOG_CAPTURE.read().await;
    let sb = sandbox().await;
    let writer = client(&sb);
    let mut agents = Vec::new();
    for i in 0..150 {
        let agent = writer
            .create_agent(PROJECT, &format!("a{i:03}"))
            .await
            .expect("agent");
        let (token, secret) = writer
            .create_agent_token(PROJECT, agent.id, "tf", "")
            .await
            .expect("token");
        if i % 2 == 0 {
            assert!(sb.gitlab.mark_agent_token_used(secret.expose()));
        }
        agents.push((agent.id, token.id));
    }

    // A refresh: every agent's tokens at once, as Terraform's concurrent reads ask.
    sb.stats.reset();
    let gl = client(&sb);
    let reads = agents.iter().map(|(agent, _)| {
        let (gl, agent) = (gl.clone(), *agent);
        tokio::spawn(async move { gl.agent_tokens(PROJECT, agent).await })
    });
    let found = futures_util::future::join_all(reads).await;
    for (i, ((_, token), read)) in agents.iter().zip(found).enumerate() {
        let tokens = read.expect("joined").expect("read");
        assert_eq!(tokens.iter().map(|t| t.id).collect::<Vec<_>>(), [*token]);
        assert_eq!(tokens[0].last_used_at.is_some(), i % 2 == 0, "agent {i}");
        assert_eq!(tokens[0].last_used_known, i % 2 == 0, "agent {i}");
    }
    assert_eq!(
        (requests(&sb, GRAPHQL), requests(&sb, TOKENS_GET)),
        (2, 0),
        "two pages of at most 100 agents, no per-agent list"
    );

    // After this client revokes an agent's token, that agent's tokens are read again
    // (through REST); the others still come from the one read.
    sb.stats.reset();
    let (agent, token) = agents[0];
    gl.revoke_agent_token(PROJECT, agent, token)
        .await
        .expect("revoke");
    assert!(
        gl.agent_tokens(PROJECT, agent)
            .await
            .expect("read")
            .is_empty()
    );
    let other = gl.agent_tokens(PROJECT, agents[1].0).await.expect("read");
    assert_eq!(other.len(), 1);
    assert_eq!((requests(&sb, GRAPHQL), requests(&sb, TOKENS_GET)), (0, 1));

    // GraphQL failing: REST answers, and GraphQL is not asked again for each agent.
    inject(
        &sb,
        vec![rule("POST", "/api/graphql", None, status(500, None))],
    );
    sb.stats.reset();
    let (gl, _stop) = client_with(&sb, &sb.info.gitlab_token, 0);
    for (agent, token) in &agents[1..3] {
        let tokens = gl.agent_tokens(PROJECT, *agent).await.expect("read");
        assert_eq!(tokens.iter().map(|t| t.id).collect::<Vec<_>>(), [*token]);
    }
    assert_eq!(
        (faults(&sb, "/api/graphql"), requests(&sb, TOKENS_GET)),
        (1, 2)
    );
}
