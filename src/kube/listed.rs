//! Refresh reads by kind: instead of one GET per object, one cluster-wide LIST per kind of
//! the objects the apply engine stamped with [`APPLIED_LABEL`], shared by every resource of
//! the cluster that refreshes at the same time (a bootstrap, its tenants and agentk's install
//! read Namespaces, ServiceAccounts, Deployments ... once between them).
//!
//! A name the list lacks is confirmed with a GET, so an object applied before the label
//! existed, or whose label was edited away, is still found as it is. An object is handed out
//! once (each belongs to one owner; a second reader GETs it), so a fleet's lists shrink as its
//! resources read them instead of holding every cluster's CRDs at once. Lists are kept briefly
//! ([`LIST_TTL`]) and dropped on any write through the client: they serve one refresh, and
//! what an apply reads stays fresh. A kind the credentials may not list cluster-wide is read
//! object by object, as before.
//!
//! A kind whose objects are large can be listed by metadata alone ([`Shape::Metadata`]): the
//! caller then judges the object from what its metadata records (see the engine's
//! fingerprints), and reads it in full only when that is not enough.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{KubeClient, KubeError, ObjRef};
use crate::single_flight::{Fetch, SingleFlight};

/// The label the apply engine puts on every object it applies, and the refresh lists by.
pub const APPLIED_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", super::FIELD_MANAGER);

/// How long one list answers for: a refresh of hundreds of resources reads within seconds,
/// and a plan's later reads must not see a world older than that.
const LIST_TTL: Duration = Duration::from_secs(15);

/// How much of each object a refresh list carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Whole,
    /// Metadata only (PartialObjectMetadata), with `apiVersion` and `kind`.
    Metadata,
}

/// What a refresh read found of an object.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Whole(Value),
    /// `apiVersion`, `kind` and `metadata`: all a [`Shape::Metadata`] list carries.
    Metadata(Value),
}

impl Seen {
    pub fn object(&self) -> &Value {
        match self {
            Seen::Whole(object) | Seen::Metadata(object) => object,
        }
    }

    pub fn into_object(self) -> Value {
        match self {
            Seen::Whole(object) | Seen::Metadata(object) => object,
        }
    }
}

/// `(apiVersion, kind, shape)`.
type KindKey = (String, String, Shape);

/// `(namespace, name)`.
type Name = (Option<String>, String);

/// One kind's labelled objects not yet handed out, or `None` when the kind cannot be listed
/// with these credentials. Objects wait as JSON text: a fleet's refresh lists every
/// cluster's kinds as its first resources read, and holds each object until its owner does,
/// and text takes a fraction of the memory of a parsed tree.
struct Listed(Option<Mutex<HashMap<Name, Box<[u8]>>>>);

impl Listed {
    /// The object, taken out of the list; `None` when the list cannot say (never had it,
    /// or handed it out already).
    fn take(&self, name: &Name) -> Option<Value> {
        let objects = self.0.as_ref()?;
        let text = objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)?;
        serde_json::from_slice(&text).ok()
    }
}

/// A read, and when it was made.
struct Kept<V> {
    value: V,
    fetched: Instant,
}

/// `cache`'s read of `key`, made again by `fetch` when older than [`LIST_TTL`]: reads serve
/// one refresh, and a plan's later reads must not see an older world.
async fn kept<K, V>(
    cache: &SingleFlight<K, Kept<V>, KubeError>,
    key: K,
    fetch: impl Fn() -> BoxFuture<'static, Result<V, KubeError>>,
) -> Result<Arc<Kept<V>>, KubeError>
where
    K: Eq + Hash + Clone,
    V: Send + Sync + 'static,
{
    let start = || -> Fetch<Kept<V>, KubeError> {
        let read = fetch();
        async move {
            Ok(Arc::new(Kept {
                value: read.await?,
                fetched: Instant::now(),
            }))
        }
        .boxed()
    };
    let found = cache.get(key.clone(), start).await?;
    if found.fetched.elapsed() < LIST_TTL {
        return Ok(found);
    }
    cache.invalidate(&key);
    cache.get(key, start).await
}

/// The lists of one cluster connection, and the single objects read recently.
#[derive(Default)]
pub(crate) struct ListedReads {
    lists: SingleFlight<KindKey, Kept<Listed>, KubeError>,
    recent: SingleFlight<ObjRef, Kept<Option<Value>>, KubeError>,
}

impl ListedReads {
    /// Drops every list and recent read: something was written.
    pub(crate) fn forget(&self) {
        self.lists.clear();
        self.recent.clear();
    }
}

impl KubeClient {
    /// The object as a refresh sees it (see the module docs), or `None` when it does not
    /// exist.
    pub async fn get_for_refresh(&self, r: &ObjRef) -> Result<Option<Value>, KubeError> {
        Ok(self
            .seen_for_refresh(r, Shape::Whole)
            .await?
            .map(Seen::into_object))
    }

    /// The object as a refresh sees it, from a list of `shape`; an object the list lacks is
    /// read whole.
    pub async fn seen_for_refresh(
        &self,
        r: &ObjRef,
        shape: Shape,
    ) -> Result<Option<Seen>, KubeError> {
        let mut scoped = r.clone();
        self.scoped(&mut scoped).await?;
        let listed = self.listed(&r.api_version, &r.kind, shape).await?;
        match listed.value.take(&(scoped.namespace, scoped.name)) {
            Some(found) if shape == Shape::Metadata => Ok(Some(Seen::Metadata(found))),
            Some(found) => Ok(Some(Seen::Whole(found))),
            None => Ok(self.get(r).await?.map(Seen::Whole)),
        }
    }

    /// Lists the kind in `shape` as [`Self::seen_for_refresh`] will, and keeps the list for
    /// the reads that follow.
    pub async fn list_for_refresh(
        &self,
        api_version: &str,
        kind: &str,
        shape: Shape,
    ) -> Result<(), KubeError> {
        self.listed(api_version, kind, shape).await.map(drop)
    }

    /// The object, read with one GET shared by every reader for as long as a list is kept
    /// and until this client writes: for an object that more than one resource reads (an
    /// agent token's Secret: the token checks the value it holds, the install the value it
    /// mounts), where a list of its kind would be too much (most Secrets are not ours).
    pub async fn get_recent(&self, r: &ObjRef) -> Result<Option<Value>, KubeError> {
        let mut scoped = r.clone();
        self.scoped(&mut scoped).await?;
        let (client, fetch) = (self.clone(), scoped.clone());
        let read = kept(&self.listed_reads().recent, scoped, move || {
            let (client, r) = (client.clone(), fetch.clone());
            async move { client.get(&r).await }.boxed()
        })
        .await?;
        Ok(read.value.clone())
    }

    async fn listed(
        &self,
        api_version: &str,
        kind: &str,
        shape: Shape,
    ) -> Result<Arc<Kept<Listed>>, KubeError> {
        let key = (api_version.to_string(), kind.to_string(), shape);
        let (client, fetch_key) = (self.clone(), key.clone());
        kept(&self.listed_reads().lists, key, move || {
            let (client, (api_version, kind, shape)) = (client.clone(), fetch_key.clone());
            async move { client.labelled(&api_version, &kind, shape).await }.boxed()
        })
        .await
    }

    /// The kind's objects bearing [`APPLIED_LABEL`], in `shape`.
    async fn labelled(
        &self,
        api_version: &str,
        kind: &str,
        shape: Shape,
    ) -> Result<Listed, KubeError> {
        let selector = format!("{}={}", APPLIED_LABEL.0, APPLIED_LABEL.1);
        let listed = match shape {
            Shape::Whole => self.list(api_version, kind, None, Some(&selector)).await,
            Shape::Metadata => self.list_metadata(api_version, kind, Some(&selector)).await,
        };
        match listed {
            Ok(items) => Ok(Listed(Some(Mutex::new(by_name(items))))),
            Err(KubeError::Forbidden { .. }) => Ok(Listed(None)),
            Err(e) => Err(e),
        }
    }
}

/// Indexes a list. Managed fields and status are dropped: no refresh reads them (drift
/// compares what the manifest sets, and manifests set no status), managed fields are often
/// half of an object, and they would be kept for every cluster of a fleet.
fn by_name(items: Vec<Value>) -> HashMap<Name, Box<[u8]>> {
    items
        .into_iter()
        .filter_map(|mut item| {
            if let Some(top) = item.as_object_mut() {
                top.remove("status");
            }
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
            let meta = item.get("metadata")?;
            let name = meta.get("name")?.as_str()?.to_string();
            let namespace = meta
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string);
            let text = serde_json::to_vec(&item).ok()?.into_boxed_slice();
            Some(((namespace, name), text))
        })
        .collect()
}
