//! Tests of the apply engine against the in-process sandbox, with the real Flux v2.8.5
//! `flux bootstrap` output as the manifest set.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use ::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::kube::settings::ClusterSettings;
use crate::kube::{APPLIED_LABEL, KubeClient, KubeError};
use crate::sandbox::{Sandbox, SandboxOptions};

const FLUX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/flux/v2.8.5/"
);

fn documents(file: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(format!("{FLUX}{file}")).expect("fixture");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(Value::deserialize)
        .collect::<Result<Vec<_>, _>>()
        .expect("fixture YAML")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// gotk-components + gotk-sync: what `flux bootstrap` applies.
fn fixture() -> Vec<Value> {
    let mut objects = documents("gotk-components.yaml");
    objects.extend(documents("gotk-sync.yaml"));
    objects
}

async fn sandbox(simulate_controllers: bool) -> Sandbox {
    Sandbox::start(SandboxOptions {
        simulate_controllers,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

async fn client(sb: &Sandbox) -> KubeClient {
    let settings = ClusterSettings {
        config_path: Some(sb.info.kubeconfig.clone()),
        ..ClusterSettings::default()
    };
    KubeClient::connect(&settings, CancellationToken::new())
        .await
        .expect("connects")
}

fn options(wait: bool, timeout: Duration) -> ApplyOptions {
    ApplyOptions {
        force: false,
        wait,
        timeout,
        concurrency: 8,
    }
}

/// inventory id → resourceVersion of every object in the emulator.
fn versions(sb: &Sandbox) -> BTreeMap<String, String> {
    sb.kube
        .objects()
        .iter()
        .filter_map(|o| {
            let id = inventory_id(o)?;
            Some((id, o["metadata"]["resourceVersion"].as_str()?.to_string()))
        })
        .collect()
}

/// Kubernetes requests the sandbox has served since the last reset.
fn kube_requests(sb: &Sandbox) -> u64 {
    let snapshot = sb.stats.snapshot();
    snapshot["kube"]
        .as_object()
        .map_or(0, |routes| routes.values().filter_map(Value::as_u64).sum())
}

fn live_ids(sb: &Sandbox) -> Vec<String> {
    sb.kube.objects().iter().filter_map(inventory_id).collect()
}

fn expected_inventory(objects: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = objects.iter().filter_map(inventory_id).collect();
    ids.sort();
    ids
}

#[test]
fn inventory_ids_round_trip() {
    let d = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": { "name": "web", "namespace": "prod" } });
    let id = inventory_id(&d).expect("id");
    assert_eq!(id, "apps/v1/Deployment/prod/web");
    assert_eq!(
        parse_inventory_id(&id),
        Some(ObjRef::new("apps/v1", "Deployment", Some("prod"), "web"))
    );
    let ns = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "x" } });
    let id = inventory_id(&ns).expect("id");
    assert_eq!(id, "v1/Namespace/_/x");
    assert_eq!(
        parse_inventory_id(&id),
        Some(ObjRef::new("v1", "Namespace", None, "x"))
    );
    assert_eq!(parse_inventory_id("Namespace/_/x"), None);
    assert_eq!(inventory_id(&json!({ "kind": "Namespace" })), None);
}

#[test]
fn errors_explain_themselves() {
    let e = EngineError::Timeout {
        waiting_for: vec!["Deployment a/b: not Available".into()],
    };
    assert!(e.summary().contains("1 object"));
    assert!(e.detail().contains("Deployment a/b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_the_flux_fixture_in_order_and_reapply_is_a_no_op() {
    let sb = sandbox(false).await;
    let kube = client(&sb).await;
    let objects = fixture();
    sb.stats.reset();
    let started = Instant::now();
    let inventory = apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("apply");
    println!(
        "apply_all of the Flux fixture ({} objects): {:?}, {} Kubernetes requests",
        objects.len(),
        started.elapsed(),
        kube_requests(&sb)
    );
    assert_eq!(inventory, expected_inventory(&objects));
    assert!(
        inventory.windows(2).all(|w| w[0] < w[1]),
        "sorted and unique"
    );
    let live = live_ids(&sb);
    assert!(
        inventory.iter().all(|id| live.contains(id)),
        "every object is stored"
    );
    // CRDs were created before any custom resource: lower resourceVersions.
    let rv = versions(&sb);
    let number = |id: &String| rv[id].parse::<u64>().expect("numeric resourceVersion");
    let last_crd = inventory
        .iter()
        .filter(|id| id.contains("/CustomResourceDefinition/"))
        .map(number)
        .max()
        .expect("CRDs applied");
    let first_cr = inventory
        .iter()
        .filter(|id| id.contains(".toolkit.fluxcd.io/"))
        .map(number)
        .min()
        .expect("custom resources applied");
    assert!(
        last_crd < first_cr,
        "CRDs ({last_crd}) before custom resources ({first_cr})"
    );

    let before = versions(&sb);
    sb.stats.reset();
    let started = Instant::now();
    let again = apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("re-apply");
    println!(
        "re-apply (no-op) of the Flux fixture: {:?}, {} Kubernetes requests",
        started.elapsed(),
        kube_requests(&sb)
    );
    assert_eq!(again, inventory);
    assert_eq!(versions(&sb), before, "re-apply changed nothing");
}

/// Callers hand over objects in any order (the renderer keeps the order of its files): the
/// engine alone puts CRDs and Namespaces first. Reversed, the fixture starts with custom
/// resources and ends with its Namespace; one request at a time makes the input order count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_order_is_the_engines_whatever_the_input_order() {
    let sb = sandbox(false).await;
    let kube = client(&sb).await;
    let mut objects = fixture();
    objects.reverse();
    let sequential = ApplyOptions {
        concurrency: 1,
        ..options(false, Duration::from_secs(30))
    };
    let inventory = apply_all(&kube, &objects, &sequential)
        .await
        .expect("apply");
    assert_eq!(inventory, expected_inventory(&objects));
    let rv = versions(&sb);
    let number = |id: &String| rv[id].parse::<u64>().expect("numeric resourceVersion");
    let first =
        |id: &&String| id.contains("/CustomResourceDefinition/") || id.starts_with("v1/Namespace/");
    let last_first = inventory
        .iter()
        .filter(first)
        .map(number)
        .max()
        .expect("CRDs and Namespace");
    let first_rest = inventory
        .iter()
        .filter(|id| !first(id))
        .map(number)
        .min()
        .expect("other objects");
    assert!(
        last_first < first_rest,
        "CRDs and Namespaces ({last_first}) before everything else ({first_rest})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_flux_to_become_ready() {
    let sb = sandbox(true).await;
    let kube = client(&sb).await;
    let started = Instant::now();
    apply_all(&kube, &fixture(), &options(true, Duration::from_secs(30)))
        .await
        .expect("apply and wait");
    println!(
        "apply_all + wait of the Flux fixture with simulated controllers: {:?}",
        started.elapsed()
    );
    let r = ObjRef::new(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        Some("flux-system"),
        "flux-system",
    );
    let k = kube.get(&r).await.expect("get").expect("exists");
    assert_eq!(k["status"]["conditions"][0]["status"], "True");
    let d = ObjRef::new(
        "apps/v1",
        "Deployment",
        Some("flux-system"),
        "source-controller",
    );
    let d = kube.get(&d).await.expect("get").expect("exists");
    assert_eq!(d["status"]["availableReplicas"], 1);
}

fn broken_deployment() -> Vec<Value> {
    vec![
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "broken" } }),
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "agent", "namespace": "broken" },
                "spec": { "selector": { "matchLabels": { "app": "agent" } },
                          "template": { "metadata": { "labels": { "app": "agent" } },
                                        "spec": { "containers": [{ "name": "agent", "image": "agentk" }],
                                                  "volumes": [{ "name": "token", "secret": { "secretName": "missing" } }] } } } }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_naming_the_stuck_deployment() {
    let sb = sandbox(true).await;
    let kube = client(&sb).await;
    let started = Instant::now();
    let err = apply_all(
        &kube,
        &broken_deployment(),
        &options(true, Duration::from_secs(2)),
    )
    .await
    .expect_err("cannot become available");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeout"
    );
    let EngineError::Timeout { waiting_for } = &err else {
        panic!("not a timeout: {err}");
    };
    assert_eq!(waiting_for.len(), 1, "{waiting_for:?}");
    assert!(
        waiting_for[0].contains("Deployment broken/agent"),
        "{waiting_for:?}"
    );
    assert!(
        waiting_for[0].contains("Secret"),
        "says why: {waiting_for:?}"
    );
    assert!(err.detail().contains("Deployment broken/agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_what_left_the_set() {
    let sb = sandbox(false).await;
    let kube = client(&sb).await;
    let mut objects = fixture();
    let previous = apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("apply");
    let dropped = "networking.k8s.io/v1/NetworkPolicy/flux-system/allow-webhooks";
    objects.retain(|o| inventory_id(o).as_deref() != Some(dropped));
    let current = apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("re-apply");
    assert_eq!(current.len() + 1, previous.len());
    let pruned = prune(&kube, &previous, &current).await.expect("prune");
    assert_eq!(pruned, vec![dropped.to_string()]);
    let live = live_ids(&sb);
    assert!(!live.iter().any(|id| id == dropped), "pruned");
    assert!(current.iter().all(|id| live.contains(id)), "the rest stays");
    assert_eq!(
        prune(&kube, &current, &current).await.expect("no-op"),
        Vec::<String>::new()
    );
    assert!(matches!(
        prune(&kube, &["nonsense".to_string()], &[]).await,
        Err(EngineError::InventoryId { .. })
    ));
}

fn dynamic(
    kube: &KubeClient,
    group: &str,
    version: &str,
    kind: &str,
    namespace: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(kube.raw().clone(), namespace, &resource)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_detects_deletion_and_edits() {
    let sb = sandbox(false).await;
    let kube = client(&sb).await;
    let objects = fixture();
    apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("apply");
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );

    let deleted = ObjRef::new(
        "apps/v1",
        "Deployment",
        Some("flux-system"),
        "helm-controller",
    );
    kube.delete(&deleted).await.expect("delete");
    let deployments = dynamic(&kube, "apps", "v1", "Deployment", "flux-system");
    let mut edited = deployments.get("kustomize-controller").await.expect("get");
    edited.data["spec"]["template"]["spec"]["containers"][0]["args"][0] =
        json!("--watch-all-namespaces=false");
    let params = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    let patch = json!({ "spec": edited.data["spec"].clone() });
    deployments
        .patch("kustomize-controller", &params, &Patch::Merge(&patch))
        .await
        .expect("edit");

    let drifted = drift(&kube, &objects).await.expect("drift");
    assert_eq!(
        drifted,
        vec![
            "apps/v1/Deployment/flux-system/helm-controller".to_string(),
            "apps/v1/Deployment/flux-system/kustomize-controller".to_string(),
        ]
    );
}

/// An owner's single object edited is drifted (the next apply repairs it); deleted, or
/// deleted and made again by another manager, it is gone: the owner plans a create, whose
/// claim refuses what it did not make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_object_is_drifted_and_one_remade_by_another_is_gone() {
    let sb = sandbox(false).await;
    let kube = client(&sb).await;
    let config = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "owned", "namespace": "default" },
        "data": { "key": "ours" },
    });
    let objects = vec![config.clone()];
    apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("apply");
    assert_eq!(
        observe(&kube, &objects).await.expect("observe"),
        Observed::InSync
    );

    let mut edited = config.clone();
    edited["data"]["key"] = json!("edited");
    kube.apply_as(&edited, "kubectl-edit", true)
        .await
        .expect("edit");
    assert_eq!(
        observe(&kube, &objects).await.expect("observe"),
        Observed::Drifted
    );

    let r = ObjRef::of(&config).expect("ref");
    kube.delete(&r).await.expect("delete");
    assert_eq!(
        observe(&kube, &objects).await.expect("observe"),
        Observed::Gone
    );
    kube.apply_as(&edited, "someone-else", true)
        .await
        .expect("remade");
    assert_eq!(
        observe(&kube, &objects).await.expect("observe"),
        Observed::Gone
    );
}

/// Requests to object routes (not discovery) by method, from the sandbox's stats.
fn object_requests(sb: &Sandbox) -> BTreeMap<String, u64> {
    let stats = sb.stats.snapshot();
    stats["kube"]
        .as_object()
        .map(|routes| {
            routes
                .iter()
                .filter(|(route, _)| route.contains("{resource}"))
                .map(|(route, n)| (route.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The Flux fixture, applied to `sb` without waiting for readiness.
async fn applied_fixture(sb: &Sandbox) -> Vec<Value> {
    let objects = fixture();
    apply_all(
        &client(sb).await,
        &objects,
        &options(false, Duration::from_secs(30)),
    )
    .await
    .expect("apply");
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_reads_each_kind_once_and_still_finds_every_object() {
    let sb = sandbox(false).await;
    let objects = applied_fixture(&sb).await;
    let kinds: std::collections::BTreeSet<(String, String)> = objects
        .iter()
        .map(|o| (o["apiVersion"].to_string(), o["kind"].to_string()))
        .collect();

    // A new connection, as a plan's provider process has: two owners of half the objects
    // each, refreshing at once, share one list per kind.
    let kube = client(&sb).await;
    sb.stats.reset();
    let half = |parity: usize| -> Vec<Value> {
        objects
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, o)| o.clone())
            .collect()
    };
    let (odd, even) = (half(1), half(0));
    let (first, second) = tokio::join!(drift(&kube, &odd), drift(&kube, &even));
    assert_eq!(first.expect("drift"), Vec::<String>::new());
    assert_eq!(second.expect("drift"), Vec::<String>::new());
    let requests = object_requests(&sb);
    let total: u64 = requests.values().sum();
    assert!(
        total <= kinds.len() as u64,
        "{total} requests for {} kinds: {requests:?}",
        kinds.len()
    );
    assert!(
        requests.keys().all(|route| route.starts_with("GET ")),
        "{requests:?}"
    );

    // An object whose label was edited away is read on its own, and is not drift: the
    // manifest never set that label.
    let deployments = dynamic(&kube, "apps", "v1", "Deployment", "flux-system");
    let unlabel = json!({ "metadata": { "labels": { APPLIED_LABEL.0: null } } });
    deployments
        .patch(
            "source-controller",
            &PatchParams::default(),
            &Patch::Merge(&unlabel),
        )
        .await
        .expect("unlabel");
    let kube = client(&sb).await;
    sb.stats.reset();
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );
    let singles = object_requests(&sb)
        .get("GET /apis/{group}/{version}/namespaces/{namespace}/{resource}/{name}")
        .copied();
    assert_eq!(singles, Some(1), "the one unlabelled object");
}

/// An owner that reads ahead with its inventory finds every list kept when it compares: the
/// render it compares is then never held across a network wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_reading_ahead_a_compare_sends_nothing() {
    let sb = sandbox(false).await;
    let objects = applied_fixture(&sb).await;
    let inventory: Vec<String> = objects.iter().filter_map(inventory_id).collect();

    let kube = client(&sb).await;
    sb.stats.reset();
    let refs = inventory.iter().filter_map(|id| parse_inventory_id(id));
    read_ahead(&kube, refs).await.expect("read ahead");
    let ahead = object_requests(&sb);
    assert!(!ahead.is_empty());
    assert!(
        ahead
            .keys()
            .all(|route| route.starts_with("GET ") && !route.ends_with("{name}")),
        "lists only: {ahead:?}"
    );

    sb.stats.reset();
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );
    assert_eq!(object_requests(&sb), BTreeMap::new());
}

fn crd_ref(name: &str) -> ObjRef {
    ObjRef::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        name,
    )
}

/// The CRDs of the fixture, as ids.
fn crd_ids(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .filter_map(inventory_id)
        .filter(|id| id.contains("/CustomResourceDefinition/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_judged_by_their_fingerprint_and_edits_still_show() {
    use super::fingerprint::{DIGEST_ANNOTATION, GENERATION_ANNOTATION, digest};
    use crate::kube::{Seen, Shape};
    let sb = sandbox(false).await;
    let objects = fixture();
    let kube = client(&sb).await;
    apply_all(&kube, &objects, &options(false, Duration::from_secs(30)))
        .await
        .expect("apply");
    let crds = crd_ids(&objects);
    assert!(crds.len() > 10, "{crds:?}");

    // Every CRD carries the digest of its manifest and the generation the apply left.
    let gitrepos = crd_ref("gitrepositories.source.toolkit.fluxcd.io");
    let live = kube.get(&gitrepos).await.expect("get").expect("stored");
    let want = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "gitrepositories.source.toolkit.fluxcd.io")
        .expect("in the fixture");
    let annotations = &live["metadata"]["annotations"];
    assert_eq!(annotations[DIGEST_ANNOTATION], json!(digest(want)));
    assert_eq!(
        annotations[GENERATION_ANNOTATION],
        json!(live["metadata"]["generation"].to_string())
    );

    // A refresh reads CRDs by metadata only, and finds them in sync.
    let kube = client(&sb).await;
    let seen = kube
        .seen_for_refresh(&gitrepos, Shape::Metadata)
        .await
        .expect("read")
        .expect("found");
    assert!(
        matches!(&seen, Seen::Metadata(m) if m.get("spec").is_none()),
        "{seen:?}"
    );
    let kube = client(&sb).await;
    sb.stats.reset();
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );
    const GROUP_LISTS: &str = "GET /apis/{group}/{version}/{resource}";
    let group_lists = object_requests(&sb).get(GROUP_LISTS).copied().unwrap_or(0);

    // Edits under other managers: a spec field the manifest sets (the server bumps the
    // generation), a label the manifest sets, and a spec field only the editor sets (the
    // generation moves too, but the whole object shows it is no drift).
    let crd_api = |kube: &KubeClient| -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        ));
        Api::all_with(kube.raw().clone(), &resource)
    };
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    let api = crd_api(&kube);
    api.patch(
        "gitrepositories.source.toolkit.fluxcd.io",
        &edit,
        &Patch::Merge(&json!({ "spec": { "names": { "shortNames": ["edited"] } } })),
    )
    .await
    .expect("edit spec");
    api.patch(
        "buckets.source.toolkit.fluxcd.io",
        &edit,
        &Patch::Merge(
            &json!({ "metadata": { "labels": { "app.kubernetes.io/part-of": "other" } } }),
        ),
    )
    .await
    .expect("edit label");
    api.patch(
        "helmcharts.source.toolkit.fluxcd.io",
        &edit,
        &Patch::Merge(&json!({ "spec": { "names": { "categories": ["extra"] } } })),
    )
    .await
    .expect("add a field");
    let helmcharts = crd_ref("helmcharts.source.toolkit.fluxcd.io");
    let changed = kube.get(&helmcharts).await.expect("get").expect("stored");
    assert_ne!(
        json!(changed["metadata"]["generation"].to_string()),
        changed["metadata"]["annotations"][GENERATION_ANNOTATION],
        "the server bumped the generation past the recorded one"
    );
    let kube = client(&sb).await;
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        vec![
            "apiextensions.k8s.io/v1/CustomResourceDefinition/_/buckets.source.toolkit.fluxcd.io"
                .to_string(),
            "apiextensions.k8s.io/v1/CustomResourceDefinition/_/gitrepositories.source.toolkit.fluxcd.io"
                .to_string(),
        ]
    );

    // The repair (forced, as owners apply) records the new generation; the next refresh is
    // clean, and a re-apply that changes nothing writes nothing more.
    let owner = ApplyOptions {
        force: true,
        ..options(false, Duration::from_secs(30))
    };
    apply_all(&kube, &objects, &owner).await.expect("repair");
    let kube = client(&sb).await;
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );
    let before = versions(&sb);
    apply_all(&kube, &objects, &owner).await.expect("re-apply");
    assert_eq!(versions(&sb), before, "re-apply changed nothing");

    // A CRD without a fingerprint (applied before fingerprints) is read whole, from one
    // whole list of the kind, and is no drift.
    let strip = json!({ "metadata": { "annotations": {
        DIGEST_ANNOTATION: null, GENERATION_ANNOTATION: null } } });
    crd_api(&kube)
        .patch(
            "helmrepositories.source.toolkit.fluxcd.io",
            &edit,
            &Patch::Merge(&strip),
        )
        .await
        .expect("strip");
    let kube = client(&sb).await;
    sb.stats.reset();
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );
    let requests = object_requests(&sb);
    assert_eq!(
        requests.get(GROUP_LISTS).copied(),
        Some(group_lists + 1),
        "a list per kind, and a whole list of CRDs: {requests:?}"
    );
    assert_eq!(
        requests.get("GET /apis/{group}/{version}/{resource}/{name}"),
        None,
        "{requests:?}"
    );

    // That is also where an apply killed between a CRD's apply and the record of its
    // generation leaves it: the next apply completes the fingerprint, and the refresh after
    // it reads CRDs by metadata again.
    apply_all(&kube, &objects, &owner).await.expect("re-apply");
    let helmrepos = crd_ref("helmrepositories.source.toolkit.fluxcd.io");
    let completed = kube.get(&helmrepos).await.expect("get").expect("stored");
    let annotations = &completed["metadata"]["annotations"];
    assert!(
        annotations[DIGEST_ANNOTATION].is_string()
            && annotations[GENERATION_ANNOTATION].is_string(),
        "{annotations}"
    );
    let kube = client(&sb).await;
    sb.stats.reset();
    assert_eq!(
        drift(&kube, &objects).await.expect("drift"),
        Vec::<String>::new()
    );
    assert_eq!(
        object_requests(&sb).get(GROUP_LISTS).copied(),
        Some(group_lists),
        "no whole list of CRDs"
    );
}

async fn add_finalizer_to_kustomization(kube: &KubeClient) {
    let api = dynamic(
        kube,
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "flux-system",
    );
    let patch = json!({ "metadata": { "finalizers": ["finalizers.fluxcd.io"] } });
    api.patch(
        "flux-system",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("finalizer added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_removes_everything_despite_finalizers() {
    let sb = sandbox(true).await;
    let kube = client(&sb).await;
    let inventory = apply_all(&kube, &fixture(), &options(true, Duration::from_secs(30)))
        .await
        .expect("apply");
    add_finalizer_to_kustomization(&kube).await;
    let started = Instant::now();
    teardown(&kube, &inventory, false, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("teardown: {}", e.detail()));
    println!("teardown of the Flux fixture: {:?}", started.elapsed());
    let live = live_ids(&sb);
    let left: Vec<&String> = inventory.iter().filter(|id| live.contains(id)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        !live
            .iter()
            .any(|id| id.contains("/CustomResourceDefinition/")),
        "{live:?}"
    );
    assert!(
        !live.iter().any(|id| id.contains("flux-system")),
        "{live:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_can_keep_namespaces() {
    let sb = sandbox(true).await;
    let kube = client(&sb).await;
    let inventory = apply_all(&kube, &fixture(), &options(false, Duration::from_secs(30)))
        .await
        .expect("apply");
    add_finalizer_to_kustomization(&kube).await;
    teardown(&kube, &inventory, true, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("teardown: {}", e.detail()));
    let live = live_ids(&sb);
    let left: Vec<&String> = inventory.iter().filter(|id| live.contains(id)).collect();
    assert_eq!(left, vec!["v1/Namespace/_/flux-system"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_reports_what_it_cannot_remove() {
    let sb = sandbox(false).await;
    let kube = client(&sb).await;
    // A ConfigMap held by a finalizer nobody will clear (not a custom resource).
    let objects = vec![json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "held", "namespace": "default", "finalizers": ["example.com/hold"] } })];
    let inventory = apply_all(&kube, &objects, &options(false, Duration::from_secs(5)))
        .await
        .expect("apply");
    let started = Instant::now();
    let err = teardown(&kube, &inventory, false, Duration::from_secs(1))
        .await
        .expect_err("held");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
    let EngineError::Teardown { remaining } = &err else {
        panic!("not a teardown error: {err}");
    };
    assert!(
        remaining[0].contains("ConfigMap default/held"),
        "{remaining:?}"
    );
    assert!(remaining[0].contains("example.com/hold"), "{remaining:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_gives_up_when_the_provider_stops() {
    let sb = sandbox(true).await;
    let settings = ClusterSettings {
        config_path: Some(sb.info.kubeconfig.clone()),
        ..ClusterSettings::default()
    };
    let stop = CancellationToken::new();
    let kube = KubeClient::connect(&settings, stop.clone())
        .await
        .expect("connects");
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    let started = Instant::now();
    let err = apply_all(
        &kube,
        &broken_deployment(),
        &options(true, Duration::from_secs(60)),
    )
    .await
    .expect_err("stopped");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    assert!(
        matches!(
            &err,
            EngineError::Kube {
                source: KubeError::Cancelled,
                ..
            }
        ),
        "{err:?}"
    );
    stopper.await.expect("stopper");
}
