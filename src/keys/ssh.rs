//! SSH key pairs for deploy keys: generated from the operating system's randomness, written
//! in OpenSSH formats, and compared by their SHA-256 fingerprint, because GitLab masks the
//! comment of the keys it hands back (a text comparison would see a change every time).

use rand_core::OsRng;
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm as SshAlgorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey};

use super::KeyError;
use crate::secret::Secret;

/// RSA keys are generated at this size.
const RSA_BITS: usize = 4096;

/// The key types a deploy key may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
    Rsa4096,
}

impl Algorithm {
    /// The names the `algorithm` attribute takes.
    pub const NAMES: [&'static str; 3] = ["ed25519", "ecdsa-p256", "rsa-4096"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(Self::Ed25519),
            "ecdsa-p256" => Some(Self::EcdsaP256),
            "rsa-4096" => Some(Self::Rsa4096),
            _ => None,
        }
    }
}

/// A generated pair. The private half is in OpenSSH's format, for the `identity` key of a
/// Flux Git Secret; it is zeroized when dropped.
#[derive(Debug)]
pub struct SshKeyPair {
    /// `<type> <base64> <comment>`, for GitLab and `identity.pub`.
    pub public_openssh: String,
    pub private_openssh: Secret,
    /// `SHA256:<unpadded base64>`, as `ssh-keygen -l` and GitLab show it.
    pub fingerprint_sha256: String,
}

/// Generates a key pair whose public line ends with `comment`.
pub fn generate(algorithm: Algorithm, comment: &str) -> Result<SshKeyPair, KeyError> {
    let failed = KeyError::generate("SSH key");
    let mut private = match algorithm {
        Algorithm::Ed25519 => PrivateKey::random(&mut OsRng, SshAlgorithm::Ed25519),
        Algorithm::EcdsaP256 => PrivateKey::random(
            &mut OsRng,
            SshAlgorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        ),
        Algorithm::Rsa4096 => RsaKeypair::random(&mut OsRng, RSA_BITS)
            .and_then(|pair| PrivateKey::new(KeypairData::Rsa(pair), comment)),
    }
    .map_err(|e| failed(e.to_string()))?;
    private.set_comment(comment);
    let public = private.public_key();
    let public_openssh = public
        .to_openssh()
        .map_err(|e| KeyError::generate("SSH key")(e.to_string()))?;
    let private_openssh = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| KeyError::generate("SSH key")(e.to_string()))?;
    Ok(SshKeyPair {
        fingerprint_sha256: public.fingerprint(HashAlg::Sha256).to_string(),
        public_openssh,
        private_openssh: Secret::new(private_openssh.as_str()),
    })
}

/// The SHA-256 fingerprint of a public key line, whatever its comment.
pub fn fingerprint(public_openssh: &str) -> Result<String, KeyError> {
    let key = PublicKey::from_openssh(public_openssh.trim())
        .map_err(|e| KeyError::invalid("SSH public key")(e.to_string()))?;
    Ok(key.fingerprint(HashAlg::Sha256).to_string())
}

/// The public line of an OpenSSH private key, to tell which key a Secret holds.
pub fn public_of(private_openssh: &Secret) -> Result<String, KeyError> {
    let private = PrivateKey::from_openssh(private_openssh.expose())
        .map_err(|e| KeyError::invalid("SSH private key")(e.to_string()))?;
    private
        .public_key()
        .to_openssh()
        .map_err(|e| KeyError::invalid("SSH private key")(e.to_string()))
}

/// Checks `known_hosts` text the way `ssh` reads it (`[marker] <hosts> <type> <base64>
/// [comment]` lines, `#` comments) and returns how many host keys it pins; pinning none is
/// an error, because Flux would then trust no host at all.
pub fn check_known_hosts(text: &str) -> Result<usize, KeyError> {
    let mut pinned = 0;
    for (number, entry) in ssh_key::known_hosts::KnownHosts::new(text).enumerate() {
        entry.map_err(|e| {
            KeyError::invalid("known_hosts")(format!("entry {} is not valid: {e}", number + 1))
        })?;
        pinned += 1;
    }
    if pinned == 0 {
        return Err(KeyError::invalid("known_hosts")(
            "it pins no host key; give the lines `ssh-keyscan <gitlab host>` prints, checked \
             against the fingerprints your GitLab instance publishes"
                .into(),
        ));
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_pair_that_belongs_together() {
        for (algorithm, prefix) in [
            (Algorithm::Ed25519, "ssh-ed25519 "),
            (Algorithm::EcdsaP256, "ecdsa-sha2-nistp256 "),
            (Algorithm::Rsa4096, "ssh-rsa "),
        ] {
            let pair = generate(algorithm, "flux@prod").expect("generates");
            assert!(
                pair.public_openssh.starts_with(prefix),
                "{}",
                pair.public_openssh
            );
            assert!(pair.public_openssh.ends_with(" flux@prod"));
            assert!(
                pair.private_openssh
                    .expose()
                    .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
            );
            assert_eq!(
                public_of(&pair.private_openssh).expect("reads back"),
                pair.public_openssh
            );
            assert_eq!(
                fingerprint(&pair.public_openssh).expect("fingerprint"),
                pair.fingerprint_sha256
            );
            assert!(pair.fingerprint_sha256.starts_with("SHA256:"));
        }
    }

    #[test]
    fn fingerprints_ignore_the_comment_gitlab_masks() {
        let pair = generate(Algorithm::Ed25519, "flux@prod").expect("generates");
        let mut fields = pair.public_openssh.split(' ');
        let (kind, blob) = (fields.next().expect("type"), fields.next().expect("blob"));
        let masked = format!("{kind} {blob} ****");
        assert_eq!(
            fingerprint(&masked).expect("fingerprint"),
            pair.fingerprint_sha256
        );
        let bare = format!("{kind} {blob}");
        assert_eq!(
            fingerprint(&bare).expect("fingerprint"),
            pair.fingerprint_sha256
        );
    }

    #[test]
    fn two_keys_differ_and_junk_is_refused() {
        let a = generate(Algorithm::Ed25519, "a").expect("a");
        let b = generate(Algorithm::Ed25519, "a").expect("b");
        assert_ne!(a.fingerprint_sha256, b.fingerprint_sha256);
        assert!(fingerprint("ssh-ed25519 not-base64").is_err());
        let err = public_of(&Secret::new("not a key")).expect_err("junk");
        assert!(!err.to_string().contains("not a key"), "{err}");
    }

    #[test]
    fn known_hosts_must_pin_a_valid_host_key() {
        let pair = generate(Algorithm::Ed25519, "host").expect("generates");
        let line = format!("gitlab.example.com {}", pair.public_openssh);
        assert_eq!(check_known_hosts(&line).ok(), Some(1));
        let two = format!(
            "# pinned\n{line}\n[gitlab.example.com]:2222 {}\n",
            pair.public_openssh
        );
        assert_eq!(check_known_hosts(&two).ok(), Some(2));
        assert!(check_known_hosts("").is_err(), "nothing pinned");
        assert!(check_known_hosts("# only a comment\n").is_err());
        assert!(check_known_hosts("gitlab.example.com ssh-ed25519 AAAA!!").is_err());
        assert!(check_known_hosts("just-a-hostname").is_err());
    }

    #[test]
    fn algorithm_names_round_trip() {
        for name in Algorithm::NAMES {
            assert!(Algorithm::parse(name).is_some(), "{name}");
        }
        assert_eq!(Algorithm::parse("dsa"), None);
    }
}
