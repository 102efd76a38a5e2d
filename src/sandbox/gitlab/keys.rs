//! OpenSSH public key validation and fingerprints for deploy keys, the way GitLab checks them:
//! the line must be `<type> <base64 blob> [comment]` and the blob's embedded type must match.
//! MD5 is implemented here because GitLab still reports the legacy MD5 fingerprint and no
//! MD5 crate is among our dependencies.

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

/// RFC 1321 MD5.
pub(crate) fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut message = input.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in message.chunks_exact(64) {
        let m: Vec<u32> = chunk
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(m[g])
                .rotate_left(S[i]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, word) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}
