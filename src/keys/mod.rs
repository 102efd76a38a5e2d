//! Key material the provider generates and rotates, and the rotation engine they share:
//! SSH key pairs for deploy keys ([`ssh`]), cosign key pairs for signed OCI artifacts
//! ([`cosign`]), the crash-consistent [`rotation`] engine, and the [`owner`] marker that tells
//! the credentials it created. Randomness comes from the
//! operating system; private halves travel as [`crate::secret::Secret`] and are zeroized
//! when dropped.

pub mod cosign;
pub mod deploy_key;
mod error;
pub mod owner;
pub mod rotation;
pub mod ssh;

pub use error::KeyError;
