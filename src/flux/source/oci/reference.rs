//! `oci://<registry>/<repository>[:<tag>][@sha256:<digest>]` references, checked by the
//! distribution spec's grammar so a typo fails at plan with the reason instead of as a 404.

use std::fmt;

/// A parsed artifact reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written.
    pub registry: String,
    /// `path/to/repository`, lowercase.
    pub repository: String,
    pub tag: Option<String>,
    /// Lowercase hex SHA-256 of the manifest, without the `sha256:` prefix.
    pub digest: Option<String>,
}

impl Reference {
    pub const SCHEME: &str = "oci://";

    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix(Self::SCHEME)
            .ok_or_else(|| format!("{url:?} does not start with {}", Self::SCHEME))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(digest)?)),
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or("the reference needs a registry host and a repository, as in oci://ghcr.io/fluxcd/flux-manifests:v2.8.5")?;
        check_registry(registry)?;
        // A colon after the last slash starts the tag; one before it belongs to the host.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (path, None),
        };
        check_repository(repository)?;
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// What a manifest request names: the digest when there is one, else the tag (`latest`
    /// when neither is given, as container tools do).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => format!("sha256:{digest}"),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The registry's API origin. Loopback registries speak plain HTTP, as docker and crane
    /// assume; Docker Hub's API lives on its own host.
    pub fn api_origin(&self) -> String {
        let host = match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            other => other,
        };
        let scheme = if self.is_loopback() { "http" } else { "https" };
        format!("{scheme}://{host}")
    }

    /// The repository path the API uses (Docker Hub's official images live under `library/`).
    pub fn api_repository(&self) -> String {
        let docker_hub = matches!(self.registry.as_str(), "docker.io" | "index.docker.io");
        if docker_hub && !self.repository.contains('/') {
            format!("library/{}", self.repository)
        } else {
            self.repository.clone()
        }
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback_host(host_of(&self.registry))
    }
}

/// `localhost` or a loopback address (IPv6 literals with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}/{}", Self::SCHEME, self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@sha256:{digest}")?;
        }
        Ok(())
    }
}

/// The host part of `host[:port]` (IPv6 literals keep their brackets).
pub fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |end| &registry[..=end]);
    }
    registry.rsplit_once(':').map_or(registry, |(host, _)| host)
}

fn parse_digest(digest: &str) -> Result<String, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest {digest:?} must be sha256:<64 hex characters>"))?;
    if super::super::cache::is_hex_digest(hex) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(format!(
            "digest {digest:?} must be sha256:<64 hex characters>"
        ))
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let host = host_of(registry);
    let rest = &registry[host.len()..];
    let port = rest.strip_prefix(':');
    let host_ok = if let Some(literal) = host.strip_prefix('[') {
        literal
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
            && (rest.is_empty() || port.is_some())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!("{registry:?} is not a registry host[:port]"))
    }
}

fn check_repository(repository: &str) -> Result<(), String> {
    if is_repository_name(repository) {
        Ok(())
    } else {
        Err(format!(
            "repository {repository:?} must be lowercase letters, digits and . _ - separated by /"
        ))
    }
}

/// Whether `name` is a repository name by the distribution spec: path components of
/// `[a-z0-9]` runs joined by `.`, `_`, `__` or runs of `-`, separated by `/`.
pub fn is_repository_name(name: &str) -> bool {
    let lower_or_digit = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|component| {
            let bytes = component.as_bytes();
            bytes.first().is_some_and(lower_or_digit)
                && bytes.last().is_some_and(lower_or_digit)
                && bytes
                    .iter()
                    .all(|b| lower_or_digit(b) || matches!(b, b'.' | b'_' | b'-'))
                && !component.contains("..")
                && !component.contains("___")
        })
}

fn check_tag(tag: &str) -> Result<(), String> {
    let bytes = tag.as_bytes();
    let valid = (1..=128).contains(&bytes.len())
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be up to 128 letters, digits, . _ - and not start with . or -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_flux_release_reference() {
        let r = Reference::parse("oci://ghcr.io/fluxcd/flux-manifests:v2.8.5").unwrap();
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "fluxcd/flux-manifests");
        assert_eq!(r.tag.as_deref(), Some("v2.8.5"));
        assert_eq!(r.digest, None);
        assert_eq!(r.manifest_reference(), "v2.8.5");
        assert_eq!(r.api_origin(), "https://ghcr.io");
        assert_eq!(r.to_string(), "oci://ghcr.io/fluxcd/flux-manifests:v2.8.5");
    }

    #[test]
    fn ports_digests_and_defaults() {
        let url = format!(
            "oci://127.0.0.1:5000/fleet/flux:v1@sha256:{}",
            DIGEST.to_uppercase()
        );
        let r = Reference::parse(&url).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(r.manifest_reference(), format!("sha256:{DIGEST}"));
        assert_eq!(
            r.api_origin(),
            "http://127.0.0.1:5000",
            "loopback is plain HTTP"
        );

        let r = Reference::parse("oci://localhost:5000/flux").unwrap();
        assert_eq!(
            (r.tag.as_deref(), r.manifest_reference().as_str()),
            (None, "latest")
        );
        assert!(r.is_loopback());
        assert!(
            Reference::parse("oci://[::1]:5000/flux:v1")
                .unwrap()
                .is_loopback()
        );
        assert!(
            !Reference::parse("oci://registry.example:5000/flux")
                .unwrap()
                .is_loopback()
        );

        let hub = Reference::parse("oci://docker.io/flux-manifests:v1").unwrap();
        assert_eq!(hub.api_origin(), "https://registry-1.docker.io");
        assert_eq!(hub.api_repository(), "library/flux-manifests");
    }

    #[test]
    fn rejects_malformed_references() {
        for (url, reason) in [
            ("ghcr.io/fluxcd/flux-manifests", "does not start with"),
            ("oci://ghcr.io", "needs a registry host and a repository"),
            (
                "oci://ghcr.io/FluxCD/flux-manifests:v1",
                "must be lowercase",
            ),
            ("oci://ghcr.io/fluxcd//flux:v1", "must be lowercase"),
            ("oci://ghcr.io/fluxcd/flux:-v1", "tag"),
            ("oci://ghcr.io/fluxcd/flux:", "tag"),
            ("oci://ghcr.io/fluxcd/flux@sha256:abc", "digest"),
            ("oci://ghcr.io/fluxcd/flux@md5:abc", "digest"),
            ("oci://gh_cr.io/fluxcd/flux", "registry"),
            ("oci://ghcr.io:0/fluxcd/flux", "registry"),
            ("oci://ghcr.io:http/fluxcd/flux", "registry"),
            ("oci://[::1]junk/flux", "registry"),
            ("oci://[evil.com]/flux", "registry"),
        ] {
            let err = Reference::parse(url).unwrap_err();
            assert!(err.contains(reason), "{url}: {err}");
        }
    }
}
