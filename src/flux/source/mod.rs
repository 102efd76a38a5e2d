//! Where a Flux distribution comes from: loading and verifying it ([`distribution`]) from
//! files, HTTP(S) URLs or OCI registries ([`oci`]), with fetched bytes cached by digest
//! ([`cache`]). The result is a [`Distribution`]: the manifests, parsed once, that
//! [`super::render`](mod@super::render) turns into what a bootstrap applies.
//!
//! The HTTP client comes from [`crate::net`]; parsing goes through [`super::manifest`], the
//! object model the renderer shares.

pub mod cache;
pub mod distribution;
pub mod oci;

pub use distribution::{Distribution, DistributionSource, Distributions, load};
