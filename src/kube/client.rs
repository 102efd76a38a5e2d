//! [`KubeClient`]: one pooled connection to one cluster, with cached discovery, retries and
//! the provider's stop token, and the generic operations on dynamic objects (server-side
//! apply, get, list, delete) that resources and the Flux apply engine build on.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::connect::config_for;
use super::discovery::{DiscoveryCache, Resolved};
use super::error::{Ctx, KubeError, classify, is_retryable, retry_after};
use super::listed::ListedReads;
use crate::kube::settings::ClusterSettings;
use crate::net::{self, Backoff};

/// Requests one client sends a cluster at once. Over HTTP/1.1 each concurrent request holds
/// a connection of its own, which then idles in the pool, buffers and TLS session kept, for
/// the provider's life: a fleet's refresh had ~4 per cluster open, 17 MB of a 100-cluster
/// plan's heap. Two keep a refresh's list and its follow-up GETs overlapping, and an apply
/// still has more in flight than `kubectl apply`, which sends one at a time.
pub(super) const IN_FLIGHT: usize = 2;

/// Field manager of everything the provider applies.
pub const FIELD_MANAGER: &str = "gitlabflux";

/// Labels on every object the provider creates itself (as opposed to rendering from a
/// distribution): who manages it and which part of the product it belongs to.
pub fn managed_labels(component: &str) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

/// Addresses one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjRef {
    pub fn new(
        api_version: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    /// The reference of a manifest (`apiVersion`, `kind`, `metadata.name`/`namespace`).
    pub fn of(object: &Value) -> Result<Self, KubeError> {
        let field = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        let missing = |what: &str| KubeError::Invalid {
            object: "manifest".into(),
            message: format!("{what} is missing"),
        };
        Ok(Self {
            api_version: field("/apiVersion")
                .ok_or_else(|| missing("apiVersion"))?
                .into(),
            kind: field("/kind").ok_or_else(|| missing("kind"))?.into(),
            namespace: field("/metadata/namespace")
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            name: field("/metadata/name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| missing("metadata.name"))?
                .into(),
        })
    }
}

/// `Deployment flux-system/helm-controller`, `ClusterRole flux-edit`.
impl fmt::Display for ObjRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A connection to one cluster. Cheap to clone: clones share the HTTP connection pool and the
/// discovery cache.
#[derive(Clone)]
pub struct KubeClient {
    client: Client,
    host: Arc<str>,
    default_namespace: Arc<str>,
    discovery: Arc<DiscoveryCache>,
    listed: Arc<ListedReads>,
    /// Requests to this cluster in flight at once, at most [`IN_FLIGHT`].
    in_flight: Arc<Semaphore>,
    stop: CancellationToken,
}

impl fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeClient")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl KubeClient {
    /// Builds the client. No API request is made until the first operation, so an
    /// unreachable host or a rejected token surfaces as that operation's error; an exec
    /// plugin, though, runs now (kube-rs fetches its first credential when building), and a
    /// failing one is a [`KubeError::Config`].
    pub async fn connect(
        settings: &ClusterSettings,
        stop: CancellationToken,
    ) -> Result<Self, KubeError> {
        let config = config_for(settings).await?;
        let host = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        // kube-rs builds its TLS connector for http:// hosts too.
        net::install_crypto_provider();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| KubeError::Config {
            message: format!("cannot set up a client for {host}: {e}"),
        })?;
        Ok(Self {
            client,
            host: host.into(),
            default_namespace: default_namespace.into(),
            discovery: Arc::default(),
            listed: Arc::default(),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            stop,
        })
    }

    /// The API server URL, without a trailing slash.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying kube-rs client, for operations this layer does not wrap.
    pub fn raw(&self) -> &Client {
        &self.client
    }

    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// [`with_retries`], once one of the [`IN_FLIGHT`] lanes is free; the lane is held
    /// through the retries' waits too, so a server that asks for a pause gets it from every
    /// request of this client.
    async fn send<T, F, Fut>(&self, ctx: &Ctx<'_>, op: F) -> Result<T, KubeError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ::kube::Error>>,
    {
        // Never closed; were it, requests would just go out unbounded.
        let _lane = self.in_flight.acquire().await.ok();
        with_retries(&self.stop, ctx, op).await
    }

    pub(crate) fn listed_reads(&self) -> &ListedReads {
        &self.listed
    }

    pub(crate) fn ctx(&self, object: String, verb: &'static str) -> Ctx<'_> {
        Ctx {
            host: &self.host,
            object,
            verb,
        }
    }

    /// Server-side apply with field manager [`FIELD_MANAGER`]; `force` takes ownership of
    /// fields other managers hold. Returns the object as stored.
    pub async fn apply(&self, object: &Value, force: bool) -> Result<Value, KubeError> {
        self.apply_as(object, FIELD_MANAGER, force).await
    }

    /// [`KubeClient::apply`] with another field manager, for callers that must own fields
    /// separately (e.g. one key of a shared Secret).
    pub(crate) async fn apply_as(
        &self,
        object: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, KubeError> {
        let mut r = ObjRef::of(object)?;
        let (api, resolved) = self.api_for(&mut r).await?;
        let mut body = object.clone();
        match body["metadata"].as_object_mut() {
            Some(meta) if resolved.namespaced => {
                meta.insert("namespace".into(), Value::from(r.namespace.clone()));
            }
            Some(meta) => {
                meta.remove("namespace");
            }
            None => {}
        }
        self.listed.forget();
        let mut params = PatchParams::apply(manager);
        params.force = force;
        let ctx = self.ctx(r.to_string(), "apply");
        let patch = Patch::Apply(&body);
        let stored = self
            .send(&ctx, || api.patch(&r.name, &params, &patch))
            .await?;
        to_json(stored, &resolved)
    }

    /// The object, or `None` when it does not exist.
    pub async fn get(&self, r: &ObjRef) -> Result<Option<Value>, KubeError> {
        let mut r = r.clone();
        let (api, resolved) = self.api_for(&mut r).await?;
        let ctx = self.ctx(r.to_string(), "get");
        let found = self.send(&ctx, || api.get_opt(&r.name)).await?;
        found.map(|o| to_json(o, &resolved)).transpose()
    }

    /// Sets annotations on an existing object (see [`KubeClient::merge_patch`]).
    pub async fn annotate(
        &self,
        r: &ObjRef,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), KubeError> {
        let patch = serde_json::json!({ "metadata": { "annotations": annotations } });
        self.merge_patch(r, patch, "annotate").await
    }

    /// A JSON merge patch as our field manager: an "Update" entry, so later applies of the
    /// object's manifest leave the patched fields alone. Retried, so callers' patches must be
    /// idempotent (setting values, never appending).
    pub async fn merge_patch(
        &self,
        r: &ObjRef,
        patch: Value,
        verb: &'static str,
    ) -> Result<(), KubeError> {
        let mut r = r.clone();
        let (api, _) = self.api_for(&mut r).await?;
        self.listed.forget();
        let ctx = self.ctx(r.to_string(), verb);
        let patch = Patch::Merge(patch);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        self.send(&ctx, || api.patch(&r.name, &params, &patch))
            .await
            .map(drop)
    }

    /// Deletes with background propagation. An object already gone is success, and so is a
    /// kind the cluster no longer serves (its CRD was deleted, and its objects with it), so
    /// destroy never fails on teardown order.
    pub async fn delete(&self, r: &ObjRef) -> Result<(), KubeError> {
        let mut r = r.clone();
        let api = match self.api_for(&mut r).await {
            Ok((api, _)) => api,
            Err(KubeError::UnknownKind { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.listed.forget();
        let ctx = self.ctx(r.to_string(), "delete");
        let params = DeleteParams::background();
        match self.send(&ctx, || api.delete(&r.name, &params)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Objects of a kind; `namespace: None` lists all namespaces. Items carry `apiVersion`
    /// and `kind` even though list responses may omit them.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, KubeError> {
        let ListRequest {
            api,
            resolved,
            params,
            ctx,
        } = self
            .list_request(api_version, kind, namespace, label_selector)
            .await?;
        let list = self.send(&ctx, || api.list(&params)).await?;
        list.items
            .into_iter()
            .map(|o| to_json(o, &resolved))
            .collect()
    }

    /// Like [`KubeClient::list`], but only each object's metadata (as PartialObjectMetadata),
    /// with its `apiVersion` and `kind`: for kinds whose objects are large and whose
    /// metadata tells enough (a CRD repeats its whole schema).
    pub async fn list_metadata(
        &self,
        api_version: &str,
        kind: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, KubeError> {
        let ListRequest {
            api,
            resolved,
            params,
            ctx,
        } = self
            .list_request(api_version, kind, None, label_selector)
            .await?;
        let list = self.send(&ctx, || api.list_metadata(&params)).await?;
        list.items
            .into_iter()
            .map(|o| {
                let metadata = serde_json::to_value(o.metadata).map_err(|e| KubeError::Api {
                    status: 0,
                    request: format!("list {kind} metadata"),
                    message: format!("cannot encode {kind} metadata: {e}"),
                })?;
                Ok(serde_json::json!({
                    "apiVersion": resolved.resource.api_version,
                    "kind": resolved.resource.kind,
                    "metadata": metadata,
                }))
            })
            .collect()
    }

    async fn list_request(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<ListRequest<'_>, KubeError> {
        let resolved = self.resolve(api_version, kind).await?;
        let api: Api<DynamicObject> = match namespace {
            Some(ns) if resolved.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &resolved.resource)
            }
            _ => Api::all_with(self.client.clone(), &resolved.resource),
        };
        let params = ListParams {
            label_selector: label_selector.map(str::to_string),
            ..ListParams::default()
        };
        let what = match namespace {
            Some(ns) => format!("{kind} in namespace {ns}"),
            None => format!("{kind} objects"),
        };
        let ctx = self.ctx(what, "list");
        Ok(ListRequest {
            api,
            resolved,
            params,
            ctx,
        })
    }

    pub(crate) async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Resolved, KubeError> {
        self.discovery
            .resolve(&self.client, &self.host, &self.stop, api_version, kind)
            .await
    }

    /// The API handle for `r`; fills in the context's default namespace for a namespaced
    /// kind given without one, and drops the namespace of a cluster-scoped kind.
    async fn api_for(&self, r: &mut ObjRef) -> Result<(Api<DynamicObject>, Resolved), KubeError> {
        let resolved = self.scoped(r).await?;
        let api = match &r.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resolved.resource),
            None => Api::all_with(self.client.clone(), &resolved.resource),
        };
        Ok((api, resolved))
    }

    /// Resolves `r`'s kind and puts its namespace as the server keys it: the context's
    /// default for a namespaced kind given without one, none for a cluster-scoped kind.
    pub(crate) async fn scoped(&self, r: &mut ObjRef) -> Result<Resolved, KubeError> {
        let resolved = self.resolve(&r.api_version, &r.kind).await?;
        if resolved.namespaced {
            r.namespace
                .get_or_insert_with(|| self.default_namespace.to_string());
        } else {
            r.namespace = None;
        }
        Ok(resolved)
    }
}

/// Attempts per request, the first included.
const ATTEMPTS: u32 = 4;
/// 200 ms doubling up to 5 s; the server's `Retry-After` is honoured up to 5 s too.
const RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Runs an idempotent request (get, list, server-side apply, delete, discovery) until it
/// succeeds, fails for good, runs out of attempts or the provider is stopped. Connection
/// errors, 429 and 5xx are retried after the [`RETRY`] backoff or the server's `Retry-After`.
pub(super) async fn with_retries<T, F, Fut>(
    stop: &CancellationToken,
    ctx: &Ctx<'_>,
    mut op: F,
) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ::kube::Error>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match net::cancellable(stop, op()).await? {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        if attempt >= ATTEMPTS || !is_retryable(&err) {
            return Err(classify(err, ctx));
        }
        let delay = RETRY.wait(attempt - 1, retry_after(&err));
        tracing::debug!(
            object = %ctx.object,
            verb = ctx.verb,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "retrying Kubernetes request"
        );
        net::sleep(stop, delay).await?;
    }
}

/// A list about to be sent: the kind's API, what discovery said of it, the parameters, and
/// the context its errors are told in.
struct ListRequest<'a> {
    api: Api<DynamicObject>,
    resolved: Resolved,
    params: ListParams,
    ctx: Ctx<'a>,
}

fn to_json(object: DynamicObject, resolved: &Resolved) -> Result<Value, KubeError> {
    let mut value = serde_json::to_value(&object).map_err(|e| KubeError::Api {
        status: 0,
        request: format!("read a {} object", resolved.resource.kind),
        message: format!("cannot encode a {} object: {e}", resolved.resource.kind),
    })?;
    if value.get("apiVersion").is_none_or(Value::is_null) {
        value["apiVersion"] = Value::from(resolved.resource.api_version.clone());
    }
    if value.get("kind").is_none_or(Value::is_null) {
        value["kind"] = Value::from(resolved.resource.kind.clone());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn obj_ref_of_a_manifest() {
        let r = ObjRef::of(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod"}}))
        .expect("ref");
        assert_eq!(r.to_string(), "Deployment prod/web");
        let err = ObjRef::of(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}))
            .expect_err("no name");
        assert!(err.detail().contains("metadata.name"));
    }

    #[test]
    fn retry_backoff_grows_and_is_capped() {
        // 5 s ceiling plus 200 ms of slack; the first wait stays under 250 ms.
        for attempt in 0..9 {
            let d = RETRY.delay(attempt);
            assert!(d <= Duration::from_millis(5_200), "{d:?}");
        }
        assert!(RETRY.delay(0) <= Duration::from_millis(250));
    }
}
