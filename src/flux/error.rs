//! Errors of the Flux domain layer.
//!
//! Every variant carries the offending input so the resource can attach the diagnostic to the
//! attribute that caused it, and `summary()`/`detail()` give the texts Terraform shows.
//! Nothing here ever holds secret material: distribution sources and options are public.

/// Why loading or rendering a Flux distribution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FluxError {
    #[error("unknown Flux component {name:?}; the distribution has: {}", available.join(", "))]
    UnknownComponent {
        /// `components` or `components_extra`: where the name was given.
        attribute: &'static str,
        name: String,
        available: Vec<String>,
    },
    #[error("distribution sha256 mismatch: expected {expected}, got {actual}")]
    Sha256Mismatch { expected: String, actual: String },
    #[error("distribution sha256 {value:?} is not 64 hexadecimal characters")]
    InvalidSha256 { value: String },
    #[error("cannot fetch the Flux distribution from {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("unsupported distribution source {url}")]
    UnsupportedSource { url: String },
    #[error("invalid distribution source {url}: {message}")]
    InvalidSource { url: String, message: String },
    #[error("{url} is not a usable Flux artifact: {message}")]
    InvalidArtifact { url: String, message: String },
    #[error("cannot read the Flux distribution at {path}: {message}")]
    Io { path: String, message: String },
    #[error("the Flux distribution is not valid YAML manifests: {message}")]
    Parse { message: String },
    #[error("patch at index {index} is invalid: {message}")]
    InvalidPatch { index: usize, message: String },
    #[error("interval {value:?} is not a valid duration")]
    InvalidInterval { value: String },
    #[error("invalid sync configuration: {message}")]
    InvalidSync { message: String },
    /// One element of a list attribute, such as a shard name or a tenant namespace.
    #[error("invalid {attribute}[{index}]: {message}")]
    InvalidElement {
        attribute: &'static str,
        index: usize,
        message: String,
    },
    /// One field of an element of a list attribute, such as a receiver resource's kind.
    #[error("invalid {attribute}[{index}].{field}: {message}")]
    InvalidElementField {
        attribute: &'static str,
        index: usize,
        field: &'static str,
        message: String,
    },
    #[error("invalid {attribute}: {message}")]
    InvalidOption {
        attribute: &'static str,
        message: String,
    },
    #[error("cannot serialise the rendered manifests: {message}")]
    Serialize { message: String },
}

impl FluxError {
    /// One-line diagnostic summary.
    pub fn summary(&self) -> String {
        match self {
            Self::UnknownComponent { .. } => "Unknown Flux component",
            Self::Sha256Mismatch { .. } => "Flux distribution checksum mismatch",
            Self::InvalidSha256 { .. } => "Invalid distribution checksum",
            Self::Unreachable { .. } => "Flux distribution unreachable",
            Self::UnsupportedSource { .. } => "Unsupported distribution source",
            Self::InvalidSource { .. } => "Invalid distribution source",
            Self::InvalidArtifact { .. } => "Invalid Flux distribution",
            Self::Io { .. } => "Cannot read the Flux distribution",
            Self::Parse { .. } => "Invalid Flux distribution",
            Self::InvalidPatch { .. } => "Invalid patch",
            Self::InvalidInterval { .. } => "Invalid interval",
            Self::InvalidSync { .. } => "Invalid sync configuration",
            Self::InvalidElement {
                attribute: "sharding.shards",
                ..
            } => "Invalid shard",
            Self::InvalidElement {
                attribute: "namespaces",
                ..
            } => "Invalid tenant namespace",
            Self::InvalidElement { .. } => "Invalid Flux option",
            Self::InvalidElementField {
                attribute: "resources",
                ..
            } => "Invalid receiver resource",
            Self::InvalidElementField { .. } => "Invalid Flux option",
            Self::InvalidOption { .. } => "Invalid Flux option",
            Self::Serialize { .. } => "Cannot render the Flux manifests",
        }
        .to_string()
    }

    /// The actionable explanation shown under the summary.
    pub fn detail(&self) -> String {
        match self {
            Self::UnknownComponent { .. } => format!(
                "{self}. Use one of the listed names, or pick a distribution that ships the \
                 component (the release install.yaml ships all of them)."
            ),
            Self::Sha256Mismatch { .. } => format!(
                "{self}. The source does not hold the pinned content: check the URL, or \
                 update distribution.sha256 if the change is expected (for oci:// sources it \
                 is the artifact's manifest digest)."
            ),
            Self::InvalidSha256 { .. } => format!(
                "{self}. Give the hex SHA-256 of the file, or for an oci:// source the \
                 artifact's manifest digest (sha256:<hex>, as `crane digest` prints it)."
            ),
            Self::Unreachable { .. } => format!(
                "{self}. Check the URL and network access, or point distribution.source at a \
                 mirror or a local file:// copy."
            ),
            Self::UnsupportedSource { .. } => format!(
                "{self}. Use a file:// URL, a local path, an http(s):// URL such as \
                 https://github.com/fluxcd/flux2/releases/download/v<version>/install.yaml, \
                 or an OCI artifact such as oci://ghcr.io/fluxcd/flux-manifests:v<version>."
            ),
            Self::InvalidSource { .. } => format!(
                "{self}. An OCI distribution.source looks like \
                 oci://<registry>/<repository>:<tag>, optionally with @sha256:<digest>."
            ),
            Self::InvalidArtifact { .. } => format!(
                "{self}. Point distribution.source at an artifact pushed with `flux push \
                 artifact` from a directory holding gotk-components.yaml or install.yaml, \
                 such as oci://ghcr.io/fluxcd/flux-manifests:v<version>."
            ),
            Self::InvalidInterval { .. } => format!(
                "{self}. Use a Go duration made of numbers with the units ms, s, m or h, \
                 such as 1m0s, 10m or 1h30m; it must be greater than zero."
            ),
            _ => format!("{self}."),
        }
    }
}
