//! The Kubernetes syntax inputs are checked against before anything is sent: DNS-1123 labels
//! and subdomains (namespaces and object names), qualified label keys, Secret and ConfigMap
//! keys, and resource quantities. Checking at plan turns an API-server rejection at apply
//! time (or, for a malformed namespace, a URL the client cannot even build) into a
//! diagnostic on the attribute.

/// A DNS-1123 label: what namespaces and most Flux-facing names must be (1 to 63 lowercase
/// letters, digits or `-`, starting and ending with a letter or digit).
pub fn is_dns_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|c| alnum(c) || *c == b'-')
}

/// A DNS-1123 subdomain: what most object names (Secrets, ServiceAccounts) must be.
pub fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns_label)
}

/// A qualified label key: an optional DNS-subdomain prefix and `/`, then a name of 1 to 63
/// alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(is_dns_subdomain);
    let bytes = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    prefix_ok
        && !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// A Secret or ConfigMap data key: 1 to 253 alphanumerics, `-`, `_` or `.`, and not `.` or
/// `..`.
pub fn is_data_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes resource quantity: a positive decimal number and an optional SI or binary
/// suffix (`m`, `k`, `M`, `G`, `T`, `P`, `E`, `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`).
pub fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    let Some(number) = SUFFIXES.iter().find_map(|s| text.strip_suffix(s)) else {
        return false;
    };
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = digits(whole)
        && fraction.is_none_or(|f| !f.is_empty() && digits(f))
        && !(whole.is_empty() && fraction.is_none());
    well_formed && number.bytes().any(|b| b.is_ascii_digit() && b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for good in ["sharding.fluxcd.io/key", "shard", "example.com/My_key.1"] {
            assert!(is_label_key(good), "{good}");
        }
        for bad in [
            "",
            "/x",
            "a/",
            "-x",
            "a/b/c",
            "Example.com/x",
            &"k".repeat(64),
        ] {
            assert!(!is_label_key(bad), "{bad}");
        }
    }

    #[test]
    fn data_keys() {
        for good in ["token", "identity.pub", "known_hosts", "tls.crt", "a-b_c.d"] {
            assert!(is_data_key(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "with space", &"k".repeat(254)] {
            assert!(!is_data_key(bad), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for good in ["1", "500m", "1.5", "2Gi", "512Mi", "0.5", "100k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "0", "m", "1GB", "-1", "1.", ".", "1 Gi", "0Mi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
