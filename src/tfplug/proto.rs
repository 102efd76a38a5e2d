//! Generated gRPC code for the Terraform plugin protocol and go-plugin's own services.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Terraform plugin protocol, version 6.
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's controller, stdio and broker services.
pub mod plugin {
    tonic::include_proto!("plugin");
}
