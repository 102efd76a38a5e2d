//! Key material the provider generates and rotates, and the rotation engine they share:
//! SSH key pairs for deploy keys ([`ssh`]), cosign key pairs for signed OCI artifacts
//! ([`cosign`]), and the crash-consistent [`rotation`] engine. Randomness comes from the
//! operating system; private halves travel as [`crate::secret::Secret`] and are zeroized
//! when dropped.

pub mod cosign;
mod error;
pub mod rotation;
pub mod ssh;

pub use error::KeyError;
