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
pub mod signing_key;
pub mod ssh;

pub use error::KeyError;

/// The cluster Secret a credential is delivered to.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretName {
    pub namespace: String,
    pub name: String,
}

impl SecretName {
    pub(crate) fn object(&self) -> crate::kube::ObjRef {
        crate::kube::ObjRef::new("v1", "Secret", Some(&self.namespace), &self.name)
    }
}
