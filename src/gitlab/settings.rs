//! How to reach GitLab: the settings the client is built from, owned by the client layer so
//! that nothing below the provider's composition root needs to know where they came from
//! (provider block, environment, a test).

use std::path::PathBuf;

use crate::secret::Secret;

/// `gitlab.base_url` when neither the attribute nor `GITLAB_BASE_URL` is set.
pub const DEFAULT_GITLAB_URL: &str = "https://gitlab.com";
/// `gitlab.max_retries` when unset.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Upper bound of `gitlab.max_retries`: more would keep an apply retrying for hours.
pub const MAX_RETRIES_LIMIT: u32 = 20;

/// How to reach GitLab, after environment fallbacks.
#[derive(Clone, Debug)]
pub struct GitlabSettings {
    /// Without a trailing slash; the API is at `<base_url>/api/v4`.
    pub base_url: String,
    pub token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub max_retries: u32,
}

/// `base_url` as the client wants it: no trailing slash and no `/api/v4` suffix, which users
/// often paste from API documentation.
pub fn normalise_base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/api/v4").unwrap_or(url).to_string()
}
