//! Flux domain knowledge: loading a distribution (`distribution`), rendering it purely into
//! the objects and files a bootstrap applies (`render` and its transforms), and shard
//! placement (`sharding`).

pub mod distribution;
pub mod error;
pub mod interval;
pub mod lockdown;
pub mod manifest;
pub mod patch;
pub mod render;
pub mod sharding;
pub mod sync;
pub mod transforms;

#[cfg(test)]
mod testutil;

pub use distribution::{Distribution, DistributionSource, load};
pub use error::FluxError;
pub use render::{
    Multitenancy, Patch, PatchKind, Ref, RenderOptions, Rendered, SyncKind, SyncSpec, Target,
    Verify, render,
};
