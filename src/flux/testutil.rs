//! Shared test helpers: the v2.8.5 fixture and lookups into rendered objects.

use serde_json::Value;

use super::manifest;
use super::render::{Ref, SyncKind, SyncSpec};
use super::source::Distribution;

/// A real `flux bootstrap` output, read in place: it is never copied into the repository.
pub const FIXTURE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/flux/v2.8.5/gotk-components.yaml"
);

pub const SYNC_FIXTURE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/flux/v2.8.5/gotk-sync.yaml"
);

pub fn fixture_text() -> String {
    std::fs::read_to_string(FIXTURE_PATH).expect("the Flux v2.8.5 fixture is readable")
}

pub fn fixture() -> Distribution {
    Distribution::from_manifests(fixture_text()).expect("the fixture parses")
}

/// The fixture plus the three optional controllers, cloned from helm-controller the way the
/// release install.yaml ships them (bootstrap output only holds the selected ones).
pub fn fixture_with_extras() -> Distribution {
    let objects = manifest::parse_documents(&fixture_text()).expect("the fixture parses");
    let helm: Vec<Value> = objects
        .iter()
        .filter(|o| manifest::component(o) == Some("helm-controller"))
        .filter(|o| matches!(manifest::kind(o), "ServiceAccount" | "Deployment"))
        .cloned()
        .collect();
    let mut text = fixture_text();
    for extra in [
        "image-reflector-controller",
        "image-automation-controller",
        "source-watcher",
    ] {
        let cloned: Vec<Value> = helm
            .iter()
            .map(|o| {
                let yaml = serde_json::to_string(o).expect("serialisable");
                serde_json::from_str(&yaml.replace("helm-controller", extra)).expect("valid")
            })
            .collect();
        text.push_str(&manifest::to_documents(&cloned).expect("serialisable"));
    }
    Distribution::from_manifests(text).expect("the extended fixture parses")
}

pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| manifest::kind(o) == kind && manifest::name(o) == name)
}

/// The manager args of a Deployment, as strings.
pub fn deployment_args(objects: &[Value], name: &str) -> Vec<String> {
    let deployment = find(objects, "Deployment", name).expect("deployment present");
    deployment
        .pointer("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array)
        .expect("args present")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

pub fn pod_spec<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    find(objects, "Deployment", name)
        .and_then(|d| d.pointer("/spec/template/spec"))
        .expect("pod spec present")
}

/// The sync of the fixture's gotk-sync.yaml.
pub fn git_sync() -> SyncSpec {
    SyncSpec {
        kind: SyncKind::GitRepository,
        url: "https://github.com/ethanellison/talos-homelab-apps".into(),
        reference: Ref::Branch("main".into()),
        path: "clusters/staging".into(),
        interval: "1m0s".into(),
        secret_name: Some("flux-system".into()),
        verify: None,
    }
}
