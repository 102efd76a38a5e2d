//! OCI registry emulator (the distribution API v2), standing in for GitLab's container
//! registry or an air-gapped mirror of `ghcr.io/fluxcd/flux-manifests`.
//!
//! It speaks the token flow real registries use: a request without a valid Bearer token gets
//! a 401 whose `WWW-Authenticate` challenge points at `/token`, which hands out pull tokens to
//! anyone (while `anonymous_pull` holds, as for a public project) and pull+push tokens to
//! Basic credentials whose password is a GitLab emulator token. Pushes follow the spec
//! (upload sessions, monolithic or chunked, then the manifest); pulls get exact bytes and
//! `Docker-Content-Digest`, and blob downloads are redirected to a signed storage URL that
//! takes no token, as ghcr.io and GitLab send them to object storage. Errors carry the spec's
//! codes.

pub mod artifact;
mod routes;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use self::store::Store;
use super::gitlab::GitlabEmulator;

pub use self::routes::route_template;

/// How long a token from `/token` is valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The `service` the challenge names.
pub const SERVICE: &str = "gitlabflux-sandbox";

/// What a token may do with one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    repository: String,
    push: bool,
}

struct Token {
    grants: Vec<Grant>,
    expires: Instant,
}

pub struct RegistryEmulator {
    base_url: String,
    gitlab: Arc<GitlabEmulator>,
    store: RwLock<Store>,
    tokens: Mutex<HashMap<String, Token>>,
    /// Upload session id to (repository, bytes so far).
    uploads: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// Signs the storage URLs blob downloads are redirected to.
    storage_key: String,
    version: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
#[error("persisted registry state is invalid: {0}")]
pub struct RegistryStateError(#[from] serde_json::Error);

impl RegistryEmulator {
    /// An empty registry at `base_url` (`http://127.0.0.1:PORT`) whose push credentials are
    /// the GitLab emulator's tokens.
    pub fn new(base_url: &str, gitlab: Arc<GitlabEmulator>) -> Arc<Self> {
        Self::with_store(base_url, gitlab, Store::new())
    }

    /// Restores from `persisted()` output.
    pub fn restore(
        base_url: &str,
        gitlab: Arc<GitlabEmulator>,
        persisted: serde_json::Value,
    ) -> Result<Arc<Self>, RegistryStateError> {
        Ok(Self::with_store(
            base_url,
            gitlab,
            serde_json::from_value(persisted)?,
        ))
    }

    fn with_store(base_url: &str, gitlab: Arc<GitlabEmulator>, store: Store) -> Arc<Self> {
        Arc::new(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            gitlab,
            store: RwLock::new(store),
            tokens: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            storage_key: super::random_token("storage-"),
            version: AtomicU64::new(0),
        })
    }

    pub fn persisted(&self) -> serde_json::Value {
        serde_json::to_value(&*self.read()).unwrap_or_default()
    }

    /// Increments on every change of content or settings.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Repositories with their tags and digests, for assertions.
    pub fn summary(&self) -> serde_json::Value {
        let store = self.read();
        serde_json::json!({
            "anonymous_pull": store.anonymous_pull,
            "repositories": store.summary(),
        })
    }

    /// Whether `/token` grants pulls without credentials.
    pub fn set_anonymous_pull(&self, allowed: bool) {
        let _ = self.write(|store| {
            store.anonymous_pull = allowed;
            Ok(())
        });
    }

    /// The `/v2/...` and `/token` routes.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a change; the version moves only when it succeeds, so a refused push does not
    /// make the persistence loop rewrite the state.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, store::RegistryError>,
    ) -> Result<R, store::RegistryError> {
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut store);
        if result.is_ok() {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// A token for the requested scopes, narrowed to what the caller may have: pulls for
    /// anyone while anonymous pulls are on, pushes only for GitLab token holders. `None` when
    /// the credentials are wrong.
    fn issue_token(&self, password: Option<&str>, scopes: &[String]) -> Option<String> {
        let authenticated = match password {
            Some(password) => {
                self.gitlab.token_owner(password)?;
                true
            }
            None => false,
        };
        let anonymous_pull = self.read().anonymous_pull;
        let grants = scopes
            .iter()
            .filter_map(|scope| parse_scope(scope))
            .filter(|(_, pull, _)| !pull || authenticated || anonymous_pull)
            .filter_map(|(repository, pull, push)| {
                let push = push && authenticated;
                (pull || push).then_some(Grant { repository, push })
            })
            .collect();
        let value = super::random_token("sandbox-registry-");
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(
            value.clone(),
            Token {
                grants,
                expires: now + TOKEN_LIFETIME,
            },
        );
        Some(value)
    }

    /// Whether the bearer `token` may pull (or push) `repository`.
    fn allows(&self, token: Option<&str>, repository: &str, push: bool) -> bool {
        let Some(token) = token else {
            return false;
        };
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.get(token).is_some_and(|t| {
            t.expires > Instant::now()
                && t.grants
                    .iter()
                    .any(|g| g.repository == repository && (g.push || !push))
        })
    }

    /// Whether the bearer `token` is live at all (for `GET /v2/`).
    fn knows(&self, token: Option<&str>) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        token
            .and_then(|t| tokens.get(t))
            .is_some_and(|t| t.expires > Instant::now())
    }
}

impl RegistryEmulator {
    /// The signature a storage URL for this blob carries.
    fn storage_signature(&self, repository: &str, digest: &str) -> String {
        crate::digest::sha256_hex(format!("{}/{repository}/{digest}", self.storage_key).as_bytes())
    }
}

/// `repository:<name>:<actions>` to (name, pull, push); other resource types are ignored.
fn parse_scope(scope: &str) -> Option<(String, bool, bool)> {
    let rest = scope.strip_prefix("repository:")?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').collect();
    let push = actions.contains(&"push") || actions.contains(&"*");
    let pull = actions.contains(&"pull") || actions.contains(&"*");
    Some((name.to_string(), pull, push))
}
