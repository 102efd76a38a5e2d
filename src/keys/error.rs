//! Failures of key generation and of reading keys back, never quoting key material.

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The generator or an encoder failed (the operating system's randomness, a library).
    #[error("cannot generate the {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    /// A key or envelope given back to us is not in the expected format.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The password does not open the encrypted private key.
    #[error("the password does not decrypt the private key")]
    WrongPassword,
}

impl KeyError {
    pub(crate) fn generate(what: &'static str) -> impl FnOnce(String) -> Self {
        move |reason| Self::Generate { what, reason }
    }

    pub(crate) fn invalid(what: &'static str) -> impl FnOnce(String) -> Self {
        move |reason| Self::Invalid { what, reason }
    }

    pub fn summary(&self) -> String {
        match self {
            Self::Generate { what, .. } => format!("Cannot generate the {what}"),
            Self::Invalid { what, .. } => format!("Invalid {what}"),
            Self::WrongPassword => "Wrong password for the private key".into(),
        }
    }

    pub fn detail(&self) -> String {
        self.to_string()
    }
}
