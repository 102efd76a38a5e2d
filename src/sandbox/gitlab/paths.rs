//! File path rules of the repository APIs. The files API declares its `:file_path` with
//! Grape's `file_path: true` validator; the commits API declares no such validator on its
//! actions, so there the only check is Gitaly's when it writes the commit, whose index error
//! GitLab passes on as the 400 message.

use super::http::{ApiError, ApiResult};

/// Grape's `file_path: true` (`API::Validations::Validators::FilePath`): the message it fails
/// with for parameter `name`, or `None` when the path is acceptable. Refused: directory
/// traversal and absolute paths, judged after one more URL-decoding, and paths that were
/// URL-encoded twice.
pub(crate) fn file_path_problem(name: &str, path: &str) -> Option<String> {
    let ok = decode_path(path).is_some_and(|p| !has_traversal(&p) && !p.starts_with('/'));
    (!ok).then(|| format!("{name} should be a valid file path"))
}

/// `Gitlab::Utils.decode_path`: decodes once and refuses (`None`) a path that would decode
/// further, since a second decoding downstream could turn it into a traversal.
fn decode_path(path: &str) -> Option<String> {
    let once = cgi_unescape(path.as_bytes());
    (cgi_unescape(&once) == once).then(|| String::from_utf8_lossy(&once).into_owned())
}

/// Ruby's `CGI.unescape`: `+` is a space, `%XX` a byte, anything else stays as it is.
fn cgi_unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let escaped = (s[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(hex_byte);
        match (s[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    match pair {
        [hi, lo] => Some(u8::try_from(digit(*hi)? * 16 + digit(*lo)?).ok()?),
        _ => None,
    }
}

/// `Gitlab::PathTraversal::PATH_TRAVERSAL_REGEX`: `.` or `..` alone, `..` as any segment
/// between `/` or `\` separators, or a newline anywhere.
fn has_traversal(path: &str) -> bool {
    path == "." || path.contains('\n') || path.split(['/', '\\']).any(|seg| seg == "..")
}

/// Gitaly's `validatePath` for a commit action's path, returning the path cleaned as Gitaly
/// stores it (`/a/./b` is `a/b`): empty paths, `//`, and paths that leave the repository
/// once cleaned are refused with the messages GitLab renders for Gitaly's index errors.
pub(crate) fn commit_path(raw: &str) -> ApiResult<String> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("You must provide a file path"));
    }
    let invalid = || ApiError::bad_request(format!("invalid path: '{raw}'"));
    if raw.contains("//") {
        return Err(invalid());
    }
    let mut parts: Vec<&str> = Vec::new();
    for segment in raw.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ApiError::bad_request(
                        "Path cannot include directory traversal",
                    ));
                }
            }
            name => parts.push(name),
        }
    }
    // A path that cleans to the repository root names no file.
    if parts.is_empty() {
        return Err(invalid());
    }
    Ok(parts.join("/"))
}
