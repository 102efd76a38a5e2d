//! OpenSSH public key validation and fingerprints for deploy keys, the way GitLab checks them:
//! the line must be `<type> <base64 blob> [comment]` and the blob's embedded type must match.
//! GitLab still reports the legacy MD5 fingerprint beside the SHA-256 one.

use base64::Engine;
use sha2::{Digest, Sha256};

/// A parsed, valid public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicKey {
    /// The key line without surrounding whitespace.
    pub line: String,
    /// MD5 of the blob, colon-separated hex (`aa:bb:...`).
    pub fingerprint: String,
    /// `SHA256:` + unpadded base64 of the blob's SHA-256.
    pub fingerprint_sha256: String,
}

const ALGORITHMS: [&str; 5] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

pub(crate) fn parse_public_key(line: &str) -> Option<PublicKey> {
    let line = line.trim();
    let mut fields = line.split_whitespace();
    let algorithm = fields.next()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    if !ALGORITHMS.contains(&algorithm) || !blob_matches(algorithm, &blob) {
        return None;
    }
    let md5 = md5(&blob);
    Some(PublicKey {
        line: line.to_owned(),
        fingerprint: md5
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
        fingerprint_sha256: format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
        ),
    })
}

/// Reads the SSH wire-format strings of a key blob.
fn ssh_strings(mut blob: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !blob.is_empty() {
        let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        out.push(blob.get(4..4 + len)?);
        blob = &blob[4 + len..];
    }
    Some(out)
}

fn blob_matches(algorithm: &str, blob: &[u8]) -> bool {
    let Some(parts) = ssh_strings(blob) else {
        return false;
    };
    if parts.first().copied() != Some(algorithm.as_bytes()) {
        return false;
    }
    match algorithm {
        "ssh-ed25519" => parts.len() == 2 && parts[1].len() == 32,
        "ssh-rsa" => parts.len() == 3 && parts[2].len() >= 128,
        _ => {
            let curve = algorithm.trim_start_matches("ecdsa-sha2-");
            parts.len() == 3 && parts[1] == curve.as_bytes() && parts[2].first() == Some(&4)
        }
    }
}

/// The legacy MD5 fingerprint GitLab still reports.
pub(crate) fn md5(input: &[u8]) -> [u8; 16] {
    md5::Md5::digest(input).into()
}
