//! Kubernetes API emulator for the sandbox: discovery, built-in and CRD-defined kinds,
//! server-side apply with managed fields, patches, selectors, finalizers and namespace
//! cascade, served over HTTP by axum so the real `kubectl` and the provider's client can
//! talk to it. State lives behind one mutex that is never held across an `.await`.
//!
//! Serve it over HTTPS ([`TlsIdentity`]) when the real kubectl is the client: client-go only
//! sends a kubeconfig's bearer token over TLS, so over plain HTTP every kubectl request
//! would get 401.

mod apply;
mod fields;
mod managed;
mod patch;
mod protobuf;
mod routes;
mod routes_watch;
mod selector;
mod status;
mod store;
mod table;
#[cfg(test)]
mod tests;
mod tls;
mod types;
mod validate;

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

pub use managed::now;
pub use routes::{CLUSTER_PREFIX, cluster_of};
use store::{ObjKey, State, WriteOpts};
pub use tls::{TlsIdentity, TlsListener};
use types::ResourceType;

/// Emulator configuration.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// Required on every request as `Authorization: Bearer <token>`; 401 `Status` otherwise.
    pub bearer_token: String,
}

/// Addresses one object by type and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// A change to a stored object, as a watch would report it.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
}

/// Failures of the in-process API.
#[derive(Debug, thiserror::Error)]
pub enum KubeEmulatorError {
    #[error("unknown kind {0}")]
    UnknownKind(String),
    #[error("{0}")]
    Api(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("persisted state is malformed: {0}")]
    Persisted(String),
}

impl From<status::ApiError> for KubeEmulatorError {
    fn from(e: status::ApiError) -> Self {
        Self::Api(e.message)
    }
}

/// The emulated API server.
pub struct KubeEmulator {
    config: KubeConfig,
    state: Mutex<State>,
    events: broadcast::Sender<ObjectEvent>,
}

/// How many object events a watcher may fall behind before its watch expires.
const EVENT_WINDOW: usize = 256;

const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl KubeEmulator {
    fn empty(config: KubeConfig) -> Self {
        // Every slot is allocated up front, for every cluster of a fleet (72 bytes each). Writes
        // come one request at a time, so a live watcher keeps up; one further behind is told
        // to list again.
        let (events, _) = broadcast::channel(EVENT_WINDOW);
        Self {
            config,
            state: Mutex::new(State::new(events.clone())),
            events,
        }
    }

    /// A fresh cluster with the default namespaces.
    pub fn new(config: KubeConfig) -> Arc<Self> {
        let emu = Self::empty(config);
        {
            let mut st = emu.lock();
            if let Some(rt) = st.registry.by_kind("v1", "Namespace").cloned() {
                let opts = WriteOpts {
                    manager: "kube-apiserver".into(),
                    ..Default::default()
                };
                for ns in DEFAULT_NAMESPACES {
                    let obj = json!({ "metadata": { "name": ns, "labels": { "kubernetes.io/metadata.name": ns } } });
                    let _ = st.create(&rt, None, obj, &opts);
                }
            }
        }
        Arc::new(emu)
    }

    /// Rebuilds an emulator from [`KubeEmulator::persisted`] output.
    pub fn restore(config: KubeConfig, persisted: Value) -> Result<Arc<Self>, KubeEmulatorError> {
        let emu = Self::empty(config);
        {
            let mut st = emu.lock();
            st.rv = persisted
                .get("resourceVersion")
                .and_then(Value::as_u64)
                .unwrap_or_default();
            let objects = persisted
                .get("objects")
                .and_then(Value::as_array)
                .ok_or_else(|| KubeEmulatorError::Persisted("missing objects".into()))?;
            let (crds, rest): (Vec<&Value>, Vec<&Value>) = objects
                .iter()
                .partition(|o| o.get("kind") == Some(&json!("CustomResourceDefinition")));
            for obj in crds.into_iter().chain(rest) {
                restore_one(&mut st, obj)?;
            }
        }
        Ok(Arc::new(emu))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every object, the registered CRD names and the resourceVersion counter.
    pub fn persisted(&self) -> Value {
        let st = self.lock();
        let crds: Vec<&String> = st
            .objects
            .keys()
            .filter(|k| k.group == store::CRD_GROUP && k.kind == "CustomResourceDefinition")
            .map(|k| &k.name)
            .collect();
        json!({ "resourceVersion": st.rv, "crds": crds, "objects": st.objects.values().collect::<Vec<_>>() })
    }

    /// Increments on every mutation (it is the resourceVersion counter).
    pub fn version(&self) -> u64 {
        self.lock().rv
    }

    pub fn objects(&self) -> Vec<Value> {
        self.lock().objects.values().cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ObjectEvent> {
        self.events.subscribe()
    }

    pub fn get(&self, r: &ObjectRef) -> Option<Value> {
        let st = self.lock();
        let rt = st.registry.by_kind(&r.api_version, &r.kind)?;
        st.get(rt, r.namespace.as_deref(), &r.name).ok()
    }

    /// All objects of a kind, across namespaces.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let st = self.lock();
        match st.registry.by_kind(api_version, kind) {
            Some(rt) => st.list(rt, None).collect(),
            None => Vec::new(),
        }
    }

    /// Replaces `.status` (status subresource semantics: bumps resourceVersion, never
    /// generation), as a controller would.
    pub fn set_status(&self, r: &ObjectRef, status: Value) -> Result<(), KubeEmulatorError> {
        let mut st = self.lock();
        let rt = served(&st, r)?;
        let opts = WriteOpts {
            manager: "sandbox-controller".into(),
            ..Default::default()
        };
        st.update(
            &rt,
            r.namespace.as_deref(),
            &r.name,
            json!({ "status": status }),
            true,
            &opts,
        )?;
        Ok(())
    }

    /// Sets one annotation as `manager` would with an update, the way Flux's CLI and
    /// notification-controller request a reconcile.
    pub fn annotate(
        &self,
        r: &ObjectRef,
        key: &str,
        value: &str,
        manager: &str,
    ) -> Result<(), KubeEmulatorError> {
        let mut st = self.lock();
        let rt = served(&st, r)?;
        let mut obj = st.get(&rt, r.namespace.as_deref(), &r.name)?;
        obj["metadata"]["annotations"][key] = json!(value);
        let opts = WriteOpts {
            manager: manager.into(),
            ..Default::default()
        };
        st.update(&rt, r.namespace.as_deref(), &r.name, obj, false, &opts)?;
        Ok(())
    }

    /// Kubeconfig YAML pointing at `server_url` with this emulator's token, context `sandbox`.
    /// For an `https` URL without a CA the certificate is not verified: kubectl sends bearer
    /// tokens over TLS only, so HTTPS is required for the real kubectl to authenticate.
    pub fn kubeconfig(&self, server_url: &str) -> String {
        self.kubeconfig_with_ca(server_url, None)
    }

    /// Like [`KubeEmulator::kubeconfig`], trusting `ca_pem` (see [`TlsIdentity::cert_pem`]).
    pub fn kubeconfig_with_ca(&self, server_url: &str, ca_pem: Option<&str>) -> String {
        kubeconfig(&[("sandbox", server_url, self)], ca_pem)
    }

    /// The HTTP API of many clusters behind one listener, each under `/clusters/<name>`.
    pub fn fleet_router(
        clusters: Arc<std::collections::BTreeMap<String, Arc<Self>>>,
    ) -> axum::Router {
        routes::fleet_router(clusters)
    }

    /// The HTTP API (bearer-token protected).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        routes::router(self.clone())
    }
}

/// Kubeconfig YAML with one context per `(name, server URL, emulator)`, its cluster and user
/// named alike, the first current; every server trusted through `ca_pem` when given.
pub fn kubeconfig(contexts: &[(&str, &str, &KubeEmulator)], ca_pem: Option<&str>) -> String {
    use base64::Engine;
    let ca = ca_pem.map(|pem| base64::engine::general_purpose::STANDARD.encode(pem));
    let server = |url: &str| {
        let mut cluster = json!({ "server": url });
        match &ca {
            Some(data) => cluster["certificate-authority-data"] = json!(data),
            None if url.starts_with("https://") => {
                cluster["insecure-skip-tls-verify"] = json!(true)
            }
            None => {}
        }
        cluster
    };
    let doc = json!({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": contexts.iter().map(|(name, url, _)| json!({ "name": name, "cluster": server(url) })).collect::<Vec<_>>(),
        "users": contexts.iter().map(|(name, _, emu)| json!({ "name": name, "user": { "token": emu.config.bearer_token } })).collect::<Vec<_>>(),
        "contexts": contexts.iter().map(|(name, _, _)| json!({ "name": name, "context": { "cluster": name, "user": name, "namespace": "default" } })).collect::<Vec<_>>(),
        "current-context": contexts.first().map_or("", |(name, _, _)| name),
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

fn restore_one(st: &mut State, obj: &Value) -> Result<(), KubeEmulatorError> {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (av, kind) = (s("/apiVersion"), s("/kind"));
    let rt = st
        .registry
        .by_kind(&av, &kind)
        .cloned()
        .ok_or_else(|| KubeEmulatorError::UnknownKind(format!("{av}/{kind}")))?;
    let ns = s("/metadata/namespace");
    let key = ObjKey::new(&rt, Some(&ns), &s("/metadata/name"));
    if rt.kind == "CustomResourceDefinition" && rt.group == store::CRD_GROUP {
        st.register_crd(obj);
    }
    st.objects.insert(key, obj.clone());
    Ok(())
}

/// The resource type of `r`'s kind, which the cluster must serve.
fn served(st: &State, r: &ObjectRef) -> Result<ResourceType, KubeEmulatorError> {
    st.registry
        .by_kind(&r.api_version, &r.kind)
        .cloned()
        .ok_or_else(|| KubeEmulatorError::UnknownKind(format!("{}/{}", r.api_version, r.kind)))
}
