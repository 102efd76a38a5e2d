//! How a credential this provider created is recognised in its issuer's answers: the text
//! the user gave it (a token's description, a deploy key's title) ends with [`OWNER_MARKER`].
//! A credential whose create answer was lost, or whose run was killed before it was
//! delivered, is then known as ours and swept, never left behind or mistaken for foreign.

/// Ends the description or title of every credential this provider creates.
pub const OWNER_MARKER: &str = "[created by terraform-provider-gitlabflux]";

/// The text sent to the issuer: the user's, followed by the marker.
pub fn marked(text: &str) -> String {
    if text.is_empty() {
        OWNER_MARKER.to_string()
    } else {
        format!("{text} {OWNER_MARKER}")
    }
}

/// The user's text, without the marker.
pub fn unmarked(text: &str) -> &str {
    text.strip_suffix(OWNER_MARKER).map_or(text, str::trim_end)
}

/// Whether the issuer's text carries the marker.
pub fn is_marked(text: &str) -> bool {
    text.ends_with(OWNER_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marking_round_trips() {
        for text in ["", "flux prod", "a [b]"] {
            assert!(is_marked(&marked(text)));
            assert_eq!(unmarked(&marked(text)), text);
        }
        assert_eq!(unmarked("plain"), "plain");
        assert!(!is_marked("plain"));
    }
}
