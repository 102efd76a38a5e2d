//! HTTP surface: discovery documents and the REST verbs on resource paths, with route
//! templates (`{resource}`, `{name}`, ...) so `MatchedPath` yields stable labels for stats.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use super::KubeEmulator;
use super::patch::{self, PatchKind};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{WriteOpts, shape, subject};
use super::table;
use super::types::ResourceType;
use super::validate::{self, MAX_BODY_BYTES};

type Emu = Arc<KubeEmulator>;
type Params = Query<HashMap<String, String>>;

/// One cluster's API at the server's root.
pub fn router(emu: Emu) -> Router {
    api().layer(Extension(emu))
}

/// Many clusters behind one listener, each under `/clusters/<name>` (a path prefix kubectl and
/// kube-rs keep from the kubeconfig's `server`, as behind Rancher's proxy): the prefix picks
/// the cluster, and route templates stay those of [`router`] under it.
pub fn fleet_router(clusters: Arc<BTreeMap<String, Emu>>) -> Router {
    Router::new()
        .nest(CLUSTER_PREFIX, api())
        .fallback(|| async { ApiError::no_route() })
        .layer(middleware::from_fn_with_state(clusters, select_cluster))
}

/// The route prefix of a fleet cluster's API.
pub const CLUSTER_PREFIX: &str = "/clusters/{cluster}";

/// The cluster a fleet request's path names: `/clusters/<name>/...`.
pub fn cluster_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/clusters/")?;
    rest.split('/').next().filter(|name| !name.is_empty())
}

/// Hands the named cluster's emulator to the API's handlers; an unknown name is a 404, as a
/// proxy answers for a cluster it does not know.
async fn select_cluster(
    AxState(clusters): AxState<Arc<BTreeMap<String, Emu>>>,
    mut req: Request,
    next: Next,
) -> Response {
    // A layer of the outer router runs before nesting strips the prefix from the URI.
    match cluster_of(req.uri().path()).and_then(|name| clusters.get(name)) {
        Some(emu) => {
            req.extensions_mut().insert(emu.clone());
            next.run(req).await
        }
        None => ApiError::no_route().into_response(),
    }
}

/// Every route, answered by the emulator in the request's extensions.
fn api() -> Router {
    let core = "/api/v1";
    let grp = "/apis/{group}/{version}";
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/api/v1", get(core_resources))
        .route("/apis", get(group_list))
        .route("/apis/{group}", get(group_doc))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/api/{version}", get(openapi_core))
        .route("/openapi/v3/apis/{group}/{version}", get(openapi_group))
        .route(&format!("{core}/{{resource}}"), any(resource_route))
        .route(
            &format!("{core}/{{resource}}/{{name}}"),
            any(resource_route),
        )
        .route(
            &format!("{core}/{{resource}}/{{name}}/{{sub}}"),
            any(resource_route),
        )
        .route(
            &format!("{core}/namespaces/{{namespace}}/{{resource}}"),
            any(resource_route),
        )
        .route(
            &format!("{core}/namespaces/{{namespace}}/{{resource}}/{{name}}"),
            any(resource_route),
        )
        .route(
            &format!("{core}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{sub}}"),
            any(resource_route),
        )
        .route(&format!("{grp}/{{resource}}"), any(resource_route))
        .route(&format!("{grp}/{{resource}}/{{name}}"), any(resource_route))
        .route(
            &format!("{grp}/{{resource}}/{{name}}/{{sub}}"),
            any(resource_route),
        )
        .route(
            &format!("{grp}/namespaces/{{namespace}}/{{resource}}"),
            any(resource_route),
        )
        .route(
            &format!("{grp}/namespaces/{{namespace}}/{{resource}}/{{name}}"),
            any(resource_route),
        )
        .route(
            &format!("{grp}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{sub}}"),
            any(resource_route),
        )
        .fallback(|| async { ApiError::no_route() })
        // The real server's request size limit; a larger body reaches the handlers as a
        // rejection they answer with the server's 413 Status (axum's own answer is plain text).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(auth))
}

#[derive(serde::Deserialize)]
struct GroupPath {
    group: String,
}

#[derive(serde::Deserialize)]
struct VersionPath {
    version: String,
}

#[derive(serde::Deserialize)]
struct GroupVersionPath {
    group: String,
    version: String,
}

async fn auth(Extension(emu): Extension<Emu>, req: Request, next: Next) -> Response {
    let want = format!("Bearer {}", emu.config.bearer_token);
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == want);
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn version() -> Response {
    axum::Json(json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "sandbox",
        "gitTreeState": "clean", "buildDate": "2025-04-22T00:00:00Z", "goVersion": "go1.23.8",
        "compiler": "gc", "platform": "linux/amd64",
    }))
    .into_response()
}

/// Discovery is served as plain JSON lists even when aggregated discovery is asked for:
/// clients see `Content-Type: application/json` and fall back to per-group documents.
fn discovery(v: Value) -> Response {
    axum::Json(v).into_response()
}

async fn api_versions(Extension(emu): Extension<Emu>) -> Response {
    discovery(emu.lock().registry.api_versions())
}

async fn core_resources(Extension(emu): Extension<Emu>) -> Response {
    discovery(emu.lock().registry.resource_list("", "v1"))
}

async fn group_list(Extension(emu): Extension<Emu>) -> Response {
    discovery(emu.lock().registry.group_list())
}

async fn group_doc(Extension(emu): Extension<Emu>, Path(p): Path<GroupPath>) -> Response {
    match emu.lock().registry.group(&p.group) {
        Some(doc) => discovery(doc),
        None => ApiError::no_route().into_response(),
    }
}

async fn group_resources(
    Extension(emu): Extension<Emu>,
    Path(p): Path<GroupVersionPath>,
) -> Response {
    let reg = &emu.lock().registry;
    if reg.has_group_version(&p.group, &p.version) {
        discovery(reg.resource_list(&p.group, &p.version))
    } else {
        ApiError::no_route().into_response()
    }
}

async fn openapi_index(Extension(emu): Extension<Emu>) -> Response {
    discovery(emu.lock().registry.openapi_v3_index())
}

async fn openapi_core(Extension(emu): Extension<Emu>, Path(p): Path<VersionPath>) -> Response {
    openapi_doc(&emu, "", &p.version)
}

async fn openapi_group(
    Extension(emu): Extension<Emu>,
    Path(p): Path<GroupVersionPath>,
) -> Response {
    openapi_doc(&emu, &p.group, &p.version)
}

fn openapi_doc(emu: &Emu, group: &str, version: &str) -> Response {
    match emu.lock().registry.openapi_v3_group_version(group, version) {
        Some(doc) => discovery(doc),
        None => ApiError::no_route().into_response(),
    }
}

/// Where a resource request points.
#[derive(Debug, Clone)]
struct Loc {
    group: String,
    version: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
    sub: Option<String>,
}

/// Everything a verb needs from the request.
struct Req {
    method: Method,
    params: HashMap<String, String>,
    headers: HeaderMap,
    /// The body, or why it could not be read (too large): refused only by verbs that read it.
    body: Result<Bytes, ApiError>,
}

impl Req {
    fn body(&self) -> Result<&[u8], ApiError> {
        self.body.as_deref().map_err(Clone::clone)
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// What a write handler checks before it decodes: the body's size (413), then the
    /// options (422), as the real handlers do. PATCH checks its content type before these.
    fn precheck(&self, options: &str, patch: Option<PatchKind>) -> Result<&[u8], ApiError> {
        let body = self.body()?;
        validate::options(options, &self.params, patch)?;
        Ok(body)
    }
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(MAX_BODY_BYTES)
        } else {
            ApiError::bad_request(e.body_text())
        }
    })
}

/// Every resource path: the route template's parameters say where it points (the core group
/// when there is no `group`).
async fn resource_route(
    Extension(emu): Extension<Emu>,
    Path(mut path): Path<HashMap<String, String>>,
    method: Method,
    Query(params): Params,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut take = |key: &str| path.remove(key);
    let loc = Loc {
        group: take("group").unwrap_or_default(),
        version: take("version").unwrap_or_else(|| "v1".into()),
        namespace: take("namespace"),
        resource: take("resource").unwrap_or_default(),
        name: take("name"),
        sub: take("sub"),
    };
    let req = Req {
        method,
        params,
        headers,
        body: read_body(body),
    };
    dispatch(&emu, namespace_subresource(loc), req)
}

/// `/api/v1/namespaces/{ns}/status` and `.../finalize` match the namespaced-collection route
/// but are subresources of the namespace.
fn namespace_subresource(loc: Loc) -> Loc {
    let is_sub = loc.group.is_empty()
        && loc.name.is_none()
        && matches!(loc.resource.as_str(), "status" | "finalize");
    match loc.namespace {
        Some(namespace) if is_sub => Loc {
            namespace: None,
            name: Some(namespace),
            sub: Some(loc.resource),
            resource: "namespaces".into(),
            ..loc
        },
        namespace => Loc { namespace, ..loc },
    }
}

fn dispatch(emu: &Emu, loc: Loc, req: Req) -> Response {
    match serve(emu, &loc, &req) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn resolve(emu: &Emu, loc: &Loc) -> Result<ResourceType, ApiError> {
    let st = emu.lock();
    let rt = st
        .registry
        .by_path(&loc.group, &loc.version, &loc.resource)
        .cloned()
        .ok_or_else(ApiError::no_route)?;
    let scoped_ok = rt.namespaced || loc.namespace.is_none();
    let named_needs_ns = rt.namespaced && loc.name.is_some() && loc.namespace.is_none();
    let sub_ok = match loc.sub.as_deref() {
        None => true,
        Some("status") => rt.has_status,
        Some("finalize") => rt.kind == "Namespace",
        Some("scale") => rt.kind == "Deployment",
        Some(_) => false,
    };
    if !scoped_ok || named_needs_ns || !sub_ok {
        return Err(ApiError::no_route());
    }
    Ok(rt)
}

fn opts(req: &Req) -> WriteOpts {
    let manager = req
        .params
        .get("fieldManager")
        .cloned()
        .filter(|m| !m.is_empty());
    let agent = req
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .map(String::from);
    WriteOpts {
        manager: manager.unwrap_or_else(|| agent.unwrap_or_else(|| "unknown".into())),
        dry_run: req.params.get("dryRun").is_some_and(|d| d == "All"),
        force: req.params.get("force").is_some_and(|f| f == "true"),
    }
}

fn serve(emu: &Emu, loc: &Loc, req: &Req) -> Result<Response, ApiError> {
    let rt = resolve(emu, loc)?;
    let ns = loc.namespace.as_deref();
    let status = loc.sub.as_deref() == Some("status");
    let Some(name) = loc.name.as_deref() else {
        return match req.method {
            Method::GET => list(emu, &rt, ns, req),
            Method::POST => create(emu, &rt, ns, req),
            Method::DELETE => delete_collection(emu, &rt, ns, req),
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource".to_string(),
            )),
        };
    };
    if loc.sub.as_deref() == Some("scale") {
        return scale(emu, &rt, ns, name, req);
    }
    match req.method {
        Method::GET => {
            let obj = emu.lock().get(&rt, ns, name)?;
            Ok(respond(&rt, obj, req, false))
        }
        // `PUT .../finalize` is a plain update: nothing here acts on spec.finalizers.
        Method::PUT => update(emu, &rt, ns, name, status, req),
        Method::PATCH => patch(emu, &rt, ns, name, status, req),
        Method::DELETE => delete(emu, &rt, ns, name, req),
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// POST: the body must be of the endpoint's type before anything is created.
fn create(emu: &Emu, rt: &ResourceType, ns: Option<&str>, req: &Req) -> Result<Response, ApiError> {
    let body = parse_body(req.precheck("CreateOptions", None)?, req.content_type())?;
    let mut st = emu.lock();
    validate::body_type(&st.registry, rt, &body, None)?;
    let obj = st.create(rt, ns, body, &opts(req))?;
    Ok((StatusCode::CREATED, axum::Json(obj)).into_response())
}

/// PUT: like POST, the body's type is checked before the update.
fn update(
    emu: &Emu,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    status: bool,
    req: &Req,
) -> Result<Response, ApiError> {
    let body = parse_body(req.precheck("UpdateOptions", None)?, req.content_type())?;
    let mut st = emu.lock();
    validate::body_type(&st.registry, rt, &body, Some(name))?;
    let obj = st.update(rt, ns, name, body, status, &opts(req))?;
    Ok(axum::Json(obj).into_response())
}

/// DELETE with optional `DeleteOptions` (JSON body): `preconditions` and `dryRun` apply;
/// propagation policies are moot since nothing here owns dependents.
fn delete(
    emu: &Emu,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    let options: Value = serde_json::from_slice(req.body()?).unwrap_or(Value::Null);
    let dry_run = opts(req).dry_run
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let mut st = emu.lock();
    let current = st.get(rt, ns, name)?;
    for field in ["uid", "resourceVersion"] {
        let want = options
            .pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str);
        let have = current
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(want) = want.filter(|w| *w != have) {
            let label = if field == "uid" {
                "UID"
            } else {
                "ResourceVersion"
            };
            return Err(ApiError::precondition(
                subject(rt, name),
                &format!(
                    "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                ),
            ));
        }
    }
    let obj = st.delete(rt, ns, name, dry_run)?;
    Ok(axum::Json(obj).into_response())
}

fn parse_body(body: &[u8], ct: &str) -> Result<Value, ApiError> {
    if ct.starts_with("application/vnd.kubernetes.protobuf") {
        return super::protobuf::decode(body).ok_or_else(|| ApiError::unsupported_media(ct));
    }
    if !(ct.is_empty() || ct.contains("json") || ct.contains("yaml")) {
        return Err(ApiError::unsupported_media(ct));
    }
    let v: Value = if ct.contains("yaml") {
        serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    };
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::bad_request("request body must be an object"))
    }
}

fn patch(
    emu: &Emu,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    status: bool,
    req: &Req,
) -> Result<Response, ApiError> {
    let kind = PatchKind::from_content_type(req.content_type())?;
    let body = req.precheck("PatchOptions", Some(kind))?;
    let mut o = opts(req);
    let mut st = emu.lock();
    if kind == PatchKind::Apply {
        // Apply has no user-agent default: the manager is named (the precheck saw to it).
        o.manager = req.params.get("fieldManager").cloned().unwrap_or_default();
        let existed = st.get(rt, ns, name).is_ok();
        let obj = st.apply(rt, ns, name, body, status, &o)?;
        let code = if existed || o.dry_run {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        return Ok((code, axum::Json(obj)).into_response());
    }
    let current = st.get(rt, ns, name)?;
    let patched = patch::apply_patch(kind, shape(rt), &current, body)?;
    if !patched.is_object() {
        return Err(ApiError::bad_request("the patch must leave an object"));
    }
    let obj = st.update(rt, ns, name, patched, status, &o)?;
    Ok(axum::Json(obj).into_response())
}

fn selectors(req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(
        req.params
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let f = FieldSelector::parse(
        req.params
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    Ok((l, f))
}

fn list(emu: &Emu, rt: &ResourceType, ns: Option<&str>, req: &Req) -> Result<Response, ApiError> {
    let (l, f) = selectors(req)?;
    if req
        .params
        .get("watch")
        .is_some_and(|w| w == "true" || w == "1")
    {
        let rv = req
            .params
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or_default();
        let send_initial = rv.is_empty() || rv == "0";
        let secs = req
            .params
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800);
        let timeout = std::time::Duration::from_secs(secs);
        return super::routes_watch::watch(emu, rt, ns, l, f, send_initial, timeout);
    }
    let st = emu.lock();
    let rv = st.rv.to_string();
    if wants_metadata(req) {
        let items: Vec<Value> = st
            .stored(rt, ns)
            .filter(|o| l.matches(o.pointer("/metadata/labels")) && f.matches(o))
            .map(partial)
            .collect();
        drop(st);
        let list = json!({
            "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": { "resourceVersion": rv }, "items": items,
        });
        return Ok(axum::Json(list).into_response());
    }
    let items: Vec<Value> = st
        .list(rt, ns)
        .filter(|o| l.matches(o.pointer("/metadata/labels")) && f.matches(o))
        .collect();
    drop(st);
    let list = json!({
        "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
        "metadata": { "resourceVersion": rv }, "items": items,
    });
    Ok(respond(rt, list, req, true))
}

fn delete_collection(
    emu: &Emu,
    rt: &ResourceType,
    ns: Option<&str>,
    req: &Req,
) -> Result<Response, ApiError> {
    // DeleteOptions may come in the body, so its size limit holds here too.
    req.body()?;
    let (l, f) = selectors(req)?;
    let dry_run = opts(req).dry_run;
    let mut st = emu.lock();
    let names: Vec<(Option<String>, String)> = st
        .list(rt, ns)
        .filter(|o| l.matches(o.pointer("/metadata/labels")) && f.matches(o))
        .map(|o| {
            let s = |p: &str| o.pointer(p).and_then(Value::as_str).map(String::from);
            (
                s("/metadata/namespace"),
                s("/metadata/name").unwrap_or_default(),
            )
        })
        .collect();
    let mut items = Vec::new();
    for (n, name) in names {
        items.push(st.delete(rt, n.as_deref(), &name, dry_run)?);
    }
    let list = json!({ "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                       "metadata": { "resourceVersion": st.rv.to_string() }, "items": items });
    Ok(axum::Json(list).into_response())
}

fn accept(req: &Req) -> &str {
    req.headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Whether the client asked for `meta.k8s.io/v1` PartialObjectMetadata (a metadata-only
/// read: kube-rs's `get_metadata`/`list_metadata`, controllers' metadata informers).
fn wants_metadata(req: &Req) -> bool {
    accept(req).contains("as=PartialObjectMetadata")
}

/// An object as PartialObjectMetadata: its metadata, as the API server sends it.
fn partial(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// JSON, a `meta.k8s.io/v1` Table when the client asks for one (kubectl get does), or
/// PartialObjectMetadata.
fn respond(rt: &ResourceType, v: Value, req: &Req, is_list: bool) -> Response {
    if wants_metadata(req) && !is_list {
        return axum::Json(partial(&v)).into_response();
    }
    let accept = accept(req);
    if !accept.contains("as=Table") {
        return axum::Json(v).into_response();
    }
    let include = req
        .params
        .get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata");
    let items: Vec<Value> = if is_list {
        v.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    } else {
        vec![v.clone()]
    };
    let rv = v
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(json!(""));
    axum::Json(table::table(rt, &items, rv, include)).into_response()
}

/// The `autoscaling/v1` Scale view of a Deployment.
fn scale_of(obj: &Value) -> Value {
    let labels = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let selector: Vec<String> = labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": { "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                      "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"] },
        "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
        "status": { "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
                    "selector": selector.join(",") },
    })
}

/// `/scale`: GET, PUT and PATCH change only `spec.replicas` of the Deployment.
fn scale(
    emu: &Emu,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    req: &Req,
) -> Result<Response, ApiError> {
    let mut st = emu.lock();
    let current = st.get(rt, ns, name)?;
    let view = scale_of(&current);
    let wanted = match req.method {
        Method::GET => return Ok(axum::Json(view).into_response()),
        Method::PUT => parse_body(req.precheck("UpdateOptions", None)?, req.content_type())?,
        Method::PATCH => {
            let kind = PatchKind::from_content_type(req.content_type())?;
            if kind == PatchKind::Apply {
                return Err(ApiError::method_not_allowed(
                    "apply is not supported on the scale subresource",
                ));
            }
            let body = req.precheck("PatchOptions", Some(kind))?;
            patch::apply_patch(kind, shape(rt), &view, body)?
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?;
    let mut next = current;
    if !next.get("spec").is_some_and(Value::is_object) {
        next["spec"] = json!({});
    }
    next["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = wanted.pointer("/metadata/resourceVersion") {
        next["metadata"]["resourceVersion"] = rv.clone();
    }
    let obj = st.update(rt, ns, name, next, false, &opts(req))?;
    Ok(axum::Json(scale_of(&obj)).into_response())
}
