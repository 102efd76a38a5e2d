//! Flux domain knowledge: loading a distribution (`distribution`, from files, URLs or OCI
//! registries through `oci`, cached by digest in `cache`), rendering it purely into
//! the objects and files a bootstrap applies (`render` and its transforms: `lockdown`,
//! `scaling`, `shards`, `sync`, `patch`), tenants (`tenant`), shard placement (`sharding`),
//! and the Flux objects found in a cluster (`objects`).

pub mod cache;
pub mod distribution;
pub mod error;
pub mod http;
pub mod interval;
pub mod lockdown;
pub mod manifest;
pub mod objects;
pub mod oci;
pub mod patch;
pub mod render;
pub mod scaling;
pub mod sharding;
pub mod shards;
pub mod sync;
pub mod tenant;
pub mod transforms;

#[cfg(test)]
mod testutil;

pub use distribution::{Distribution, DistributionSource, Distributions, load};
pub use error::FluxError;
pub use render::{
    Multitenancy, Patch, PatchKind, Ref, RenderOptions, Rendered, Scaling, Sharding, Size, Storage,
    SyncKind, SyncSpec, Target, Verify, render, validate_options,
};
