//! GitLab REST API emulator (`/api/v4`) for the sandbox. (Being written.)

use std::sync::Arc;

/// Placeholder until the emulator lands: serves nothing.
pub struct GitlabEmulator;

impl GitlabEmulator {
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
}
