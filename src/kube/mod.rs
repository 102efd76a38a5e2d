//! The provider's Kubernetes client layer, on kube-rs: connections from provider or
//! per-resource settings ([`Clusters`], one pooled [`KubeClient`] per distinct connection),
//! generic server-side apply / get / list / delete of dynamic objects with cached discovery,
//! Secret key helpers, workload restarts and rollout waits.
//!
//! Resources call this layer and hold no HTTP. Every request is retried on connection
//! errors, 429 and 5xx (all of them are idempotent), and gives up when the provider is
//! stopped. Errors are [`KubeError`]s with diagnostic-ready `summary()` / `detail()`.

mod client;
mod clusters;
mod connect;
mod discovery;
pub mod engine;
mod error;
mod listed;
pub mod readiness;
mod secrets;
pub mod settings;
pub mod syntax;
mod workload;

#[cfg(test)]
mod tests;

pub use client::{FIELD_MANAGER, KubeClient, ObjRef, managed_labels};
pub use clusters::Clusters;
pub use error::KubeError;
pub use listed::{APPLIED_LABEL, Seen, Shape};
pub use secrets::{SecretMeta, secret_key_value};
pub use settings::{ClusterSettings, ExecSettings};
pub use workload::RESTARTED_AT;
