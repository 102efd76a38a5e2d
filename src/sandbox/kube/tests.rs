//! Unit tests of the emulator through its HTTP router (the way clients see it) and its
//! in-process API.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{KubeConfig, KubeEmulator, ObjectEvent, ObjectRef};

const TOKEN: &str = "test-token";
const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const JSONP: &str = "application/json-patch+json";
const SMP: &str = "application/strategic-merge-patch+json";

fn emu() -> (Arc<KubeEmulator>, Router) {
    let e = KubeEmulator::new(KubeConfig {
        bearer_token: TOKEN.into(),
    });
    let r = e.router();
    (e, r)
}

async fn call(app: &Router, method: &str, uri: &str, ct: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments/web";

fn deploy(manager_replicas: i64, image: &str) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "default", "labels": { "app": "web" } },
        "spec": {
            "replicas": manager_replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [
                { "name": "app", "image": image, "env": [{ "name": "A", "value": "1" }] }
            ] } }
        }
    })
    .to_string()
}

async fn apply(app: &Router, path: &str, manager: &str, force: bool, body: &str) -> (u16, Value) {
    let uri = format!(
        "{path}?fieldManager={manager}{}",
        if force { "&force=true" } else { "" }
    );
    call(app, "PATCH", &uri, Some(APPLY), body).await
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn ssa_create_sets_metadata_and_managed_fields() {
    let (_, app) = emu();
    let (code, obj) = apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    assert_eq!(code, 201, "{obj}");
    let uid = obj["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "4");
    assert_eq!(obj["metadata"]["generation"], 1);
    assert!(obj["metadata"]["creationTimestamp"].is_string());
    assert!(obj["metadata"]["resourceVersion"].is_string());
    assert_eq!(managers(&obj), vec![("alice".into(), "Apply".into())]);
    let mf = &obj["metadata"]["managedFields"][0];
    assert_eq!(mf["fieldsType"], "FieldsV1");
    let containers = &mf["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(containers["k:{\"name\":\"app\"}"]["."].is_object(), "{mf}");
    assert!(containers["k:{\"name\":\"app\"}"]["f:image"].is_object());
}

#[tokio::test]
async fn ssa_reapply_is_a_noop() {
    let (e, app) = emu();
    let (_, first) = apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let v = e.version();
    let (code, second) = apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    assert_eq!(code, 200);
    assert_eq!(
        first["metadata"]["resourceVersion"],
        second["metadata"]["resourceVersion"]
    );
    assert_eq!(e.version(), v);
}

#[tokio::test]
async fn ssa_conflict_body_and_force_handover() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let bob = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": { "name": "web", "namespace": "default" }, "spec": { "replicas": 5 } })
    .to_string();
    let (code, status) = apply(&app, DEPLOY, "bob", false, &bob).await;
    assert_eq!(code, 409);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    let cause = &status["details"]["causes"][0];
    assert_eq!(cause["type"], "FieldManagerConflict");
    assert_eq!(cause["field"], ".spec.replicas");
    assert_eq!(status["details"]["name"], "web");
    assert_eq!(status["details"]["group"], "apps");

    let (code, obj) = apply(&app, DEPLOY, "bob", true, &bob).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["spec"]["replicas"], 5);
    let fields = &obj["metadata"]["managedFields"];
    let alice = fields
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "alice")
        .unwrap();
    assert!(
        alice["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "alice lost replicas"
    );
    // Alice re-applying her old value now conflicts with bob.
    let (code, _) = apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn ssa_same_value_is_shared_ownership() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let bob = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": { "name": "web", "namespace": "default" }, "spec": { "replicas": 2 } })
    .to_string();
    let (code, obj) = apply(&app, DEPLOY, "bob", false, &bob).await;
    assert_eq!(code, 200, "{obj}");
    let owners: Vec<&Value> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_some())
        .collect();
    assert_eq!(owners.len(), 2);
    // Alice dropping replicas keeps the value: bob still owns it.
    let mut d: Value = serde_json::from_str(&deploy(2, "nginx:1")).unwrap();
    d["spec"].as_object_mut().unwrap().remove("replicas");
    let (_, obj) = apply(&app, DEPLOY, "alice", false, &d.to_string()).await;
    assert_eq!(obj["spec"]["replicas"], 2);
}

#[tokio::test]
async fn ssa_removes_fields_a_manager_stops_applying() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let mut d: Value = serde_json::from_str(&deploy(2, "nginx:1")).unwrap();
    d["metadata"].as_object_mut().unwrap().remove("labels");
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let (_, obj) = apply(&app, DEPLOY, "alice", false, &d.to_string()).await;
    assert!(
        obj["metadata"].get("labels").is_none(),
        "emptied maps go: {obj}"
    );
    assert!(
        obj["spec"]["template"]["spec"]["containers"][0]
            .get("env")
            .is_none()
    );
    assert_eq!(obj["metadata"]["generation"], 2);
}

#[tokio::test]
async fn ssa_merges_lists_by_key() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let sidecar = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "template": { "spec": { "containers": [
            { "name": "app", "env": [{ "name": "B", "value": "2" }] },
            { "name": "sidecar", "image": "envoy" } ] } } } })
    .to_string();
    let (code, obj) = apply(&app, DEPLOY, "bob", false, &sidecar).await;
    assert_eq!(code, 200, "{obj}");
    let cs = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["image"], "nginx:1");
    let env: Vec<&str> = cs[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, vec!["A", "B"]);
}

#[tokio::test]
async fn apply_requires_field_manager() {
    let (_, app) = emu();
    let (code, st) = call(&app, "PATCH", DEPLOY, Some(APPLY), &deploy(1, "x")).await;
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        st["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueRequired");
}

#[tokio::test]
async fn field_manager_over_128_bytes_is_invalid_for_every_write() {
    let (e, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(1, "a")).await;
    let (_, current) = call(&app, "GET", DEPLOY, None, "").await;
    let v = e.version();
    let long = "m".repeat(129);
    let json = Some("application/json");
    let writes = [
        (
            "POST",
            CM.to_string(),
            json,
            r#"{"metadata":{"name":"fm"}}"#.to_string(),
            "CreateOptions",
        ),
        (
            "PUT",
            DEPLOY.to_string(),
            json,
            current.to_string(),
            "UpdateOptions",
        ),
        (
            "PATCH",
            DEPLOY.to_string(),
            Some(MERGE),
            r#"{"spec":{"replicas":3}}"#.to_string(),
            "PatchOptions",
        ),
        (
            "PATCH",
            DEPLOY.to_string(),
            Some(APPLY),
            deploy(3, "a"),
            "PatchOptions",
        ),
    ];
    for (method, path, ct, body, options) in writes {
        let uri = format!("{path}?fieldManager={long}");
        let (code, st) = call(&app, method, &uri, ct, &body).await;
        assert_eq!(code, 422, "{method} {ct:?}: {st}");
        assert_eq!(
            st,
            json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{options}.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes"),
                "reason": "Invalid", "code": 422,
                "details": { "group": "meta.k8s.io", "kind": options, "causes": [{
                    "reason": "FieldValueTooLong", "message": "Too long: may not be more than 128 bytes",
                    "field": "fieldManager" }] } })
        );
    }
    assert_eq!(e.version(), v, "nothing was written");
    let uri = format!("{DEPLOY}?fieldManager={}", "m".repeat(128));
    let (code, _) = call(&app, "PATCH", &uri, Some(APPLY), &deploy(1, "a")).await;
    assert_eq!(code, 200, "128 bytes are allowed");
}

#[tokio::test]
async fn force_on_a_non_apply_patch_is_forbidden_with_the_other_option_errors() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(1, "a")).await;
    let uri = format!("{DEPLOY}?force=false&fieldManager={}", "m".repeat(129));
    let (code, st) = call(&app, "PATCH", &uri, Some(MERGE), "{}").await;
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: [force: Forbidden: may not be specified for non-apply patch, fieldManager: Too long: may not be more than 128 bytes]"
    );
    assert_eq!(st["details"]["causes"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let (code, obj) = call(
        &app,
        "PATCH",
        DEPLOY,
        Some(MERGE),
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(obj["metadata"]["labels"]["tier"], "front");
    assert_eq!(obj["metadata"]["labels"]["app"], "web");
    assert_eq!(obj["metadata"]["generation"], 1, "labels are metadata");
    assert!(
        managers(&obj)
            .iter()
            .any(|(m, op)| m == "unknown" && op == "Update")
    );
    let (_, obj) = call(
        &app,
        "PATCH",
        DEPLOY,
        Some(JSONP),
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    )
    .await;
    assert_eq!(obj["spec"]["replicas"], 4);
    assert_eq!(obj["metadata"]["generation"], 2);
    let smp = r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"nginx:2"}]}}}}"#;
    let (_, obj) = call(
        &app,
        "PATCH",
        &format!("{DEPLOY}?fieldManager=kubectl-edit"),
        Some(SMP),
        smp,
    )
    .await;
    let c = &obj["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:2");
    assert_eq!(
        c["env"][0]["name"], "A",
        "strategic merge keeps the rest of the item"
    );
    let (code, _) = call(
        &app,
        "PATCH",
        DEPLOY,
        Some(JSONP),
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    )
    .await;
    assert_eq!(code, 422);
}

#[tokio::test]
async fn stale_resource_version_conflicts() {
    let (_, app) = emu();
    let (_, obj) = apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let mut stale = obj.clone();
    call(
        &app,
        "PATCH",
        DEPLOY,
        Some(MERGE),
        r#"{"spec":{"replicas":3}}"#,
    )
    .await;
    stale["spec"]["replicas"] = json!(7);
    let (code, st) = call(
        &app,
        "PUT",
        DEPLOY,
        Some("application/json"),
        &stale.to_string(),
    )
    .await;
    assert_eq!(code, 409);
    assert_eq!(st["reason"], "Conflict");
    assert!(st["message"].as_str().unwrap().contains("the object has been modified; please apply your changes to the latest version and try again"));
    let (_, fresh) = call(&app, "GET", DEPLOY, None, "").await;
    let mut ok = fresh.clone();
    ok["spec"]["replicas"] = json!(7);
    let (code, obj) = call(
        &app,
        "PUT",
        DEPLOY,
        Some("application/json"),
        &ok.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(obj["spec"]["replicas"], 7);
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn create_get_conflict_and_not_found() {
    let (_, app) = emu();
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}"#;
    let (code, obj) = call(&app, "POST", CM, Some("application/json"), body).await;
    assert_eq!(code, 201);
    assert_eq!(obj["metadata"]["namespace"], "default");
    let (code, st) = call(&app, "POST", CM, Some("application/json"), body).await;
    assert_eq!((code, st["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, st) = call(&app, "GET", &format!("{CM}/nope"), None, "").await;
    assert_eq!(code, 404);
    assert_eq!(st["message"], "configmaps \"nope\" not found");
    let (code, st) = call(
        &app,
        "POST",
        CM,
        Some("application/json"),
        r#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")));
    let (code, _) = call(
        &app,
        "POST",
        "/api/v1/namespaces/missing/configmaps",
        Some("application/json"),
        body,
    )
    .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let (e, app) = emu();
    let body = r#"{"metadata":{"name":"held","finalizers":["example.com/x"]}}"#;
    call(&app, "POST", CM, Some("application/json"), body).await;
    let (code, obj) = call(&app, "DELETE", &format!("{CM}/held"), None, "").await;
    assert_eq!(code, 200);
    assert!(obj["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = call(&app, "GET", &format!("{CM}/held"), None, "").await;
    assert_eq!(code, 200, "still there while finalizers remain");
    let mut rx = e.subscribe();
    let (code, _) = call(
        &app,
        "PATCH",
        &format!("{CM}/held"),
        Some(MERGE),
        r#"{"metadata":{"finalizers":null}}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = call(&app, "GET", &format!("{CM}/held"), None, "").await;
    assert_eq!(code, 404);
    assert!(matches!(rx.try_recv(), Ok(ObjectEvent::Deleted(_))));
}

#[tokio::test]
async fn namespace_cascade() {
    let (e, app) = emu();
    call(
        &app,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        r#"{"metadata":{"name":"team"}}"#,
    )
    .await;
    let cm = "/api/v1/namespaces/team/configmaps";
    call(
        &app,
        "POST",
        cm,
        Some("application/json"),
        r#"{"metadata":{"name":"a"}}"#,
    )
    .await;
    call(
        &app,
        "POST",
        cm,
        Some("application/json"),
        r#"{"metadata":{"name":"b","finalizers":["x/y"]}}"#,
    )
    .await;
    let (code, ns) = call(&app, "DELETE", "/api/v1/namespaces/team", None, "").await;
    assert_eq!(code, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (_, list) = call(&app, "GET", cm, None, "").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "b waits for its finalizer"
    );
    let (code, st) = call(
        &app,
        "POST",
        cm,
        Some("application/json"),
        r#"{"metadata":{"name":"c"}}"#,
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (403, Some("Forbidden")));
    call(
        &app,
        "PATCH",
        &format!("{cm}/b"),
        Some(MERGE),
        r#"{"metadata":{"finalizers":[]}}"#,
    )
    .await;
    let (code, _) = call(&app, "GET", "/api/v1/namespaces/team", None, "").await;
    assert_eq!(code, 404);
    assert!(
        e.list("v1", "ConfigMap")
            .iter()
            .all(|o| o["metadata"]["namespace"] != "team")
    );
}

fn crd(with_status: bool) -> String {
    let mut version = json!({ "name": "v1", "served": true, "storage": true,
        "schema": { "openAPIV3Schema": { "type": "object", "properties": { "spec": { "type": "object",
            "properties": { "items": { "type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["id"], "items": { "type": "object" } } } } } } } });
    if with_status {
        version["subresources"] = json!({ "status": {} });
    }
    json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.example.com" },
        "spec": { "group": "example.com", "scope": "Namespaced",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList" },
            "versions": [version] } })
    .to_string()
}

const WIDGET: &str = "/apis/example.com/v1/namespaces/default/widgets/w";
const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";

fn widget(items: Value) -> String {
    json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w", "namespace": "default" },
            "spec": { "items": items }, "status": { "phase": "ignored" } })
    .to_string()
}

#[tokio::test]
async fn crd_registration_serves_kind_and_deletion_removes_objects() {
    let (e, app) = emu();
    let (code, _) = call(
        &app,
        "GET",
        "/apis/example.com/v1/namespaces/default/widgets",
        None,
        "",
    )
    .await;
    assert_eq!(code, 404);
    let (code, obj) = apply(&app, CRD, "alice", false, &crd(true)).await;
    assert_eq!(code, 201, "{obj}");
    let conds = obj["status"]["conditions"].as_array().unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    assert_eq!(obj["status"]["acceptedNames"]["kind"], "Widget");
    let (_, groups) = call(&app, "GET", "/apis", None, "").await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com")
    );
    let (_, rl) = call(&app, "GET", "/apis/example.com/v1", None, "").await;
    assert!(
        rl["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "widgets/status")
    );

    let (code, w) = apply(
        &app,
        WIDGET,
        "alice",
        false,
        &widget(json!([{ "id": "a", "v": 1 }])),
    )
    .await;
    assert_eq!(code, 201, "{w}");
    assert!(w.get("status").is_none(), "status is a subresource");
    let (_, w) = apply(
        &app,
        WIDGET,
        "bob",
        false,
        &widget(json!([{ "id": "b", "v": 2 }])),
    )
    .await;
    assert_eq!(
        w["spec"]["items"].as_array().unwrap().len(),
        2,
        "CRD list-map-keys merge: {w}"
    );

    let (code, _) = call(&app, "DELETE", CRD, None, "").await;
    assert_eq!(code, 200);
    assert!(e.list("example.com/v1", "Widget").is_empty());
    let (code, _) = call(&app, "GET", WIDGET, None, "").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn status_subresource_isolation_and_generation() {
    let (e, app) = emu();
    apply(&app, CRD, "alice", false, &crd(true)).await;
    apply(&app, WIDGET, "alice", false, &widget(json!([]))).await;
    let (code, w) = call(
        &app,
        "PATCH",
        &format!("{WIDGET}/status"),
        Some(MERGE),
        r#"{"status":{"phase":"Ready"},"spec":{"items":[{"id":"z"}]}}"#,
    )
    .await;
    assert_eq!(code, 200, "{w}");
    assert_eq!(w["status"]["phase"], "Ready");
    assert_eq!(w["spec"]["items"], json!([]), "status writes ignore spec");
    assert_eq!(w["metadata"]["generation"], 1);
    let (_, w) = call(
        &app,
        "PATCH",
        WIDGET,
        Some(MERGE),
        r#"{"status":{"phase":"Hacked"},"metadata":{"labels":{"a":"b"}}}"#,
    )
    .await;
    assert_eq!(w["status"]["phase"], "Ready", "main writes ignore status");
    assert_eq!(
        w["metadata"]["generation"], 1,
        "metadata changes keep generation"
    );
    let (_, w) = call(
        &app,
        "PATCH",
        WIDGET,
        Some(MERGE),
        r#"{"spec":{"items":[{"id":"q"}]}}"#,
    )
    .await;
    assert_eq!(w["metadata"]["generation"], 2);
    let r = ObjectRef {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        namespace: Some("default".into()),
        name: "w".into(),
    };
    let before = e.version();
    e.set_status(&r, json!({ "phase": "Done" })).unwrap();
    let w = e.get(&r).unwrap();
    assert_eq!(w["status"]["phase"], "Done");
    assert_eq!(w["metadata"]["generation"], 2);
    assert!(e.version() > before);
}

#[tokio::test]
async fn label_and_field_selectors() {
    let (_, app) = emu();
    for (name, labels) in [
        ("a", json!({"app":"x","tier":"web"})),
        ("b", json!({"app":"y"})),
        ("c", json!({})),
    ] {
        let body = json!({ "metadata": { "name": name, "labels": labels } }).to_string();
        call(&app, "POST", CM, Some("application/json"), &body).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        ("app%3Dx", vec!["a"]),
        ("app%3D%3Dy", vec!["b"]),
        ("app!%3Dx", vec!["b", "c"]),
        ("app%20in%20(x,y)", vec!["a", "b"]),
        ("app%20notin%20(x)", vec!["b", "c"]),
        ("tier", vec!["a"]),
        ("!app", vec!["c"]),
        ("app,!tier", vec!["b"]),
    ];
    for (sel, want) in cases {
        let (code, list) = call(&app, "GET", &format!("{CM}?labelSelector={sel}"), None, "").await;
        assert_eq!(code, 200);
        assert_eq!(names(&list), want, "selector {sel}");
        assert!(list["metadata"]["resourceVersion"].is_string());
    }
    let (_, list) = call(
        &app,
        "GET",
        "/api/v1/configmaps?fieldSelector=metadata.name%3Db",
        None,
        "",
    )
    .await;
    assert_eq!(names(&list), vec!["b"]);
    let (code, _) = call(
        &app,
        "GET",
        &format!("{CM}?fieldSelector=spec.x%3D1"),
        None,
        "",
    )
    .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn secrets_fold_string_data() {
    let (_, app) = emu();
    let body = r#"{"metadata":{"name":"s"},"stringData":{"token":"abc"},"data":{"other":"eA=="}}"#;
    let (code, s) = call(
        &app,
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some("application/json"),
        body,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(s["data"]["token"], "YWJj");
    assert_eq!(s["data"]["other"], "eA==");
    assert!(s.get("stringData").is_none());
}

#[tokio::test]
async fn dry_run_does_not_store() {
    let (e, app) = emu();
    let v = e.version();
    // A dry-run server-side apply answers with the object (200: nothing was created) and
    // stores nothing.
    let (code, obj) = call(
        &app,
        "PATCH",
        &format!("{DEPLOY}?fieldManager=alice&dryRun=All"),
        Some(APPLY),
        &deploy(1, "a"),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(e.version(), v);
    let (code, _) = call(&app, "GET", DEPLOY, None, "").await;
    assert_eq!(code, 404);
    let (code, _) = apply(&app, DEPLOY, "alice", false, &deploy(1, "a")).await;
    assert_eq!(code, 201);
    let v2 = e.version();
    assert!(v2 > v);
    let (code, obj) = call(
        &app,
        "PATCH",
        &format!("{DEPLOY}?fieldManager=a&dryRun=All"),
        Some(MERGE),
        r#"{"spec":{"replicas":9}}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(obj["spec"]["replicas"], 9);
    assert_eq!(e.version(), v2);
    let (_, obj) = call(&app, "GET", DEPLOY, None, "").await;
    assert_eq!(obj["spec"]["replicas"], 1);
}

#[tokio::test]
async fn persisted_round_trip() {
    let (e, app) = emu();
    apply(&app, CRD, "alice", false, &crd(true)).await;
    apply(
        &app,
        WIDGET,
        "alice",
        false,
        &widget(json!([{ "id": "a" }])),
    )
    .await;
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let saved = e.persisted();
    let r = KubeEmulator::restore(
        KubeConfig {
            bearer_token: TOKEN.into(),
        },
        saved.clone(),
    )
    .unwrap();
    assert_eq!(r.version(), e.version());
    assert_eq!(r.objects(), e.objects());
    assert_eq!(r.persisted(), saved);
    let app2 = r.router();
    let (code, w) = call(&app2, "GET", WIDGET, None, "").await;
    assert_eq!(code, 200, "CRD kinds are served after restore");
    assert_eq!(w["spec"]["items"][0]["id"], "a");
    let (code, _) = apply(&app2, DEPLOY, "bob", false, &deploy(3, "nginx:1")).await;
    assert_eq!(code, 409, "managed fields survive the round trip");
}

#[tokio::test]
async fn requests_without_token_get_401_status() {
    let (_, app) = emu();
    let req = Request::builder()
        .uri("/api/v1/namespaces")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let st: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "Unauthorized");
    let req = Request::builder()
        .uri("/api")
        .header("authorization", "Bearer wrong")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status().as_u16(),
        401
    );
}

#[tokio::test]
async fn discovery_documents() {
    let (_, app) = emu();
    let (_, v) = call(&app, "GET", "/version", None, "").await;
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.32."));
    let (_, core) = call(&app, "GET", "/api/v1", None, "").await;
    let res = core["resources"].as_array().unwrap();
    let ns = res.iter().find(|r| r["name"] == "namespaces").unwrap();
    assert_eq!(ns["namespaced"], false);
    assert_eq!(ns["shortNames"], json!(["ns"]));
    let (_, apps) = call(&app, "GET", "/apis/apps/v1", None, "").await;
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/status")
    );
    let (_, groups) = call(&app, "GET", "/apis", None, "").await;
    let rbac = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "rbac.authorization.k8s.io")
        .unwrap();
    assert_eq!(rbac["preferredVersion"]["version"], "v1");
    let (code, _) = call(&app, "GET", "/openapi/v2", None, "").await;
    assert_eq!(code, 404);
}

#[test]
fn kubeconfig_names_context_and_token() {
    let e = KubeEmulator::new(KubeConfig {
        bearer_token: "t0k".into(),
    });
    let y: Value = serde_yaml_ng::from_str(&e.kubeconfig("https://127.0.0.1:1234")).unwrap();
    assert_eq!(y["current-context"], "sandbox");
    assert_eq!(
        y["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:1234"
    );
    assert_eq!(y["users"][0]["user"]["token"], "t0k");
    let ns: Vec<String> = e
        .list("v1", "Namespace")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ns,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test]
async fn watch_streams_events() {
    let (_, app) = emu();
    call(
        &app,
        "POST",
        CM,
        Some("application/json"),
        r#"{"metadata":{"name":"old"}}"#,
    )
    .await;
    let req = Request::builder()
        .uri(format!("{CM}?watch=true&timeoutSeconds=1"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let writer = app.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        call(
            &writer,
            "POST",
            CM,
            Some("application/json"),
            r#"{"metadata":{"name":"new"}}"#,
        )
        .await;
        call(&writer, "DELETE", &format!("{CM}/new"), None, "").await;
    });
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let events: Vec<(String, String)> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let want = [("ADDED", "old"), ("ADDED", "new"), ("DELETED", "new")];
    assert_eq!(events, want.map(|(a, b)| (a.to_string(), b.to_string())));
}

#[tokio::test]
async fn scale_subresource_changes_replicas_only() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let (code, scale) = call(&app, "GET", &format!("{DEPLOY}/scale"), None, "").await;
    assert_eq!(code, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=web");
    let (code, scale) = call(
        &app,
        "PATCH",
        &format!("{DEPLOY}/scale"),
        Some(MERGE),
        r#"{"spec":{"replicas":5}}"#,
    )
    .await;
    assert_eq!((code, scale["spec"]["replicas"].as_i64()), (200, Some(5)));
    let (_, obj) = call(&app, "GET", DEPLOY, None, "").await;
    assert_eq!(obj["spec"]["replicas"], 5);
}

#[tokio::test]
async fn tables_for_kubectl_get() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let req = Request::builder()
        .uri("/apis/apps/v1/namespaces/default/deployments")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let t: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(t["kind"], "Table");
    let headers: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        vec!["Name", "Ready", "Up-to-date", "Available", "Age"]
    );
    assert_eq!(t["rows"][0]["cells"][0], "web");
    assert_eq!(t["rows"][0]["cells"][1], "0/2");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

/// A GET with an `Accept` header, answered as JSON.
async fn get_as(app: &axum::Router, uri: &str, accept: &str) -> Value {
    let req = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", accept)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn metadata_only_reads_as_partial_object_metadata() {
    let (_, app) = emu();
    apply(&app, DEPLOY, "alice", false, &deploy(2, "nginx:1")).await;
    let list = get_as(
        &app,
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    let item = &list["items"][0];
    assert_eq!(item["kind"], "PartialObjectMetadata");
    assert_eq!(item["metadata"]["name"], "web");
    assert_eq!(item["metadata"]["generation"], 1);
    assert!(item.get("spec").is_none(), "{item}");
    let one = get_as(
        &app,
        DEPLOY,
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert!(one.get("spec").is_none(), "{one}");
}

#[tokio::test]
async fn delete_collection_by_label() {
    let (_, app) = emu();
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let body = json!({ "metadata": { "name": n, "labels": { "g": l } } }).to_string();
        call(&app, "POST", CM, Some("application/json"), &body).await;
    }
    let (code, _) = call(
        &app,
        "DELETE",
        &format!("{CM}?labelSelector=g%3Dx"),
        None,
        "",
    )
    .await;
    assert_eq!(code, 200);
    let (_, list) = call(&app, "GET", CM, None, "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn main_resource_writes_ignore_deployment_status() {
    let (_, app) = emu();
    let mut d: Value = serde_json::from_str(&deploy(1, "a")).unwrap();
    d["status"] = json!({ "readyReplicas": 9 });
    let (code, obj) = call(
        &app,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some("application/json"),
        &d.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    assert!(obj.get("status").is_none());
    let (code, obj) = call(
        &app,
        "PUT",
        &format!("{DEPLOY}/status"),
        Some("application/json"),
        &d.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["status"]["readyReplicas"], 9);
    let (_, obj) = call(
        &app,
        "PATCH",
        DEPLOY,
        Some(MERGE),
        r#"{"status":{"readyReplicas":1}}"#,
    )
    .await;
    assert_eq!(obj["status"]["readyReplicas"], 9);
}

/// As the real server: a CRD remembers every version it stored objects in, and refuses to
/// stop serving one until that version leaves `status.storedVersions`.
#[tokio::test]
async fn a_crd_keeps_its_stored_versions_and_cannot_drop_one_still_stored() {
    let (_, app) = emu();
    let with_versions = |versions: &[(&str, bool)]| -> String {
        let mut c: Value = serde_json::from_str(&crd(false)).unwrap();
        let template = c["spec"]["versions"][0].clone();
        c["spec"]["versions"] = versions
            .iter()
            .map(|(name, storage)| {
                let mut v = template.clone();
                v["name"] = json!(name);
                v["storage"] = json!(storage);
                v
            })
            .collect();
        c.to_string()
    };
    let (code, obj) = apply(&app, CRD, "alice", false, &with_versions(&[("v1", true)])).await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["status"]["storedVersions"], json!(["v1"]));
    let both = with_versions(&[("v1", false), ("v2", true)]);
    let (code, obj) = apply(&app, CRD, "alice", false, &both).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["status"]["storedVersions"], json!(["v1", "v2"]));

    let only_v2 = with_versions(&[("v2", true)]);
    let (code, st) = apply(&app, CRD, "alice", false, &only_v2).await;
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or_default()
            .contains("status.storedVersions[0]"),
        "{st}"
    );

    // Migrated: the stored version list is trimmed through the status subresource.
    let status = json!({ "status": { "storedVersions": ["v2"] } }).to_string();
    let (code, obj) = call(
        &app,
        "PATCH",
        &format!("{CRD}/status"),
        Some("application/merge-patch+json"),
        &status,
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    let (code, obj) = apply(&app, CRD, "alice", false, &only_v2).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(obj["status"]["storedVersions"], json!(["v2"]));
}

#[tokio::test]
async fn crd_with_wrong_name_is_invalid() {
    let (_, app) = emu();
    let mut c: Value = serde_json::from_str(&crd(false)).unwrap();
    c["metadata"]["name"] = json!("wrong.example.com");
    let (code, st) = call(
        &app,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some("application/json"),
        &c.to_string(),
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")));
    let (code, _) = call(&app, "GET", "/apis/example.com/v1", None, "").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn kubectl_protobuf_create_bodies_are_decoded() {
    fn field(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(num << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }
    let entry = [field(1, b"k"), field(2, b"v")].concat();
    let meta = [
        field(1, b"pb"),
        field(2, b""),
        field(11, &[field(1, b"app"), field(2, b"x")].concat()),
    ]
    .concat();
    let raw = [field(1, &meta), field(2, &entry)].concat();
    let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
    let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &raw)].concat();
    let (_, app) = emu();
    let req = Request::builder()
        .method("POST")
        .uri(CM)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let (_, cm) = call(&app, "GET", &format!("{CM}/pb"), None, "").await;
    assert_eq!(cm["data"], json!({ "k": "v" }));
    assert_eq!(cm["metadata"]["labels"], json!({ "app": "x" }));
    assert!(cm["metadata"].get("generateName").is_none());
}

#[tokio::test]
async fn delete_preconditions() {
    let (_, app) = emu();
    call(
        &app,
        "POST",
        CM,
        Some("application/json"),
        r#"{"metadata":{"name":"p"}}"#,
    )
    .await;
    let body = r#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"nope"}}"#;
    let (code, st) = call(
        &app,
        "DELETE",
        &format!("{CM}/p"),
        Some("application/json"),
        body,
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (409, Some("Conflict")));
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID")
    );
    let (code, _) = call(
        &app,
        "DELETE",
        &format!("{CM}/p"),
        Some("application/json"),
        r#"{"dryRun":["All"]}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = call(&app, "GET", &format!("{CM}/p"), None, "").await;
    assert_eq!(code, 200, "dry-run delete keeps the object");
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::fields::{self, Scope, Shape};
    use super::super::selector::LabelSelector;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z]{0,6}".prop_map(|s| json!(s)),
            Just(json!(true))
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-z]{1,5}", inner.clone(), 1..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(("[a-z]{1,4}", inner), 1..3).prop_map(|items| {
                    let list: Vec<Value> = items
                        .into_iter()
                        .enumerate()
                        .map(|(i, (n, v))| json!({ "name": format!("{n}{i}"), "value": v }))
                        .collect();
                    json!({ "containers": list })
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn fields_v1_round_trips(spec in tree()) {
            let obj = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" }, "spec": spec });
            let shape = Shape { kind: "ConfigMap", schema: None };
            let set: fields::FieldSet = fields::flatten(&obj, shape, Scope::All).into_keys().collect();
            prop_assert_eq!(fields::from_fields_v1(&fields::to_fields_v1(&set)), set);
        }

        #[test]
        fn merging_an_object_into_itself_changes_nothing(spec in tree()) {
            let obj = json!({ "spec": spec });
            let shape = Shape { kind: "ConfigMap", schema: None };
            prop_assert_eq!(fields::merge(shape, &obj, &obj), obj);
        }

        #[test]
        fn selector_parsing_never_panics(s in "[a-z!=(), ]{0,24}") {
            let _ = LabelSelector::parse(&s);
        }
    }
}

#[tokio::test]
async fn body_namespace_must_match_the_url() {
    let (_, app) = emu();
    let body = r#"{"metadata":{"name":"a","namespace":"kube-system"}}"#;
    let (code, st) = call(&app, "POST", CM, Some("application/json"), body).await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
}

const SECRETS: &str = "/api/v1/namespaces/default/secrets";

fn key_error(kind: &str, name: &str, field: &str, key: &str) -> String {
    format!(
        "{kind} \"{name}\" is invalid: {field}: Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    )
}

#[tokio::test]
async fn secret_and_config_map_keys_must_be_config_keys() {
    let (e, app) = emu();
    let v = e.version();
    let json = Some("application/json");
    let cases = [
        (
            SECRETS,
            r#"{"metadata":{"name":"s"},"data":{"a/b":"eA=="}}"#,
            "Secret",
            "s",
            "data",
            "a/b",
        ),
        (
            SECRETS,
            r#"{"metadata":{"name":"s"},"stringData":{"a b":"x"}}"#,
            "Secret",
            "s",
            "data",
            "a b",
        ),
        (
            CM,
            r#"{"metadata":{"name":"c"},"data":{"k:v":"x"}}"#,
            "ConfigMap",
            "c",
            "data",
            "k:v",
        ),
        (
            CM,
            r#"{"metadata":{"name":"c"},"binaryData":{"":"eA=="}}"#,
            "ConfigMap",
            "c",
            "binaryData",
            "",
        ),
    ];
    for (path, body, kind, name, bag, key) in cases {
        let (code, st) = call(&app, "POST", path, json, body).await;
        assert_eq!(
            (code, st["reason"].as_str()),
            (422, Some("Invalid")),
            "{body}: {st}"
        );
        assert_eq!(
            st["message"],
            key_error(kind, name, &format!("{bag}[{key}]"), key)
        );
        assert_eq!(st["details"]["causes"][0]["field"], format!("{bag}[{key}]"));
        assert_eq!(st["details"]["name"], name);
    }
    let dots = r#"{"metadata":{"name":"c"},"data":{"..":"x","..x":"y",".":"z"}}"#;
    let (_, st) = call(&app, "POST", CM, json, dots).await;
    assert_eq!(
        st["message"],
        "ConfigMap \"c\" is invalid: [data[.]: Invalid value: \".\": must not be '.', data[..]: Invalid value: \"..\": must not be '..', data[..x]: Invalid value: \"..x\": must not start with '..']"
    );
    let long = "k".repeat(254);
    let (_, st) = call(
        &app,
        "POST",
        CM,
        json,
        &json!({ "metadata": { "name": "c" }, "data": { &long: "x" } }).to_string(),
    )
    .await;
    assert_eq!(
        st["details"]["causes"][0]["message"],
        format!("Invalid value: \"{long}\": must be no more than 253 characters")
    );
    let both = r#"{"metadata":{"name":"c"},"data":{"k":"x"},"binaryData":{"k":"eA=="}}"#;
    let (_, st) = call(&app, "POST", CM, json, both).await;
    assert_eq!(
        st["message"],
        "ConfigMap \"c\" is invalid: data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
    );
    // Bad values are quoted as Go's %q quotes them.
    let quoted = r#"{"metadata":{"name":"c"},"data":{"a\"b":"x"}}"#;
    let (_, st) = call(&app, "POST", CM, json, quoted).await;
    let cause = st["details"]["causes"][0]["message"]
        .as_str()
        .expect("cause");
    assert!(
        cause.starts_with(r#"Invalid value: "a\"b": a valid config key"#),
        "{st}"
    );
    assert_eq!(e.version(), v, "nothing was stored");
    let good = r#"{"metadata":{"name":"c"},"data":{"key.name":"1","KEY_NAME":"2","key-name":"3"}}"#;
    assert_eq!(call(&app, "POST", CM, json, good).await.0, 201);
}

#[tokio::test]
async fn invalid_data_keys_are_refused_on_update_patch_and_apply_too() {
    let (e, app) = emu();
    let json = Some("application/json");
    call(
        &app,
        "POST",
        SECRETS,
        json,
        r#"{"metadata":{"name":"s"},"data":{"ok":"eA=="}}"#,
    )
    .await;
    let secret = format!("{SECRETS}/s");
    let (_, mut current) = call(&app, "GET", &secret, None, "").await;
    let v = e.version();
    current["data"] = json!({ "a/b": "eA==" });
    let put = call(&app, "PUT", &secret, json, &current.to_string()).await;
    let merge = call(
        &app,
        "PATCH",
        &secret,
        Some(MERGE),
        r#"{"stringData":{"a/b":"x"}}"#,
    )
    .await;
    let applied =
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"a/b":"eA=="}}"#;
    let ssa = apply(&app, &secret, "alice", false, applied).await;
    let create = apply(
        &app,
        &format!("{SECRETS}/t"),
        "alice",
        false,
        &applied.replace("\"s\"", "\"t\""),
    )
    .await;
    for (what, (code, st), name) in [
        ("put", put, "s"),
        ("merge", merge, "s"),
        ("apply", ssa, "s"),
        ("apply-create", create, "t"),
    ] {
        assert_eq!(code, 422, "{what}: {st}");
        assert_eq!(
            st["message"],
            key_error("Secret", name, "data[a/b]", "a/b"),
            "{what}"
        );
    }
    assert_eq!(e.version(), v, "nothing was stored");
    let (_, kept) = call(&app, "GET", &secret, None, "").await;
    assert_eq!(kept["data"], json!({ "ok": "eA==" }));
}

#[tokio::test]
async fn body_of_another_kind_is_refused_before_anything_is_stored() {
    let (e, app) = emu();
    let json = Some("application/json");
    let secret =
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"stringData":{"k":"v"}}"#;
    let (code, st) = call(&app, "POST", CM, json, secret).await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(
        st["message"],
        "Secret in version \"v1\" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"
    );
    // Without apiVersion the endpoint's version is assumed; kind is what differs.
    let (_, st) = call(
        &app,
        "POST",
        CM,
        json,
        r#"{"kind":"Secret","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(
        st["message"],
        "Secret in version \"v1\" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"
    );
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"}}"#;
    let (code, st) = call(&app, "POST", deployments, json, cm).await;
    assert_eq!(code, 400);
    assert_eq!(
        st["message"],
        "ConfigMap in version \"v1\" cannot be handled as a Deployment: converting (v1.ConfigMap) to (apps.Deployment): unknown conversion"
    );
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
    let (_, st) = call(&app, "POST", roles, json, cm).await;
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .ends_with("to (rbac.Role): unknown conversion"),
        "{st}"
    );
    call(
        &app,
        "POST",
        CM,
        json,
        r#"{"metadata":{"name":"held"},"data":{"k":"v"}}"#,
    )
    .await;
    let v = e.version();
    let held = format!("{CM}/held");
    let (code, st) = call(
        &app,
        "PUT",
        &held,
        json,
        &secret.replace("\"x\"", "\"held\""),
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("cannot be handled as a ConfigMap")
    );
    let (code, st) = apply(
        &app,
        &held,
        "alice",
        false,
        &secret.replace("\"x\"", "\"held\""),
    )
    .await;
    assert_eq!(
        (code, st["message"].as_str()),
        (400, Some("invalid object type: /v1, Kind=Secret"))
    );
    let (code, st) = apply(
        &app,
        &format!("{CM}/new"),
        "alice",
        false,
        &secret.replace("\"x\"", "\"new\""),
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (400, Some("BadRequest")));
    assert_eq!(e.version(), v, "nothing was stored");
    let (_, kept) = call(&app, "GET", &held, None, "").await;
    assert_eq!(kept["data"], json!({ "k": "v" }));
    assert_eq!(
        call(&app, "GET", &format!("{SECRETS}/x"), None, "").await.0,
        404
    );
    assert_eq!(
        call(&app, "GET", &format!("{CM}/new"), None, "").await.0,
        404
    );
}

#[tokio::test]
async fn custom_resource_of_another_kind_or_group_is_refused() {
    let (e, app) = emu();
    apply(&app, CRD, "alice", false, &crd(false)).await;
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let json = Some("application/json");
    let v = e.version();
    let gadget = r#"{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g"}}"#;
    let (code, st) = call(&app, "POST", widgets, json, gadget).await;
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        st["message"],
        "Widget.example.com \"g\" is invalid: kind: Invalid value: \"Gadget\": must be Widget"
    );
    assert_eq!(st["details"]["group"], "example.com");
    let secret = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
    let (code, st) = call(&app, "POST", widgets, json, secret).await;
    assert_eq!(code, 400);
    assert_eq!(
        st["message"],
        "Secret in version \"v1\" cannot be handled as a Widget: /v1, Kind=Secret is unstructured and is not suitable for converting to \"example.com/v1\""
    );
    assert_eq!(e.version(), v, "nothing was stored");
}

#[tokio::test]
async fn bodies_over_3_mib_are_refused_with_a_status() {
    let (e, app) = emu();
    let v = e.version();
    const LIMIT: usize = 3 * 1024 * 1024;
    // Padded with whitespace, so only the body is large, not the object.
    let sized = |n: usize| {
        let object = r#"{"metadata":{"name":"big"},"data":{"k":"v"}}"#;
        format!("{object}{}", " ".repeat(n - object.len()))
    };
    for (method, path, ct) in [
        ("POST", CM.to_string(), "application/json"),
        ("PATCH", format!("{CM}/big"), MERGE),
        ("PUT", format!("{CM}/big"), "application/json"),
    ] {
        let (code, st) = call(&app, method, &path, Some(ct), &sized(LIMIT + 1)).await;
        assert_eq!(
            (code, st),
            (
                413,
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Request entity too large: limit is 3145728",
                "reason": "RequestEntityTooLarge", "code": 413 })
            ),
            "{method}"
        );
    }
    assert_eq!(e.version(), v, "nothing was stored");
    let (code, _) = call(&app, "POST", CM, Some("application/json"), &sized(LIMIT)).await;
    assert_eq!(code, 201, "exactly the limit is accepted");
}

#[tokio::test]
async fn namespace_dot_dot_is_not_a_label() {
    let (e, app) = emu();
    let v = e.version();
    let (code, st) = call(
        &app,
        "POST",
        "/api/v1/namespaces",
        Some("application/json"),
        r#"{"metadata":{"name":".."}}"#,
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(
        st["message"],
        "Namespace \"..\" is invalid: metadata.name: Invalid value: \"..\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    );
    assert_eq!(e.version(), v);
}
