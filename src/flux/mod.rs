//! Flux domain knowledge, from a published distribution to the objects a cluster runs.
//!
//! Data flows one way:
//!
//! 1. [`source`] loads a distribution (the manifests `flux install` would apply) from a file,
//!    a URL or an OCI registry ([`source::oci`]), verifies its pin and caches it by digest
//!    ([`source::cache`]), and parses it once into a [`Distribution`].
//! 2. [`render`](mod@render) turns a distribution and [`RenderOptions`] purely into a
//!    [`Rendered`]: the objects to apply and the files written to the repository (with their
//!    digest). [`render::options`] holds the option types, each stage (install flags,
//!    lockdown, scaling, shards, sync, patches) has its own file, and the pipeline runs them
//!    in order.
//! 3. The resources hand the rendered objects to the Kubernetes apply engine
//!    ([`crate::kube::engine`]), which alone decides the order they are applied, pruned and
//!    deleted in; rendering keeps the order of its files and sorts nothing for applying.
//!
//! Beside that flow: [`commit`] keeps a bootstrap's rendered files in a GitLab repository;
//! [`credentials`] writes the Git credentials a configuration hands over write-only;
//! [`tenant`] renders a tenant's namespaces, RBAC and sync; [`receiver`] a `generic-oidc`
//! Receiver that GitLab CI jobs trigger with their ID tokens; [`reconcile`] asks Flux to
//! reconcile now and waits until it has; [`placement`]
//! places names on shards (the `shard_for` function's public rendezvous-hashing contract);
//! [`objects`] finds Flux objects in a live cluster and [`status`] reports how Flux is doing there;
//! [`upgrade`] knows what a cluster must be rid of before a release that drops an API version. Shared by all of them: [`manifest`] (the
//! untyped object model, YAML in and out), [`interval`] and the Kubernetes naming rules of [`crate::kube::syntax`] (input checks) and
//! [`error`]. Distributions are fetched with the crate's one HTTP client ([`crate::net`]).

pub mod commit;
pub mod credentials;
pub mod error;
pub mod interval;
pub mod manifest;
pub mod objects;
pub mod placement;
pub mod receiver;
pub mod reconcile;
pub mod render;
pub mod source;
pub mod status;
pub mod tenant;
pub mod upgrade;

#[cfg(test)]
mod testutil;

pub use error::FluxError;
pub use render::{
    Multitenancy, Patch, PatchKind, Ref, RenderOptions, Rendered, Scaling, Sharding, Size, Storage,
    SyncKind, SyncSpec, Target, Verify, render, render_objects, validate_options,
};
pub use source::{Distribution, DistributionSource, Distributions, load};
