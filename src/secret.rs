//! A string that must never be printed: tokens, private keys, passwords.
//!
//! `Debug` and `Display` print a placeholder, so a secret that slips into a log line or an
//! error message reveals nothing. Reading the value is an explicit `expose()`, and the value
//! is zeroized when dropped.

use std::fmt;

/// Serialises as the plain string: typed models carry secrets to and from Terraform, where
/// the schema marks them sensitive.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send it (an HTTP header, a Secret object).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The value is wiped from memory when the last copy goes.
impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("glpat-abcdef123456");
        assert!(!format!("{s:?} {s}").contains("glpat"));
        assert_eq!(s.expose(), "glpat-abcdef123456");
    }
}
