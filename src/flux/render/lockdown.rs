//! Multi-tenancy lockdown, exactly as DESIGN.md section 4 lists it (after the Flux
//! multi-tenancy guide): tenants must not reach across namespaces or pull remote bases, and
//! reconcile as their own service account unless they name one.
//!
//! The optional hardening (`remove_view_edit_roles`, `restrict_token_requests`) is applied
//! whenever it is set, independently of `enabled`: a user who asks for it gets it.

use serde_json::Value;

use super::options::RenderOptions;
use super::stage::{Stage, for_each_manager_args};
use crate::flux::error::FluxError;
use crate::flux::manifest;
use crate::kube::syntax::is_dns_subdomain;

/// Controllers that understand `--no-cross-namespace-refs`.
pub const NO_CROSS_NAMESPACE_REFS: [&str; 6] = [
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher",
];

/// Controllers that impersonate a service account when reconciling.
pub const DEFAULT_SERVICE_ACCOUNT: [&str; 2] = ["kustomize-controller", "helm-controller"];

const DEFAULT_SA: &str = "default";

pub fn apply(stage: &mut Stage, options: &RenderOptions) -> Result<(), FluxError> {
    let tenancy = &options.multitenancy;
    if tenancy.enabled {
        let account = tenancy
            .default_service_account
            .as_deref()
            .unwrap_or(DEFAULT_SA);
        if !is_dns_subdomain(account) {
            return Err(FluxError::InvalidOption {
                attribute: "multitenancy.default_service_account",
                message: format!("{account:?} is not a valid ServiceAccount name"),
            });
        }
        for_each_manager_args(stage, |component, args| {
            lock_flags(component, args, account)
        });
    }
    if tenancy.remove_view_edit_roles {
        stage.components.retain(|object| !is_view_edit_role(object));
    }
    if tenancy.restrict_token_requests {
        stage
            .components
            .iter_mut()
            .filter(|object| is_crd_controller_role(object))
            .for_each(drop_token_requests);
    }
    Ok(())
}

fn lock_flags(component: &str, args: &mut Vec<Value>, account: &str) {
    if NO_CROSS_NAMESPACE_REFS.contains(&component) {
        manifest::set_flag(args, "--no-cross-namespace-refs", "true");
    }
    if component == "kustomize-controller" {
        manifest::set_flag(args, "--no-remote-bases", "true");
    }
    if DEFAULT_SERVICE_ACCOUNT.contains(&component) {
        manifest::set_flag(args, "--default-service-account", account);
    }
}

fn is_view_edit_role(object: &Value) -> bool {
    let name = manifest::name(object);
    manifest::kind(object) == "ClusterRole"
        && (name.starts_with("flux-view-") || name.starts_with("flux-edit-"))
}

fn is_crd_controller_role(object: &Value) -> bool {
    manifest::kind(object) == "ClusterRole" && manifest::name(object).starts_with("crd-controller-")
}

/// Removes `serviceaccounts/token` from every rule, and rules left with no resources (a
/// rule naming only that resource would otherwise grant on nothing, or on everything if an
/// empty list were read as "all").
fn drop_token_requests(role: &mut Value) {
    let Some(rules) = role.get_mut("rules").and_then(Value::as_array_mut) else {
        return;
    };
    rules.retain_mut(|rule| {
        let Some(resources) = rule.get_mut("resources").and_then(Value::as_array_mut) else {
            return true;
        };
        resources.retain(|r| r.as_str() != Some("serviceaccounts/token"));
        !resources.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::render::{Multitenancy, render};
    use crate::flux::testutil::{deployment_args, find, fixture, fixture_with_extras, git_sync};
    use serde_json::json;

    const EVENTS: &str =
        "--events-addr=http://notification-controller.$(RUNTIME_NAMESPACE).svc.cluster.local./";

    fn locked(tenancy: Multitenancy) -> RenderOptions {
        RenderOptions {
            multitenancy: tenancy,
            ..RenderOptions::default()
        }
    }

    fn enabled() -> Multitenancy {
        Multitenancy {
            enabled: true,
            ..Multitenancy::default()
        }
    }

    #[test]
    fn lockdown_flags_exact_per_controller() {
        let rendered = render(&fixture(), &locked(enabled())).unwrap();
        let args = |name| deployment_args(&rendered.objects, name);
        assert_eq!(
            args("kustomize-controller"),
            vec![
                EVENTS,
                "--watch-all-namespaces=true",
                "--log-level=info",
                "--log-encoding=json",
                "--enable-leader-election",
                "--no-cross-namespace-refs=true",
                "--no-remote-bases=true",
                "--default-service-account=default",
            ]
        );
        assert_eq!(
            args("helm-controller"),
            vec![
                EVENTS,
                "--watch-all-namespaces=true",
                "--log-level=info",
                "--log-encoding=json",
                "--enable-leader-election",
                "--no-cross-namespace-refs=true",
                "--default-service-account=default",
            ]
        );
        assert_eq!(
            args("notification-controller"),
            vec![
                "--watch-all-namespaces=true",
                "--log-level=info",
                "--log-encoding=json",
                "--enable-leader-election",
                "--no-cross-namespace-refs=true",
            ]
        );
        assert_eq!(
            args("source-controller"),
            vec![
                EVENTS,
                "--watch-all-namespaces=true",
                "--log-level=info",
                "--log-encoding=json",
                "--enable-leader-election",
                "--storage-path=/data",
                "--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local.",
            ]
        );
    }

    #[test]
    fn lockdown_replaces_instead_of_duplicating() {
        let options = RenderOptions {
            multitenancy: Multitenancy {
                enabled: true,
                default_service_account: Some("tenant-reconciler".into()),
                ..Multitenancy::default()
            },
            patches: Vec::new(),
            ..RenderOptions::default()
        };
        // Start from a distribution that already carries the flags with other values.
        let mut text = fixture().manifests;
        text = text.replace(
            "        - --enable-leader-election\n",
            "        - --enable-leader-election\n        - --no-cross-namespace-refs=false\n        - --default-service-account=x\n",
        );
        let distribution = crate::flux::Distribution::from_manifests(text).unwrap();
        let rendered = render(&distribution, &options).unwrap();
        let args = deployment_args(&rendered.objects, "helm-controller");
        assert_eq!(
            args[5..],
            [
                "--no-cross-namespace-refs=true",
                "--default-service-account=tenant-reconciler"
            ]
        );
        // source-controller does not support the flag: what the distribution had stays.
        let source = deployment_args(&rendered.objects, "source-controller");
        assert!(source.contains(&"--no-cross-namespace-refs=false".to_string()));
    }

    #[test]
    fn lockdown_covers_the_extra_controllers() {
        let options = RenderOptions {
            components_extra: vec![
                "image-reflector-controller".into(),
                "image-automation-controller".into(),
                "source-watcher".into(),
            ],
            ..locked(enabled())
        };
        let rendered = render(&fixture_with_extras(), &options).unwrap();
        for name in &options.components_extra {
            let args = deployment_args(&rendered.objects, name);
            assert!(
                args.contains(&"--no-cross-namespace-refs=true".to_string()),
                "{name}"
            );
            assert!(
                !args
                    .iter()
                    .any(|a| a.starts_with("--default-service-account")),
                "{name}"
            );
            assert!(
                !args.iter().any(|a| a.starts_with("--no-remote-bases")),
                "{name}"
            );
        }
    }

    #[test]
    fn sync_kustomization_runs_as_kustomize_controller_under_lockdown() {
        let options = RenderOptions {
            sync: Some(git_sync()),
            ..locked(enabled())
        };
        let rendered = render(&fixture(), &options).unwrap();
        let kustomization = find(&rendered.objects, "Kustomization", "flux-system").unwrap();
        assert_eq!(
            kustomization["spec"]["serviceAccountName"],
            json!("kustomize-controller")
        );
    }

    #[test]
    fn removes_view_and_edit_roles() {
        let rendered = render(
            &fixture(),
            &locked(Multitenancy {
                remove_view_edit_roles: true,
                ..Multitenancy::default()
            }),
        )
        .unwrap();
        assert!(find(&rendered.objects, "ClusterRole", "flux-view-flux-system").is_none());
        assert!(find(&rendered.objects, "ClusterRole", "flux-edit-flux-system").is_none());
        assert!(
            find(
                &rendered.objects,
                "ClusterRole",
                "crd-controller-flux-system"
            )
            .is_some()
        );
        // Not enabled: no flags.
        let args = deployment_args(&rendered.objects, "kustomize-controller");
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--no-cross-namespace-refs"))
        );
    }

    #[test]
    fn restricts_token_requests() {
        let role_rules = |rendered: &crate::flux::render::Rendered| {
            find(
                &rendered.objects,
                "ClusterRole",
                "crd-controller-flux-system",
            )
            .unwrap()["rules"]
                .as_array()
                .unwrap()
                .clone()
        };
        let open = render(&fixture(), &RenderOptions::default()).unwrap();
        let restricted = render(
            &fixture(),
            &locked(Multitenancy {
                enabled: true,
                restrict_token_requests: true,
                ..Multitenancy::default()
            }),
        )
        .unwrap();
        let token_rule = json!({
            "apiGroups": [""],
            "resources": ["serviceaccounts/token"],
            "verbs": ["create"],
        });
        assert!(role_rules(&open).contains(&token_rule));
        assert!(!role_rules(&restricted).contains(&token_rule));
        assert_eq!(role_rules(&restricted).len(), role_rules(&open).len() - 1);
        assert!(!restricted.files["gotk-components.yaml"].contains("serviceaccounts/token"));
    }

    #[test]
    fn rejects_bad_service_account() {
        let err = render(
            &fixture(),
            &locked(Multitenancy {
                enabled: true,
                default_service_account: Some("Not Valid".into()),
                ..Multitenancy::default()
            }),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            FluxError::InvalidOption {
                attribute: "multitenancy.default_service_account",
                ..
            }
        ));
    }
}
