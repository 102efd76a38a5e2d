//! Serves the gitlabflux provider to Terraform or OpenTofu over the go-plugin protocol.

use std::process::ExitCode;

use terraform_provider_gitlabflux::provider::{GitlabFluxProvider, REGISTRY_ADDRESS};
use terraform_provider_gitlabflux::tfplug::{ServeOptions, serve};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    serve(
        GitlabFluxProvider,
        ServeOptions {
            registry_address: REGISTRY_ADDRESS,
            log_module: "provider.terraform-provider-gitlabflux",
        },
        &args,
    )
}
