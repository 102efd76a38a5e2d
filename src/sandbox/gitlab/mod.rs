//! GitLab REST API emulator (`/api/v4`) for the sandbox: agents and agent tokens, atomic
//! multi-file commits, repository files, deploy keys, project and group CI variables,
//! project access tokens, GitLab-managed Terraform state with its lock, and CI jobs' OIDC ID
//! tokens with their discovery endpoints, with GitLab's status codes, error bodies,
//! pagination and rate-limit headers.
//!
//! State lives behind one `RwLock`; handlers take it only for synchronous work and never hold
//! it across an `.await`. Token values are stored only as SHA-256 hashes.

mod auth;
mod http;
mod id_tokens;
mod keys;
mod paths;
mod repository;
mod routes;
mod snapshot;
mod state;
pub use id_tokens::CiJob;
pub use state::InstanceSettings;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use self::http::ApiResult;
use self::state::World;

/// Where the emulator is reachable, for URLs it puts into responses.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// e.g. `http://127.0.0.1:PORT`, without a trailing slash.
    pub base_url: String,
    /// e.g. `ws://127.0.0.1:PORT/-/kubernetes-agent/`, reported as `kas.externalUrl`.
    pub kas_url: String,
}

impl GitlabConfig {
    /// The host (and port) of `base_url`, as GitLab names itself in masked key comments.
    pub fn host(&self) -> String {
        let rest = self
            .base_url
            .split_once("://")
            .map_or(&*self.base_url, |(_, r)| r);
        rest.split('/').next().unwrap_or(rest).to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitlabEmulatorError {
    #[error("persisted GitLab emulator state is invalid: {0}")]
    InvalidState(#[from] serde_json::Error),
    #[error("persisted GitLab emulator state has no `root` user")]
    NoRoot,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where `persisted()` keeps the bootstrap root token.
const ROOT_TOKEN_KEY: &str = "sandbox_root_token";

pub struct GitlabEmulator {
    config: GitlabConfig,
    world: RwLock<World>,
    version: AtomicU64,
    root_token: String,
    /// (minute window, requests seen in it) for the `RateLimit-*` headers.
    rate: Mutex<(u64, u64)>,
    /// Token hashes that simulated pods run now, by workload.
    running: Mutex<HashMap<String, Vec<String>>>,
    /// Tokens revoked while pods still ran them: each is a window without a valid credential.
    revoked_while_running: Mutex<Vec<u64>>,
    /// Signs CI jobs' ID tokens; made on first use.
    id_token_key: std::sync::OnceLock<id_tokens::IdTokenKey>,
}

impl GitlabEmulator {
    /// Fresh world: users `root` (admin) and members, group `fleet`, projects `fleet/agents`
    /// and `fleet/gitops`, each with default branch `main` holding one initial commit.
    pub fn new(config: GitlabConfig) -> Arc<Self> {
        let mut world = World::seeded();
        let root_token = mint_root_token(&mut world).unwrap_or_default();
        Self::with_world(config, world, root_token)
    }

    /// Restores from `persisted()` output, keeping the root token printed before the restart
    /// (minting a new one only if it no longer authenticates).
    pub fn restore(
        config: GitlabConfig,
        persisted: serde_json::Value,
    ) -> Result<Arc<Self>, GitlabEmulatorError> {
        let saved_root = persisted
            .get(ROOT_TOKEN_KEY)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        let mut world: World = serde_json::from_value(persisted)?;
        let root_token = match saved_root.filter(|t| world.authenticate(t).is_some()) {
            Some(token) => token,
            None => mint_root_token(&mut world).ok_or(GitlabEmulatorError::NoRoot)?,
        };
        Ok(Self::with_world(config, world, root_token))
    }

    fn with_world(config: GitlabConfig, world: World, root_token: String) -> Arc<Self> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        Arc::new(Self {
            config: GitlabConfig { base_url, ..config },
            world: RwLock::new(world),
            version: AtomicU64::new(1),
            root_token,
            rate: Mutex::new((0, 0)),
            running: Mutex::new(HashMap::new()),
            revoked_while_running: Mutex::new(Vec::new()),
            id_token_key: std::sync::OnceLock::new(),
        })
    }

    /// The complete state (token hashes, id counters, repositories) as JSON. The one token
    /// value in it is the sandbox's bootstrap root token, which the sandbox contract re-prints
    /// after a restart (like the Kubernetes bearer token the shell keeps); every token issued
    /// through the API is stored as a hash only.
    pub fn persisted(&self) -> serde_json::Value {
        let mut value = self.read(|w| serde_json::to_value(w).unwrap_or(serde_json::Value::Null));
        if let Some(map) = value.as_object_mut() {
            map.insert(ROOT_TOKEN_KEY.to_owned(), self.root_token.clone().into());
        }
        value
    }

    /// Increments on every mutation.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// A personal access token of `root` (admin, Owner of group `fleet`).
    pub fn root_token(&self) -> String {
        self.root_token.clone()
    }

    /// The user name a live personal or project access token belongs to (the sandbox's
    /// container registry takes GitLab tokens as passwords, as GitLab's does).
    pub fn token_owner(&self, token_value: &str) -> Option<String> {
        self.read(|w| {
            let caller = w.authenticate(token_value)?;
            w.user(caller.user_id).map(|u| u.username.clone())
        })
    }

    /// A new user (or an existing one by that name) with `access_level` on group `fleet`, and
    /// a fresh personal access token for it.
    pub fn create_user_with_token(&self, username: &str, access_level: u32) -> String {
        self.mutate(|w| {
            let user_id = match w.user_by_name(username) {
                Some(u) => u.id,
                None => w.add_user(username, username, false, false),
            };
            if let Some(group) = w.fleet_group_id().and_then(|g| w.group_mut(g)) {
                group.members.insert(user_id, access_level);
            }
            w.add_personal_token(user_id, "sandbox")
        })
    }

    /// Whether the project at `path` has an unexpired deploy key with this SHA-256
    /// fingerprint, as GitLab's SSH server would decide; `None` when there is no such project.
    pub fn deploy_key_authorizes(&self, path: &str, fingerprint_sha256: &str) -> Option<bool> {
        let world = self.world.read().unwrap_or_else(|e| e.into_inner());
        let project = &world.projects[world.find_project_index(path)?];
        let today = http::today();
        Some(project.deploy_keys.iter().any(|k| {
            k.fingerprint_sha256 == fingerprint_sha256
                && k.expires_at.as_deref().is_none_or(|d| d > today.as_str())
        }))
    }

    /// The variables a CI job of `project` (on its protected default branch, deploying to
    /// `environment`) receives: its groups' and then its own, the most specific scope
    /// winning, hidden values included. `None` when there is no such project.
    pub fn job_variables(
        &self,
        project: &str,
        environment: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let world = self.world.read().unwrap_or_else(|e| e.into_inner());
        let project = &world.projects[world.find_project_index(project)?];
        let group = world
            .group(project.group_id)
            .map(|g| g.variables.as_slice());
        let layers = [group.unwrap_or_default(), project.variables.as_slice()];
        let mut chosen: std::collections::BTreeMap<String, (bool, String)> = Default::default();
        for v in layers.iter().flat_map(|l| l.iter()) {
            let exact = v.environment_scope == environment;
            if !exact && v.environment_scope != "*" {
                continue;
            }
            // A later layer overrides; within one, an exact scope beats the wildcard.
            let keep = chosen
                .get(&v.key)
                .is_some_and(|(was_exact, _)| *was_exact && !exact);
            if !keep {
                chosen.insert(v.key.clone(), (exact, v.value.clone()));
            }
        }
        Some(chosen.into_iter().map(|(k, (_, v))| (k, v)).collect())
    }

    /// Replaces the instance settings; returns them.
    pub fn set_settings(&self, settings: state::InstanceSettings) -> state::InstanceSettings {
        self.mutate(|w| {
            w.settings = settings;
            w.settings.clone()
        })
    }

    /// Marks the active agent token with this value as used now; whether one matched.
    pub fn mark_agent_token_used(&self, token_value: &str) -> bool {
        let hash = state::hash_token(token_value);
        let mut world = self.world.write().unwrap_or_else(|e| e.into_inner());
        let token = world
            .agent_tokens
            .iter_mut()
            .find(|t| t.token_hash == hash && !t.revoked);
        let Some(token) = token else {
            return false;
        };
        token.last_used_at = Some(http::now_iso());
        self.version.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Records the Secret values a workload's pods started with (the simulated controllers).
    pub fn set_running(&self, workload: &str, values: &[String]) {
        let hashes = values.iter().map(|v| state::hash_token(v)).collect();
        lock(&self.running).insert(workload.to_string(), hashes);
    }

    /// The workload is gone, and its pods with it.
    pub fn forget_running(&self, workload: &str) {
        lock(&self.running).remove(workload);
    }

    /// Called on every revocation: a token pods still run is recorded as a window.
    pub(crate) fn note_revocation(&self, token_id: u64, token_hash: &str) {
        let running = lock(&self.running)
            .values()
            .any(|hashes| hashes.iter().any(|h| h == token_hash));
        if running {
            tracing::warn!(token_id, "agent token revoked while pods still run it");
            lock(&self.revoked_while_running).push(token_id);
        }
    }

    /// A JSON dump for assertions; never contains token values or hashes. With
    /// `revoked_while_running`: the ids of tokens revoked while simulated pods ran them.
    pub fn snapshot(&self) -> serde_json::Value {
        let mut snap = self.read(|w| snapshot::snapshot(w, &self.config.base_url));
        if let Some(map) = snap.as_object_mut() {
            let windows = lock(&self.revoked_while_running).clone();
            map.insert("revoked_while_running".into(), windows.into());
        }
        snap
    }

    /// The `/api/v4/...` routes.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }

    pub(crate) fn config(&self) -> &GitlabConfig {
        &self.config
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        let world = self.world.read().unwrap_or_else(|e| e.into_inner());
        f(&world)
    }

    /// Runs a fallible mutation; the version moves only when it succeeds. Callers validate
    /// before they modify, so an error leaves the world unchanged.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut World) -> ApiResult<R>) -> ApiResult<R> {
        let mut world = self.world.write().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut world);
        if result.is_ok() {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    fn mutate<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut world = self.world.write().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut world);
        self.version.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Counts a request in the current one-minute window; returns the count so far.
    pub(crate) fn observe_request(&self, at: std::time::SystemTime) -> u64 {
        let window = http::window_of(at);
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rate.0 != window {
            *rate = (window, 0);
        }
        rate.1 += 1;
        rate.1
    }
}

fn mint_root_token(world: &mut World) -> Option<String> {
    let root = world.user_by_name("root")?.id;
    Some(world.add_personal_token(root, "sandbox-root"))
}
