//! The sync objects `flux bootstrap` writes to gotk-sync.yaml: a GitRepository or
//! OCIRepository named `flux-system` and the Kustomization `flux-system` that applies `path`
//! from it. The shapes mirror the fixture's gotk-sync.yaml: the source polls at `interval`
//! (default `1m0s`), the Kustomization at `10m0s`, with prune on.
//!
//! Tenants ([`crate::flux::tenant`]) sync their repositories with the same source object and
//! the same checks, so `validate`, `source`, `interval` and `normalise_path` are
//! visible to the whole Flux module.

use serde_json::{Map, Value, json};

use super::options::{RenderOptions, SyncKind, SyncSpec, selected_components};
use super::stage::Stage;
use crate::flux::error::FluxError;
use crate::flux::interval::validate_interval;
use crate::kube::syntax::is_dns_subdomain;

const SYNC_NAME: &str = "flux-system";
pub(super) const SOURCE_API: &str = "source.toolkit.fluxcd.io/v1";
pub(in crate::flux) const KUSTOMIZE_API: &str = "kustomize.toolkit.fluxcd.io/v1";
const DEFAULT_INTERVAL: &str = "1m0s";
const KUSTOMIZATION_INTERVAL: &str = "10m0s";

fn invalid(message: impl Into<String>) -> FluxError {
    FluxError::InvalidSync {
        message: message.into(),
    }
}

/// Appends the sync objects when `options.sync` is set.
pub fn append(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let Some(sync) = &options.sync else {
        return Ok(());
    };
    validate(sync)?;
    require_controllers(options)?;
    let namespace = options.namespace.as_str();
    stage.sync.push(source(sync, SYNC_NAME, namespace));
    stage
        .sync
        .push(kustomization(sync, namespace, options.multitenancy.enabled));
    Ok(())
}

/// The sync objects are reconciled by source- and kustomize-controller: without them the
/// bootstrap would apply objects nothing ever acts on.
fn require_controllers(options: &RenderOptions) -> Result<(), FluxError> {
    let selected = selected_components(options);
    for needed in ["source-controller", "kustomize-controller"] {
        if !selected.iter().any(|c| c == needed) {
            return Err(invalid(format!("sync needs {needed} in components")));
        }
    }
    Ok(())
}

/// Checks the source half of a sync (url, ref, secret, verify) and its interval.
pub(in crate::flux) fn validate(sync: &SyncSpec) -> Result<(), FluxError> {
    validate_interval(interval(sync))?;
    validate_url(sync)?;
    validate_ref(sync)?;
    if let Some(secret) = &sync.secret_name
        && !is_dns_subdomain(secret)
    {
        return Err(invalid(format!(
            "secret_name {secret:?} is not a valid Secret name"
        )));
    }
    validate_verify(sync)
}

fn validate_url(sync: &SyncSpec) -> Result<(), FluxError> {
    let schemes: &[&str] = match sync.kind {
        SyncKind::GitRepository => &["https://", "http://", "ssh://"],
        SyncKind::OciRepository => &["oci://"],
    };
    let has_host = schemes
        .iter()
        .find_map(|scheme| sync.url.strip_prefix(scheme))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if has_host {
        return Ok(());
    }
    Err(invalid(format!(
        "url {:?} must start with {} for a {}",
        sync.url,
        schemes.join(" or "),
        sync.kind.as_str()
    )))
}

fn validate_ref(sync: &SyncSpec) -> Result<(), FluxError> {
    let (field, value) = sync.reference.field();
    let allowed: &[&str] = match sync.kind {
        SyncKind::GitRepository => &["branch", "tag", "semver", "commit"],
        SyncKind::OciRepository => &["tag", "semver", "digest"],
    };
    if !allowed.contains(&field) {
        return Err(invalid(format!(
            "ref.{field} is not supported by {}; use one of ref.{}",
            sync.kind.as_str(),
            allowed.join(", ref.")
        )));
    }
    if value.trim().is_empty() {
        return Err(invalid(format!("ref.{field} must not be empty")));
    }
    Ok(())
}

fn validate_verify(sync: &SyncSpec) -> Result<(), FluxError> {
    let Some(verify) = &sync.verify else {
        return Ok(());
    };
    if sync.kind != SyncKind::OciRepository {
        return Err(invalid(
            "verify is only supported with kind = OCIRepository",
        ));
    }
    if verify.provider != "cosign" {
        return Err(invalid(format!(
            "verify.provider {:?} is not supported; use \"cosign\"",
            verify.provider
        )));
    }
    if !is_dns_subdomain(&verify.secret_name) {
        return Err(invalid(format!(
            "verify.secret_name {:?} is not a valid Secret name",
            verify.secret_name
        )));
    }
    Ok(())
}

pub(in crate::flux) fn interval(sync: &SyncSpec) -> &str {
    if sync.interval.is_empty() {
        DEFAULT_INTERVAL
    } else {
        &sync.interval
    }
}

fn metadata(name: &str, namespace: &str) -> Value {
    json!({ "name": name, "namespace": namespace })
}

/// The GitRepository or OCIRepository `name` in `namespace` that `sync` describes.
pub(in crate::flux) fn source(sync: &SyncSpec, name: &str, namespace: &str) -> Value {
    let (field, value) = sync.reference.field();
    let mut spec = Map::new();
    spec.insert("interval".into(), json!(interval(sync)));
    spec.insert("ref".into(), json!({ field: value }));
    if let Some(secret) = &sync.secret_name {
        spec.insert("secretRef".into(), json!({ "name": secret }));
    }
    spec.insert("url".into(), json!(sync.url));
    if let Some(verify) = &sync.verify {
        spec.insert(
            "verify".into(),
            json!({ "provider": verify.provider, "secretRef": { "name": verify.secret_name } }),
        );
    }
    json!({
        "apiVersion": SOURCE_API,
        "kind": sync.kind.as_str(),
        "metadata": metadata(name, namespace),
        "spec": spec,
    })
}

/// `./` + the path without leading `./` or `/`, the form `flux bootstrap` writes.
pub(in crate::flux) fn normalise_path(path: &str) -> String {
    let trimmed = path.trim().trim_start_matches("./").trim_start_matches('/');
    format!("./{trimmed}")
}

fn kustomization(sync: &SyncSpec, namespace: &str, locked: bool) -> Value {
    let mut spec = json!({
        "interval": KUSTOMIZATION_INTERVAL,
        "path": normalise_path(&sync.path),
        "prune": true,
        "sourceRef": { "kind": sync.kind.as_str(), "name": SYNC_NAME },
    });
    // Under lockdown kustomize-controller impersonates `default` unless told otherwise; the
    // cluster's own sync must keep running as the controller itself.
    if locked {
        spec["serviceAccountName"] = json!("kustomize-controller");
    }
    json!({
        "apiVersion": KUSTOMIZE_API,
        "kind": "Kustomization",
        "metadata": metadata(SYNC_NAME, namespace),
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::manifest;
    use crate::flux::render::{Ref, Verify, render};
    use crate::flux::testutil::{SYNC_FIXTURE_PATH, find, fixture, git_sync};

    fn with_sync(sync: SyncSpec) -> RenderOptions {
        RenderOptions {
            sync: Some(sync),
            ..RenderOptions::default()
        }
    }

    #[test]
    fn git_sync_mirrors_flux_bootstrap() {
        let rendered = render(&fixture(), &with_sync(git_sync())).unwrap();
        let expected = std::fs::read_to_string(SYNC_FIXTURE_PATH).unwrap();
        let expected = manifest::parse_documents(&expected).unwrap();
        let actual = manifest::parse_documents(&rendered.files["gotk-sync.yaml"]).unwrap();
        assert_eq!(actual, expected);
        // Byte for byte, apart from who generated it.
        let fixture_text = std::fs::read_to_string(SYNC_FIXTURE_PATH).unwrap();
        let body = |text: &str| text.split_once('\n').map(|(_, body)| body.to_string());
        assert_eq!(body(&rendered.files["gotk-sync.yaml"]), body(&fixture_text));
        assert_eq!(
            rendered.files["kustomization.yaml"],
            std::fs::read_to_string(SYNC_FIXTURE_PATH.replace("gotk-sync", "kustomization"))
                .unwrap()
        );
        // Sync objects come after the CRDs that define them.
        let position = |kind| {
            rendered
                .objects
                .iter()
                .position(|o| manifest::kind(o) == kind)
        };
        assert!(position("GitRepository") > position("CustomResourceDefinition"));
    }

    #[test]
    fn oci_sync_with_cosign_verification() {
        let sync = SyncSpec {
            kind: SyncKind::OciRepository,
            url: "oci://registry.gitlab.com/fleet/manifests".into(),
            reference: Ref::Semver(">=1.0.0".into()),
            path: "./clusters/prod".into(),
            interval: "5m".into(),
            secret_name: Some("registry-auth".into()),
            verify: Some(Verify {
                provider: "cosign".into(),
                secret_name: "cosign-pub".into(),
            }),
        };
        let options = RenderOptions {
            namespace: "gitops".into(),
            ..with_sync(sync)
        };
        let rendered = render(&fixture(), &options).unwrap();
        let source = find(&rendered.objects, "OCIRepository", "flux-system").unwrap();
        assert_eq!(
            source,
            &json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "OCIRepository",
                "metadata": { "name": "flux-system", "namespace": "gitops" },
                "spec": {
                    "interval": "5m",
                    "ref": { "semver": ">=1.0.0" },
                    "secretRef": { "name": "registry-auth" },
                    "url": "oci://registry.gitlab.com/fleet/manifests",
                    "verify": { "provider": "cosign", "secretRef": { "name": "cosign-pub" } },
                },
            })
        );
        let kustomization = find(&rendered.objects, "Kustomization", "flux-system").unwrap();
        assert_eq!(
            kustomization["spec"],
            json!({
                "interval": "10m0s",
                "path": "./clusters/prod",
                "prune": true,
                "sourceRef": { "kind": "OCIRepository", "name": "flux-system" },
            })
        );
    }

    fn sync_error(sync: SyncSpec) -> FluxError {
        render(&fixture(), &with_sync(sync)).unwrap_err()
    }

    #[test]
    fn rejects_invalid_sync() {
        let git = git_sync();
        let cases = [
            SyncSpec {
                url: "git@gitlab.com:a/b.git".into(),
                ..git.clone()
            },
            SyncSpec {
                reference: Ref::Digest("sha256:abc".into()),
                ..git.clone()
            },
            SyncSpec {
                reference: Ref::Branch(String::new()),
                ..git.clone()
            },
            SyncSpec {
                verify: Some(Verify {
                    provider: "cosign".into(),
                    secret_name: "k".into(),
                }),
                ..git.clone()
            },
            SyncSpec {
                kind: SyncKind::OciRepository,
                ..git.clone()
            },
            SyncSpec {
                kind: SyncKind::OciRepository,
                url: "oci://r/x".into(),
                reference: Ref::Tag("latest".into()),
                verify: Some(Verify {
                    provider: "notary".into(),
                    secret_name: "k".into(),
                }),
                ..git.clone()
            },
        ];
        for sync in cases {
            assert!(
                matches!(sync_error(sync.clone()), FluxError::InvalidSync { .. }),
                "{sync:?}"
            );
        }
    }

    #[test]
    fn secret_names_are_dns_subdomains() {
        let named = |secret: &str| SyncSpec {
            secret_name: Some(secret.into()),
            ..git_sync()
        };
        assert_eq!(validate(&named("flux.git-auth")), Ok(()));
        assert!(matches!(
            validate(&named("Flux_Auth")),
            Err(FluxError::InvalidSync { .. })
        ));
    }

    #[test]
    fn sync_needs_its_controllers() {
        let options = RenderOptions {
            components: vec!["source-controller".into(), "helm-controller".into()],
            ..with_sync(git_sync())
        };
        let err = render(&fixture(), &options).unwrap_err();
        assert!(
            matches!(err, FluxError::InvalidSync { ref message } if message.contains("kustomize-controller"))
        );
    }

    #[test]
    fn validates_the_interval() {
        for bad in ["1 minute", "0s", "10", "1d", " "] {
            let sync = SyncSpec {
                interval: bad.into(),
                ..git_sync()
            };
            assert_eq!(
                sync_error(sync),
                FluxError::InvalidInterval { value: bad.into() }
            );
        }
        for good in ["1h30m", "10m", "1m0s"] {
            let sync = SyncSpec {
                interval: good.into(),
                ..git_sync()
            };
            assert!(render(&fixture(), &with_sync(sync)).is_ok(), "{good}");
        }
    }

    #[test]
    fn default_interval_and_path() {
        let sync = SyncSpec {
            interval: String::new(),
            path: "/".into(),
            ..git_sync()
        };
        let rendered = render(&fixture(), &with_sync(sync)).unwrap();
        let source = find(&rendered.objects, "GitRepository", "flux-system").unwrap();
        assert_eq!(source["spec"]["interval"], json!("1m0s"));
        let kustomization = find(&rendered.objects, "Kustomization", "flux-system").unwrap();
        assert_eq!(kustomization["spec"]["path"], json!("./"));
    }
}
