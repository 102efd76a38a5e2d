//! The inputs `gitlabflux_flux_bootstrap` and the `gitlabflux_flux_manifests` data source
//! share: their schema, and their mapping onto the Flux renderer's options.

use super::support::{boolean, int, object, string, strings};
use crate::flux::render::shards::DEFAULT_KEY;
use crate::flux::{
    DistributionSource, Multitenancy, Patch, PatchKind, Ref, RenderOptions, Scaling, Sharding,
    Size, Storage, SyncKind, SyncSpec, Target, Verify,
};
use crate::tfplug::schema::validators;
use crate::tfplug::{AttrPath, Attribute, DiagResult, Diagnostic, Diagnostics, Nesting, Value};

pub const DEFAULT_VERSION: &str = "2.8.5";

/// Attributes describing what to render (everything but cluster, git_commit and lifecycle).
pub fn render_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("namespace")
            .default("flux-system")
            .requires_replace()
            .description("Namespace Flux runs in."),
        Attribute::object(
            "distribution",
            vec![
                Attribute::string("version").default(DEFAULT_VERSION).description("Flux version."),
                Attribute::string("registry").optional().description("Registry to pull controller images from (a mirror)."),
                Attribute::string("source").optional().description(
                    "Where to read the manifests: a `file://` path or `http(s)://` URL of an install.yaml / \
                     gotk-components.yaml, or an OCI artifact such as `oci://ghcr.io/fluxcd/flux-manifests:v2.8.5` \
                     (a `flux push artifact` of a directory holding one of those files; private registries use the \
                     Docker config's `auths`, loopback registries plain HTTP). Default: the GitHub release asset of `version`.",
                ),
                Attribute::string("sha256").optional().description(
                    "Pin: the SHA-256 of the file, or for `oci://` the artifact's manifest digest (`sha256:<hex>`). \
                     Checked on every load; a mismatch fails the plan.",
                ),
            ],
        )
        .optional()
        .description("The Flux distribution."),
        Attribute::string_list("components").optional().description(
            "Controllers to install. Default: source-, kustomize-, helm- and notification-controller.",
        ),
        Attribute::string_list("components_extra")
            .optional()
            .description("Extra controllers, e.g. image-reflector-controller, image-automation-controller."),
        Attribute::string("cluster_domain").default("cluster.local"),
        Attribute::bool("network_policy").default(true).description("Keep Flux's NetworkPolicies."),
        Attribute::string_list("toleration_keys").optional().description("Taint keys the controllers tolerate."),
        Attribute::string("log_level")
            .default("info")
            .validator(validators::one_of(&["debug", "info", "error"])),
        Attribute::string("image_pull_secret").optional().description("Secret for pulling controller images."),
        Attribute::object(
            "multitenancy",
            vec![
                Attribute::bool("enabled").default(false),
                Attribute::string("default_service_account").optional().description(
                    "Service account Kustomizations and HelmReleases run as when they name none. Default `default`.",
                ),
                Attribute::bool("remove_view_edit_roles").default(false),
                Attribute::bool("restrict_token_requests").default(false),
            ],
        )
        .optional()
        .description("Multi-tenancy lockdown: no cross-namespace references, no remote bases, a default service account."),
        sharding_attribute(),
        scaling_attribute(),
        Attribute::nested(
            "patches",
            Nesting::List,
            vec![
                Attribute::string("patch").required().description("Strategic merge patch (YAML) or JSON6902 operations (YAML list)."),
                Attribute::object(
                    "target",
                    vec![
                        Attribute::string("group").optional(),
                        Attribute::string("version").optional(),
                        Attribute::string("kind").optional(),
                        Attribute::string("name").optional(),
                        Attribute::string("namespace").optional(),
                        Attribute::string("label_selector").optional(),
                    ],
                )
                .optional(),
            ],
        )
        .optional()
        .description("Patches applied to the rendered manifests, last."),
        Attribute::object("sync", sync_attributes())
        .optional()
        .description("The source Flux syncs the cluster from, and the `flux-system` Kustomization."),
    ]
}

/// The source half of a sync: what to fetch and how to trust it.
pub fn source_attributes() -> Vec<Attribute> {
    vec![
        Attribute::string("kind")
            .default("GitRepository")
            .validator(validators::one_of(&["GitRepository", "OCIRepository"])),
        Attribute::string("url").required().description("`https://`, `http://` or `ssh://` for Git, `oci://` for OCI."),
        Attribute::object(
            "ref",
            vec![
                Attribute::string("branch").optional(),
                Attribute::string("tag").optional(),
                Attribute::string("semver").optional(),
                Attribute::string("digest").optional(),
            ],
        )
        .optional()
        .description("One of branch (Git), tag, semver or digest (OCI). Default: branch `main` (Git) or tag `latest` (OCI)."),
        Attribute::string("secret_name").optional().description("Secret with the source credentials."),
        Attribute::object(
            "verify",
            vec![
                Attribute::string("provider").default("cosign").validator(validators::one_of(&["cosign"])),
                Attribute::string("secret_name").required().description("Secret holding the `*.pub` keys."),
            ],
        )
        .optional()
        .description("Signature verification of OCI artifacts."),
    ]
}

fn sync_attributes() -> Vec<Attribute> {
    let mut attributes = source_attributes();
    attributes.extend([
        Attribute::string("path").default("./"),
        Attribute::string("interval").default("1m0s"),
    ]);
    attributes
}

fn sharding_attribute() -> Attribute {
    Attribute::object(
        "sharding",
        vec![
            Attribute::string("key")
                .default(DEFAULT_KEY)
                .description("Label that assigns Flux objects to a shard."),
            Attribute::string_list("shards").required().description(
                "Shard names. Each gets its own source-, kustomize- and helm-controller (and image                  controllers when installed) named `<controller>-<shard>`. A shard is only removed                  once no Flux object carries its label.",
            ),
            Attribute::string("storage")
                .default("ephemeral")
                .validator(validators::one_of(&["ephemeral", "persistent"]))
                .description("Artifact storage of shard source-controllers: `ephemeral` (emptyDir) or `persistent` (a PersistentVolumeClaim `source-controller-<shard>` each)."),
            Attribute::string("storage_size").default("10Gi").description("Size of each shard's claim with `persistent` storage."),
            Attribute::string("storage_class").optional().description("StorageClass of the claims. Default: the cluster's default class."),
        ],
    )
    .optional()
    .description("Flux horizontal sharding: controllers per shard, selected by a label on Flux objects.")
}

fn scaling_attribute() -> Attribute {
    Attribute::object(
        "scaling",
        vec![
            Attribute::string("size")
                .optional()
                .validator(validators::one_of(&Size::NAMES))
                .description(
                    "Flux Operator cluster-size preset: `small` (5 workers, 512Mi), `medium` (10, 1Gi)                      or `large` (20, 3Gi), with the operator's exact flags and resources.",
                ),
            Attribute::number("concurrent").optional().validator(validators::int_between(1, 100_000)).description("`--concurrent` of source-, kustomize- and helm-controller."),
            Attribute::string("requeue_dependency").optional().description("`--requeue-dependency`, e.g. `5s`."),
            Attribute::number("kube_api_qps").optional().validator(validators::int_between(1, 100_000)).description("`--kube-api-qps` of every controller (Flux default 50)."),
            Attribute::number("kube_api_burst").optional().validator(validators::int_between(1, 100_000)).description("`--kube-api-burst` of every controller (Flux default 300)."),
            Attribute::string("cpu_limit").optional().description("CPU limit of source-, kustomize- and helm-controller, e.g. `2000m`."),
            Attribute::string("memory_limit").optional().description("Memory limit of source-, kustomize- and helm-controller, e.g. `2Gi`."),
            Attribute::bool("in_memory_builds")
                .default(false)
                .description("Back kustomize-controller's `/tmp` with memory (emptyDir `medium: Memory`); it counts against the memory limit."),
        ],
    )
    .optional()
    .description("Vertical scaling of the controllers; explicit values override the `size` preset.")
}

/// Where the distribution comes from.
pub fn distribution_source(config: &Value) -> DistributionSource {
    let d = object(config, "distribution");
    let version = d
        .and_then(|d| string(d, "version"))
        .unwrap_or_else(|| DEFAULT_VERSION.to_string());
    DistributionSource {
        url: d.and_then(|d| string(d, "source")).unwrap_or_else(|| {
            format!("https://github.com/fluxcd/flux2/releases/download/v{version}/install.yaml")
        }),
        sha256: d.and_then(|d| string(d, "sha256")),
    }
}

/// Maps the configuration onto the renderer's options.
pub fn render_options(config: &Value) -> DiagResult<RenderOptions> {
    let mut diags = Diagnostics::new();
    // None given is the renderer's default set.
    let components = strings(config, "components");
    let multitenancy =
        object(config, "multitenancy").map_or_else(Multitenancy::default, |m| Multitenancy {
            enabled: boolean(m, "enabled").unwrap_or(false),
            default_service_account: string(m, "default_service_account"),
            remove_view_edit_roles: boolean(m, "remove_view_edit_roles").unwrap_or(false),
            restrict_token_requests: boolean(m, "restrict_token_requests").unwrap_or(false),
        });
    let sync = object(config, "sync").map(|s| source_spec(s, "sync", &mut diags));
    let patches = config
        .get_attr("patches")
        .and_then(Value::as_list)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| patch(p, i, &mut diags))
        .collect();
    diags.into_result()?;
    Ok(RenderOptions {
        namespace: string(config, "namespace").unwrap_or_else(|| "flux-system".into()),
        components,
        components_extra: strings(config, "components_extra"),
        registry: object(config, "distribution").and_then(|d| string(d, "registry")),
        image_pull_secret: string(config, "image_pull_secret"),
        toleration_keys: strings(config, "toleration_keys"),
        log_level: string(config, "log_level"),
        cluster_domain: string(config, "cluster_domain"),
        network_policy: boolean(config, "network_policy").unwrap_or(true),
        multitenancy,
        scaling: object(config, "scaling").map(scaling),
        sharding: object(config, "sharding").map(sharding),
        sync: sync.flatten(),
        patches,
    })
}

fn scaling(s: &Value) -> Scaling {
    Scaling {
        size: string(s, "size").as_deref().and_then(Size::parse),
        concurrent: int(s, "concurrent"),
        requeue_dependency: string(s, "requeue_dependency"),
        kube_api_qps: int(s, "kube_api_qps"),
        kube_api_burst: int(s, "kube_api_burst"),
        cpu_limit: string(s, "cpu_limit"),
        memory_limit: string(s, "memory_limit"),
        in_memory_builds: boolean(s, "in_memory_builds").unwrap_or(false),
    }
}

fn sharding(s: &Value) -> Sharding {
    let storage = match string(s, "storage").as_deref() {
        Some("persistent") => Storage::Persistent {
            size: string(s, "storage_size").unwrap_or_else(|| "10Gi".into()),
            class: string(s, "storage_class"),
        },
        _ => Storage::Ephemeral,
    };
    Sharding {
        key: string(s, "key").unwrap_or_else(|| DEFAULT_KEY.into()),
        shards: strings(s, "shards"),
        storage,
    }
}

/// Maps a `source_attributes` object (plus `path`/`interval` when it has them) at
/// `attribute` onto a sync spec.
pub fn source_spec(s: &Value, attribute: &str, diags: &mut Diagnostics) -> Option<SyncSpec> {
    let path = AttrPath::root().attr(attribute);
    let r = object(s, "ref");
    let refs: Vec<Ref> = [
        r.and_then(|r| string(r, "branch")).map(Ref::Branch),
        r.and_then(|r| string(r, "tag")).map(Ref::Tag),
        r.and_then(|r| string(r, "semver")).map(Ref::Semver),
        r.and_then(|r| string(r, "digest")).map(Ref::Digest),
    ]
    .into_iter()
    .flatten()
    .collect();
    if refs.len() > 1 {
        diags.error_at(
            path.clone().attr("ref"),
            "Ambiguous reference",
            format!("Set only one of {attribute}.ref.branch, tag, semver or digest."),
        );
        return None;
    }
    let kind = match string(s, "kind").as_deref() {
        Some("OCIRepository") => SyncKind::OciRepository,
        _ => SyncKind::GitRepository,
    };
    let reference = refs.into_iter().next().unwrap_or_else(|| match kind {
        SyncKind::OciRepository => Ref::Tag("latest".into()),
        SyncKind::GitRepository => Ref::Branch("main".into()),
    });
    Some(SyncSpec {
        kind,
        url: string(s, "url").unwrap_or_default(),
        reference,
        path: string(s, "path").unwrap_or_else(|| "./".into()),
        interval: string(s, "interval").unwrap_or_else(|| "1m0s".into()),
        secret_name: string(s, "secret_name"),
        verify: object(s, "verify").map(|v| Verify {
            provider: string(v, "provider").unwrap_or_else(|| "cosign".into()),
            secret_name: string(v, "secret_name").unwrap_or_default(),
        }),
    })
}

fn patch(p: &Value, index: usize, diags: &mut Diagnostics) -> Option<Patch> {
    let path = AttrPath::root()
        .attr("patches")
        .index(index as i64)
        .attr("patch");
    let text = string(p, "patch")?;
    let parsed: serde_json::Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    "Malformed patch",
                    format!("The patch is not valid YAML or JSON: {e}"),
                )
                .at(path),
            );
            return None;
        }
    };
    let kind = match parsed {
        serde_json::Value::Array(ops) => PatchKind::Json6902(ops),
        serde_json::Value::Object(_) => PatchKind::StrategicMerge(parsed),
        _ => {
            diags.error_at(
                path,
                "Malformed patch",
                "A patch is a YAML/JSON object (strategic merge) or a list of JSON6902 operations.",
            );
            return None;
        }
    };
    let target = object(p, "target").map(|t| Target {
        group: string(t, "group"),
        version: string(t, "version"),
        kind: string(t, "kind"),
        name: string(t, "name"),
        namespace: string(t, "namespace"),
        label_selector: string(t, "label_selector"),
    });
    Some(Patch {
        kind,
        target: target.unwrap_or_default(),
    })
}
