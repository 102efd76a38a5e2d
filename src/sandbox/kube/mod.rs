//! Kubernetes API emulator for the sandbox. (Being written.)

use std::sync::Arc;

/// Placeholder until the emulator lands: serves nothing.
pub struct KubeEmulator;

impl KubeEmulator {
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
}
