//! A Terraform plugin-protocol (tfplugin6) server framework.
//!
//! It knows nothing of GitLab or Flux: it turns a [`Provider`] with its resources, data
//! sources, ephemeral resources and functions into a go-plugin process that Terraform and
//! OpenTofu can drive. Layers, bottom up:
//! - [`value`]: cty types and values with the msgpack/JSON wire codecs;
//! - [`schema`], [`identity`], [`diag`]: what resources declare and how they report problems;
//! - [`plan`]: schema-driven defaults, computed values, RequiresReplace, write-only rules;
//! - [`resource`]: the traits a provider implements, and [`model`]: typed models over values;
//! - `server`, `serve`, `tls`, `logging`: the gRPC service, handshake, AutoMTLS and hclog output.

pub mod client;
pub mod convert;
pub mod diag;
pub mod docs;
pub mod identity;
pub mod logging;
pub mod model;
pub mod plan;
pub mod proto;
pub mod resource;
pub mod schema;
pub mod serve;
mod server;
pub mod tls;
pub mod value;

pub use diag::{DiagResult, Diagnostic, Diagnostics};
pub use identity::{IdentityAttribute, IdentitySchema};
pub use resource::{
    Action, ApplyRequest, ConfigureInfo, Ctx, DataSource, EphemeralResource, Found, Function,
    FunctionError, FunctionSignature, ListResource, MoveRequest, NewState, Opened, Parameter,
    PlanContext, Progress, Provider, Resource,
};
pub use schema::{Attribute, Block, Nesting, Schema};
pub use serve::{ServeOptions, serve};
pub use value::{AttrPath, Type, Value};
