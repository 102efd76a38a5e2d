//! Single-flight cache (GitLab reads, Kubernetes discovery): concurrent callers asking for the
//! same key share one fetch, and the result is kept until invalidated. Errors are shared with the callers already waiting but
//! not cached, so the next caller tries again.
//!
//! The map's lock is a plain mutex held only for map operations, never across an `.await`:
//! Terraform runs up to ten RPCs at once and none may wait on another's I/O needlessly.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

/// A fetch of one value; its error is handed to every caller waiting on it.
pub(crate) type Fetch<V, E> = BoxFuture<'static, Result<Arc<V>, E>>;

/// A fetch in flight and the id of the slot it fills.
type Pending<V, E> = (u64, Shared<Fetch<V, E>>);

enum Slot<V, E> {
    /// A fetch in flight; `id` tells whether the slot was invalidated (and maybe refilled)
    /// while it ran, in which case its result must not be stored.
    Loading {
        id: u64,
        fetch: Shared<Fetch<V, E>>,
    },
    Ready(Arc<V>),
}

pub(crate) struct SingleFlight<K, V, E> {
    slots: Mutex<HashMap<K, Slot<V, E>>>,
    next_id: AtomicU64,
}

impl<K, V, E> Default for SingleFlight<K, V, E>
where
    K: Eq + Hash + Clone,
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Eq + Hash + Clone,
    V: Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    pub fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// The cached value, the fetch already in flight, or a new fetch from `start`.
    pub async fn get(&self, key: K, start: impl FnOnce() -> Fetch<V, E>) -> Result<Arc<V>, E> {
        let (id, fetch) = match self.join_or_start(&key, start) {
            Ok(ready) => return Ok(ready),
            Err(pending) => pending,
        };
        let result = fetch.await;
        let mut slots = self.lock();
        if matches!(slots.get(&key), Some(Slot::Loading { id: current, .. }) if *current == id) {
            match &result {
                Ok(value) => {
                    slots.insert(key, Slot::Ready(value.clone()));
                }
                Err(_) => {
                    slots.remove(&key);
                }
            }
        }
        result
    }

    fn join_or_start(
        &self,
        key: &K,
        start: impl FnOnce() -> Fetch<V, E>,
    ) -> Result<Arc<V>, Pending<V, E>> {
        let mut slots = self.lock();
        match slots.get(key) {
            Some(Slot::Ready(value)) => Ok(value.clone()),
            Some(Slot::Loading { id, fetch }) => Err((*id, fetch.clone())),
            None => {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let fetch = start().shared();
                slots.insert(
                    key.clone(),
                    Slot::Loading {
                        id,
                        fetch: fetch.clone(),
                    },
                );
                Err((id, fetch))
            }
        }
    }

    /// Forgets `key`; a fetch still in flight finishes for its waiters but is not stored.
    pub fn invalidate(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets every key, as [`SingleFlight::invalidate`] does one.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Slot<V, E>>> {
        // Map operations cannot panic half-way in a way that matters; keep serving.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Errors in these tests are plain strings.
    type Cache<K> = SingleFlight<K, u32, String>;

    fn counting_fetch(calls: &Arc<AtomicUsize>, value: u32) -> Fetch<u32, String> {
        let calls = calls.clone();
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Arc::new(value))
        })
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_until_invalidated() {
        let cache = Arc::new(Cache::<&str>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let gets = (0..8).map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            async move { cache.get("k", || counting_fetch(&calls, 1)).await }
        });
        let results = futures_util::future::join_all(gets).await;
        assert!(results.iter().all(|r| matches!(r, Ok(v) if **v == 1)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            *cache
                .get("k", || counting_fetch(&calls, 2))
                .await
                .expect("cached"),
            1
        );
        cache.invalidate(&"k");
        assert_eq!(
            *cache
                .get("k", || counting_fetch(&calls, 2))
                .await
                .expect("refetched"),
            2
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = Cache::<u8>::new();
        let failing: Fetch<u32, String> = Box::pin(async { Err("cancelled".to_string()) });
        assert!(cache.get(1, || failing).await.is_err());
        let calls = Arc::new(AtomicUsize::new(0));
        assert!(cache.get(1, || counting_fetch(&calls, 3)).await.is_ok());
    }
}
