//! How a credential this provider created is recognised in its issuer's answers: the text
//! the user gave it (a token's description, a deploy key's title, a CI variable's
//! description) ends with the owner marker. A credential whose create answer was lost, or
//! whose run was killed before it was delivered, is then known as ours and swept, never left
//! behind or mistaken for foreign.
//!
//! Where two resources could give their credentials the same text (two clusters' deploy keys
//! titled alike in one project), the marker carries a tag naming the resource
//! ([`marked_for`]), so one resource never sweeps another's.

/// Ends the description or title of every credential this provider creates.
pub const OWNER_MARKER: &str = "[created by terraform-provider-gitlabflux]";
const TAGGED_PREFIX: &str = "[created by terraform-provider-gitlabflux for ";

/// A tag for a resource that delivers to Secret `namespace/name` of the cluster at `host`:
/// made once, when the resource is created, and kept with it (a later change of cluster
/// keeps the resource's tag).
pub fn resource_tag(host: &str, namespace: &str, name: &str) -> String {
    let id = format!("{host}|{namespace}/{name}");
    crate::digest::sha256_hex(id.as_bytes())[..12].to_string()
}

/// The text sent to the issuer: the user's, followed by the marker.
pub fn marked(text: &str) -> String {
    join(text, OWNER_MARKER)
}

/// [`marked`], with a tag naming the resource.
pub fn marked_for(text: &str, tag: &str) -> String {
    join(text, &format!("{TAGGED_PREFIX}{tag}]"))
}

fn join(text: &str, marker: &str) -> String {
    if text.is_empty() {
        marker.to_string()
    } else {
        format!("{text} {marker}")
    }
}

/// The user's text, without the marker (tagged or not).
pub fn unmarked(text: &str) -> &str {
    match split(text) {
        Some((user, _)) => user,
        None => text,
    }
}

/// Whether the issuer's text carries the marker (tagged or not).
pub fn is_marked(text: &str) -> bool {
    split(text).is_some()
}

/// The tag of a tagged marker; `None` for an untagged or no marker.
pub fn tag_of(text: &str) -> Option<&str> {
    split(text).and_then(|(_, tag)| tag)
}

/// The user's text and the marker's tag, when the text carries a marker.
fn split(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(user) = text.strip_suffix(OWNER_MARKER) {
        return Some((user.trim_end(), None));
    }
    let body = text.strip_suffix(']')?;
    let at = body.rfind(TAGGED_PREFIX)?;
    let tag = &body[at + TAGGED_PREFIX.len()..];
    (!tag.is_empty() && !tag.contains(']')).then(|| (text[..at].trim_end(), Some(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marking_round_trips() {
        for text in ["", "flux prod", "a [b]"] {
            assert!(is_marked(&marked(text)));
            assert_eq!(unmarked(&marked(text)), text);
            assert_eq!(tag_of(&marked(text)), None);
            let tagged = marked_for(text, "ab12cd34");
            assert!(is_marked(&tagged));
            assert_eq!(unmarked(&tagged), text);
            assert_eq!(tag_of(&tagged), Some("ab12cd34"));
        }
        assert_eq!(unmarked("plain"), "plain");
        assert!(!is_marked("plain"));
        assert!(!is_marked(
            "x [created by terraform-provider-gitlabflux for ]"
        ));
    }
}
