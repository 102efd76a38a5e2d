//! GitLab naming rules shared by resources, data sources and functions.

/// Why a name was refused; the text completes "… is not a valid …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long (got {len})")]
    TooLong { max: usize, len: usize },
    #[error(
        "must consist of lowercase letters, digits and '-', and start and end with a letter or digit"
    )]
    Charset,
    #[error(
        "must be a path like `group/project` without leading or trailing '/', spaces or empty segments"
    )]
    ProjectPath,
}

/// Longest agent name GitLab accepts.
pub const AGENT_NAME_MAX: usize = 63;

/// Checks an agent name against GitLab's rule `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63
/// characters.
pub fn validate_agent_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > AGENT_NAME_MAX {
        return Err(NameError::TooLong {
            max: AGENT_NAME_MAX,
            len: name.len(),
        });
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    let edges_ok =
        bytes.first().copied().is_some_and(alnum) && bytes.last().copied().is_some_and(alnum);
    if !edges_ok || !bytes.iter().all(|&c| alnum(c) || c == b'-') {
        return Err(NameError::Charset);
    }
    Ok(())
}

/// Checks the shape of a full project path (`group/subgroup/project`).
pub fn validate_project_path(path: &str) -> Result<(), NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    let bad_segment = path
        .split('/')
        .any(|seg| seg.is_empty() || seg.chars().any(char::is_whitespace));
    if bad_segment {
        return Err(NameError::ProjectPath);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_follow_gitlabs_rule() {
        for ok in ["a", "prod", "prod-eu-1", "0", &"a".repeat(63)] {
            assert_eq!(validate_agent_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_agent_name(""), Err(NameError::Empty));
        assert!(matches!(
            validate_agent_name(&"a".repeat(64)),
            Err(NameError::TooLong { .. })
        ));
        for bad in ["-a", "a-", "Prod", "a_b", "a.b", "a b"] {
            assert_eq!(validate_agent_name(bad), Err(NameError::Charset), "{bad}");
        }
    }

    #[test]
    fn project_paths_have_no_empty_segments() {
        assert_eq!(validate_project_path("fleet/agents"), Ok(()));
        assert_eq!(validate_project_path("a/b/c"), Ok(()));
        for bad in ["/fleet", "fleet/", "fleet//a", "fle et/a"] {
            assert_eq!(
                validate_project_path(bad),
                Err(NameError::ProjectPath),
                "{bad}"
            );
        }
    }
}
