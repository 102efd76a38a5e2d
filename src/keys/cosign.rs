//! cosign key pairs for signing the OCI artifacts Flux verifies: an ECDSA P-256 key, its
//! private half as cosign writes it (PEM `ENCRYPTED SIGSTORE PRIVATE KEY` around a JSON
//! envelope: scrypt-derived key, NaCl secretbox around the PKCS#8 DER) under a generated
//! password, and its public half as a PKIX `PUBLIC KEY` PEM, which Flux reads from the
//! `*.pub` keys of `verify.secretRef`.
//!
//! Reading a key back takes the scrypt parameters from its envelope, since writers differ
//! (cosign uses N = 65536, other tools 32768).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crypto_secretbox::aead::{Aead, AeadCore, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};
use p256::SecretKey;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::KeyError;
use crate::secret::Secret;

/// The PEM label cosign 2.x writes.
pub const PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label older cosign releases wrote, still accepted when reading.
const LEGACY_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// cosign's scrypt cost: N = 2^16, r = 8, p = 1.
const SCRYPT_LOG_N: u8 = 16;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const KEY_LEN: usize = 32;
/// Random bytes behind a generated password: 32 characters of URL-safe base64, which GitLab
/// can mask.
const PASSWORD_BYTES: usize = 24;

/// A generated pair, with the password that opens its private half.
#[derive(Debug)]
pub struct CosignKeyPair {
    /// The encrypted private key, as a `cosign.key` file holds it.
    pub private_pem: Secret,
    pub password: Secret,
    /// The `cosign.pub` file.
    pub public_pem: String,
    /// The hex SHA-256 of the public key's DER: the name of its `.pub` entry.
    pub key_id: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "base64_bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "base64_bytes")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "base64_bytes")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64 with padding.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Generates a key pair and a password for it.
pub fn generate() -> Result<CosignKeyPair, KeyError> {
    let secret = SecretKey::random(&mut OsRng);
    let password = generate_password();
    let der = secret
        .to_pkcs8_der()
        .map_err(|e| KeyError::generate("cosign key")(e.to_string()))?;
    let private_pem = seal(der.as_bytes(), &password)?;
    let public = secret.public_key();
    let public_der = public
        .to_public_key_der()
        .map_err(|e| KeyError::generate("cosign public key")(e.to_string()))?;
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::generate("cosign public key")(e.to_string()))?;
    Ok(CosignKeyPair {
        private_pem,
        password,
        public_pem,
        key_id: crate::digest::sha256_hex(public_der.as_bytes()),
    })
}

/// The key id of a public key PEM (`PUBLIC KEY`, PKIX): the SHA-256 of its DER, in hex.
pub fn key_id(public_pem: &str) -> Result<String, KeyError> {
    let public = p256::PublicKey::from_public_key_pem(public_pem.trim())
        .map_err(|e| KeyError::invalid("cosign public key")(e.to_string()))?;
    let der = public
        .to_public_key_der()
        .map_err(|e| KeyError::invalid("cosign public key")(e.to_string()))?;
    Ok(crate::digest::sha256_hex(der.as_bytes()))
}

fn generate_password() -> Secret {
    let mut bytes = Zeroizing::new([0u8; PASSWORD_BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    Secret::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// Encrypts a PKCS#8 DER private key into cosign's PEM envelope, at cosign's scrypt cost.
fn seal(der: &[u8], password: &Secret) -> Result<Secret, KeyError> {
    let params = ScryptParams {
        n: 1 << SCRYPT_LOG_N,
        r: SCRYPT_R,
        p: SCRYPT_P,
    };
    let json = envelope(der, password, params)?;
    Ok(Secret::new(pem(PRIVATE_KEY_LABEL, &json)))
}

/// The JSON envelope: a fresh salt and nonce, the scrypt-derived key, the secretbox.
fn envelope(der: &[u8], password: &Secret, params: ScryptParams) -> Result<Vec<u8>, KeyError> {
    let failed = |e: String| KeyError::generate("encrypted cosign key")(e);
    let mut salt = vec![0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let key = derive(password, &salt, &params)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(&nonce, der)
        .map_err(|e| failed(e.to_string()))?;
    let envelope = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params,
            salt,
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    serde_json::to_vec(&envelope).map_err(|e| failed(e.to_string()))
}

/// PEM with 64-character lines, as Go's `encoding/pem` writes it.
fn pem(label: &str, body: &[u8]) -> String {
    let encoded = STANDARD.encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Opens an encrypted cosign private key (ours or cosign's) with its password.
pub fn decrypt(private_pem: &Secret, password: &Secret) -> Result<SecretKey, KeyError> {
    let invalid = KeyError::invalid("cosign private key");
    let json = pem_body(private_pem.expose()).ok_or_else(|| {
        KeyError::invalid("cosign private key")(format!(
            "expected a PEM block labelled {PRIVATE_KEY_LABEL}"
        ))
    })?;
    let envelope: Envelope = serde_json::from_slice(&json)
        .map_err(|e| KeyError::invalid("cosign key envelope")(e.to_string()))?;
    if envelope.kdf.name != "scrypt" || envelope.cipher.name != "nacl/secretbox" {
        return Err(invalid(format!(
            "unsupported envelope ({} / {})",
            envelope.kdf.name, envelope.cipher.name
        )));
    }
    if envelope.cipher.nonce.len() != 24 {
        return Err(KeyError::invalid("cosign private key")(
            "the secretbox nonce is not 24 bytes".into(),
        ));
    }
    let key = derive(password, &envelope.kdf.salt, &envelope.kdf.params)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let nonce = Nonce::from_slice(&envelope.cipher.nonce);
    let der = Zeroizing::new(
        cipher
            .decrypt(nonce, envelope.ciphertext.as_slice())
            .map_err(|_| KeyError::WrongPassword)?,
    );
    SecretKey::from_pkcs8_der(&der)
        .map_err(|e| KeyError::invalid("cosign private key")(e.to_string()))
}

/// The decoded body of a PEM block with one of cosign's private key labels.
fn pem_body(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.trim();
    let label = [PRIVATE_KEY_LABEL, LEGACY_PRIVATE_KEY_LABEL]
        .into_iter()
        .find(|l| text.starts_with(&format!("-----BEGIN {l}-----")))?;
    let body: String = text
        .strip_prefix(&format!("-----BEGIN {label}-----"))?
        .strip_suffix(&format!("-----END {label}-----"))?
        .split_whitespace()
        .collect();
    STANDARD.decode(body).ok().map(Zeroizing::new)
}

/// scrypt with the envelope's parameters (N must be a power of two).
fn derive(
    password: &Secret,
    salt: &[u8],
    params: &ScryptParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let invalid = KeyError::invalid("cosign key derivation");
    if !params.n.is_power_of_two() || params.n < 2 {
        return Err(invalid(format!(
            "scrypt N = {} is not a power of two",
            params.n
        )));
    }
    let log_n = params.n.trailing_zeros() as u8;
    let scrypt_params = scrypt::Params::new(log_n, params.r, params.p, KEY_LEN)
        .map_err(|e| KeyError::invalid("cosign key derivation")(e.to_string()))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    scrypt::scrypt(
        password.expose().as_bytes(),
        salt,
        &scrypt_params,
        key.as_mut(),
    )
    .map_err(|e| KeyError::invalid("cosign key derivation")(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use p256::pkcs8::DecodePublicKey;

    use super::*;

    #[test]
    fn a_generated_key_opens_with_its_password_and_matches_its_public_half() {
        let pair = generate().expect("generates");
        let pem = pair.private_pem.expose();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let secret = decrypt(&pair.private_pem, &pair.password).expect("decrypts");
        let public = p256::PublicKey::from_public_key_pem(&pair.public_pem).expect("public PEM");
        assert_eq!(secret.public_key(), public);
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let der = public.to_public_key_der().expect("der");
        assert_eq!(pair.key_id, crate::digest::sha256_hex(der.as_bytes()));
        assert_eq!(pair.key_id.len(), 64);
    }

    #[test]
    fn the_envelope_is_the_one_cosign_writes() {
        let pair = generate().expect("generates");
        let json = pem_body(pair.private_pem.expose()).expect("PEM body");
        let envelope: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(envelope["kdf"]["name"], "scrypt");
        assert_eq!(
            envelope["kdf"]["params"],
            serde_json::json!({ "N": 65536, "r": 8, "p": 1 })
        );
        let bytes =
            |v: &serde_json::Value| STANDARD.decode(v.as_str().expect("base64")).expect("b64");
        assert_eq!(bytes(&envelope["kdf"]["salt"]).len(), 32);
        assert_eq!(envelope["cipher"]["name"], "nacl/secretbox");
        assert_eq!(bytes(&envelope["cipher"]["nonce"]).len(), 24);
        // A secretbox is the 16-byte Poly1305 tag followed by the ciphertext of the DER.
        let der_len = decrypt(&pair.private_pem, &pair.password)
            .expect("decrypts")
            .to_pkcs8_der()
            .expect("der")
            .as_bytes()
            .len();
        assert_eq!(bytes(&envelope["ciphertext"]).len(), der_len + 16);
    }

    #[test]
    fn the_wrong_password_or_a_damaged_key_is_refused_without_quoting_it() {
        let pair = generate().expect("generates");
        let wrong = decrypt(&pair.private_pem, &Secret::new("not-the-password"));
        assert!(matches!(wrong, Err(KeyError::WrongPassword)), "{wrong:?}");
        let junk = decrypt(
            &Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            &pair.password,
        );
        assert!(matches!(junk, Err(KeyError::Invalid { .. })), "{junk:?}");
        let message = junk.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!message.contains("AAAA"), "{message}");
    }

    #[test]
    fn scrypt_parameters_come_from_the_envelope() {
        // Another writer's cost (N = 32768) opens as well.
        let password = Secret::new("pw");
        let secret = SecretKey::random(&mut OsRng);
        let der = secret.to_pkcs8_der().expect("der");
        let params = ScryptParams {
            n: 32768,
            r: 8,
            p: 1,
        };
        let json = envelope(der.as_bytes(), &password, params).expect("envelope");
        let stated: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(stated["kdf"]["params"]["N"], 32768);
        let pem = Secret::new(pem(LEGACY_PRIVATE_KEY_LABEL, &json));
        assert_eq!(decrypt(&pem, &password).expect("opens"), secret);
    }

    #[test]
    fn passwords_are_maskable_by_gitlab() {
        let pair = generate().expect("generates");
        let password = pair.password.expose();
        assert_eq!(password.len(), 32);
        assert!(
            password
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{password}"
        );
    }
}
