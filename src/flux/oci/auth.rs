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

    /// The credentials the Docker config holds for `registry`, if any.
    pub fn from_docker_config(registry: &str) -> Option<Self> {
        let path = docker_config_path()?;
        let text = std::fs::read_to_string(&path).ok()?;
        let found = Self::from_config_text(&text, registry);
        if found.is_none() {
            tracing::debug!(
                registry,
                "no credentials for the registry in the Docker config"
            );
        }
        found
    }

    /// Looks `registry` up in a Docker config document: by `host[:port]`, or with a scheme
    /// prefix and path as older `docker login` wrote it (Docker Hub's `index.docker.io/v1/`).
    pub fn from_config_text(text: &str, registry: &str) -> Option<Self> {
        let config: serde_json::Value = serde_json::from_str(text).ok()?;
        let auths = config.get("auths")?.as_object()?;
        let wanted = if registry == "docker.io" {
            "index.docker.io"
        } else {
            registry
        };
        let entry = auths.iter().find_map(|(key, entry)| {
            let host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            host.eq_ignore_ascii_case(wanted).then_some(entry)
        })?;
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            return Some(Self {
                username: username.to_string(),
                password: Secret::new(password),
            });
        }
        Some(Self {
            username: entry.get("username")?.as_str()?.to_string(),
            password: Secret::new(entry.get("password")?.as_str()?),
        })
    }
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
                "https://index.docker.io/v1/": {{"username": "hub", "password": "pw"}}
            }}, "credsStore": "desktop"}}"#
        );
        let found = Credentials::from_config_text(&text, "registry.example:5000").unwrap();
        assert_eq!(found.username, "robot");
        assert_eq!(found.password.expose(), "s3cret:with-colon");
        let hub = Credentials::from_config_text(&text, "docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.expose()),
            ("hub", "pw")
        );
        assert_eq!(Credentials::from_config_text(&text, "ghcr.io"), None);
        assert_eq!(Credentials::from_config_text("not json", "ghcr.io"), None);
        assert!(
            !format!("{found:?}").contains("s3cret"),
            "Debug must not reveal the password"
        );
        assert_eq!(
            found.basic_header().expose(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("robot:s3cret:with-colon")
            )
        );
    }
}
