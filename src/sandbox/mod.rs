//! The sandbox: local emulators of the GitLab REST API and the Kubernetes API, with fault
//! injection, request statistics and simulated controllers. Used by the quickstart, the tests
//! and the benchmarks, in-process or as the `gitlabflux-sandbox` binary.

pub mod gitlab;
pub mod kube;
