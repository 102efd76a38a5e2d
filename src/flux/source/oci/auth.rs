//! Registry authentication: the `WWW-Authenticate` challenge a registry answers with, and the
//! credentials `docker login` (or `flux`'s and `oras`'s equivalents) left in the Docker config.
//!
//! Public registries such as ghcr.io answer an anonymous pull with a Bearer challenge whose
//! token endpoint hands out pull tokens to anyone; private mirrors need credentials. Those are
//! read from `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`) and held as [`Secret`]s.
//! Credential helpers (`credsStore`, `credHelpers`) are not run: the provider executes no
//! programs on a user's behalf.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;

use crate::secret::Secret;

/// What a 401 asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Fetch a token from `realm` with these query parameters.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send the credentials with every request.
    Basic,
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value: a scheme, then comma-separated `key="value"` pairs.
    pub fn parse(header: &str) -> Option<Self> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(params);
        Some(Self::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }
}

/// `key="value"` pairs; values may hold commas (scopes like `repository:x:pull,push`).
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((value, remaining)) => (value, remaining),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        out.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',');
    }
    out
}

/// A user name and password (or token) for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    /// The `Authorization: Basic` value.
    pub fn basic_header(&self) -> Secret {
        let pair = format!("{}:{}", self.username, self.password.expose());
        Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }
}

/// What the Docker config says about one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerConfigAuth {
    /// Credentials in `auths`.
    Credentials(Credentials),
    /// The credentials live in this credential helper (`credHelpers` or `credsStore`), which
    /// the provider does not run.
    Helper(String),
    Absent,
}

impl DockerConfigAuth {
    /// Reads `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`) for `registry`.
    pub fn lookup(registry: &str) -> Self {
        let text = docker_config_path().and_then(|path| std::fs::read_to_string(path).ok());
        let found = text.map_or(Self::Absent, |text| Self::from_config_text(&text, registry));
        if found == Self::Absent {
            tracing::debug!(
                registry,
                "no credentials for the registry in the Docker config"
            );
        }
        found
    }

    /// Looks `registry` up in a Docker config document: by `host[:port]`, or with a scheme
    /// prefix and path as older `docker login` wrote it (Docker Hub's `index.docker.io/v1/`).
    pub fn from_config_text(text: &str, registry: &str) -> Self {
        let Ok(config) = serde_json::from_str::<serde_json::Value>(text) else {
            return Self::Absent;
        };
        let wanted = if registry == "docker.io" {
            "index.docker.io"
        } else {
            registry
        };
        let entry = config
            .get("auths")
            .and_then(|a| a.as_object())
            .and_then(|auths| {
                auths.iter().find_map(|(key, entry)| {
                    let host = key
                        .trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .split('/')
                        .next()
                        .unwrap_or_default();
                    host.eq_ignore_ascii_case(wanted).then_some(entry)
                })
            });
        if let Some(credentials) = entry.and_then(credentials_of) {
            return Self::Credentials(credentials);
        }
        let helper = config
            .get("credHelpers")
            .and_then(|h| h.get(wanted))
            .or_else(|| config.get("credsStore"))
            .and_then(|h| h.as_str())
            .filter(|h| !h.is_empty());
        helper.map_or(Self::Absent, |h| Self::Helper(h.to_string()))
    }
}

/// `{"auth": base64("user:password")}` or `{"username", "password"}`.
fn credentials_of(entry: &serde_json::Value) -> Option<Credentials> {
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (username, password) = decoded.split_once(':')?;
        return Some(Credentials {
            username: username.to_string(),
            password: Secret::new(password),
        });
    }
    Some(Credentials {
        username: entry.get("username")?.as_str()?.to_string(),
        password: Secret::new(entry.get("password")?.as_str()?),
    })
}

fn docker_config_path() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))?;
    Some(dir.join("config.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let header = r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:fluxcd/flux-manifests:pull""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:fluxcd/flux-manifests:pull".into()),
            })
        );
        let header =
            r#"Bearer realm="https://auth.example/token", scope="repository:a/b:pull,push""#;
        let Some(Challenge::Bearer { scope, service, .. }) = Challenge::parse(header) else {
            panic!("bearer");
        };
        assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(service, None);
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(
            Challenge::parse(r#"Bearer service="x""#),
            None,
            "a realm is required"
        );
    }

    #[test]
    fn reads_docker_config_entries() {
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:s3cret:with-colon");
        let text = format!(
            r#"{{"auths": {{
                "registry.example:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "hub", "password": "pw"}},
                "ghcr.io": {{}}
            }}, "credsStore": "desktop", "credHelpers": {{"gitlab.example": "gitlab"}}}}"#
        );
        let DockerConfigAuth::Credentials(found) =
            DockerConfigAuth::from_config_text(&text, "registry.example:5000")
        else {
            panic!("credentials for registry.example:5000");
        };
        assert_eq!(found.username, "robot");
        assert_eq!(found.password.expose(), "s3cret:with-colon");
        assert!(
            !format!("{found:?}").contains("s3cret"),
            "Debug must not reveal the password"
        );
        assert_eq!(found.basic_header().expose(), format!("Basic {auth}"));
        assert!(matches!(
            DockerConfigAuth::from_config_text(&text, "docker.io"),
            DockerConfigAuth::Credentials(Credentials { ref username, .. }) if username == "hub"
        ));
        // `docker login` with a credential store leaves an empty entry behind.
        assert_eq!(
            DockerConfigAuth::from_config_text(&text, "ghcr.io"),
            DockerConfigAuth::Helper("desktop".into())
        );
        assert_eq!(
            DockerConfigAuth::from_config_text(&text, "gitlab.example"),
            DockerConfigAuth::Helper("gitlab".into())
        );
        assert_eq!(
            DockerConfigAuth::from_config_text(r#"{"auths": {}}"#, "ghcr.io"),
            DockerConfigAuth::Absent
        );
        assert_eq!(
            DockerConfigAuth::from_config_text("not json", "ghcr.io"),
            DockerConfigAuth::Absent
        );
    }
}
