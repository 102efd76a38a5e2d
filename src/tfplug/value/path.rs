//! Attribute paths: addresses of nested values, used to navigate values and to
//! say where a codec or validation error happened.

use std::fmt;

/// One step from a value to one of its children.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathStep {
    /// An attribute of an object.
    Attr(String),
    /// An element of a map.
    Key(String),
    /// An element of a list or tuple (or, in error messages, the position of
    /// a set element on the wire).
    Index(i64),
}

/// A sequence of steps from a root value. The empty path is the root itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrPath(pub Vec<PathStep>);

impl AttrPath {
    pub fn root() -> Self {
        AttrPath(Vec::new())
    }

    pub fn attr(mut self, name: &str) -> Self {
        self.0.push(PathStep::Attr(name.to_owned()));
        self
    }

    pub fn key(mut self, k: &str) -> Self {
        self.0.push(PathStep::Key(k.to_owned()));
        self
    }

    pub fn index(mut self, i: i64) -> Self {
        self.0.push(PathStep::Index(i));
        self
    }

    pub fn steps(&self) -> &[PathStep] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, step: PathStep) {
        self.0.push(step);
    }

    pub fn pop(&mut self) -> Option<PathStep> {
        self.0.pop()
    }

    /// The path without its last step; the root's parent is the root.
    pub fn parent(&self) -> AttrPath {
        let mut steps = self.0.clone();
        steps.pop();
        AttrPath(steps)
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &AttrPath) -> bool {
        self.0.starts_with(&other.0)
    }

    /// Rendering for error messages, where an empty string would read badly.
    pub(crate) fn describe(&self) -> String {
        if self.is_root() {
            "<root>".to_owned()
        } else {
            self.to_string()
        }
    }
}

impl From<Vec<PathStep>> for AttrPath {
    fn from(steps: Vec<PathStep>) -> Self {
        AttrPath(steps)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(name) if i == 0 => f.write_str(name)?,
                PathStep::Attr(name) => write!(f, ".{name}")?,
                PathStep::Key(k) => {
                    f.write_str("[")?;
                    f.write_str(&super::json::quote(k))?;
                    f.write_str("]")?;
                }
                PathStep::Index(idx) => write!(f, "[{idx}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_mixes_attrs_keys_and_indexes() {
        let p = AttrPath::root()
            .attr("config")
            .attr("ci_access")
            .attr("groups")
            .index(0)
            .attr("id");
        assert_eq!(p.to_string(), "config.ci_access.groups[0].id");
        let p = AttrPath::root().attr("tags").key("a\"b");
        assert_eq!(p.to_string(), r#"tags["a\"b"]"#);
        assert_eq!(AttrPath::root().to_string(), "");
        assert_eq!(AttrPath::root().describe(), "<root>");
        assert_eq!(AttrPath::root().index(3).to_string(), "[3]");
    }

    #[test]
    fn parent_and_prefix() {
        let p = AttrPath::root().attr("a").key("k");
        assert_eq!(p.parent(), AttrPath::root().attr("a"));
        assert!(p.starts_with(&AttrPath::root().attr("a")));
        assert!(!AttrPath::root().attr("a").starts_with(&p));
        assert_eq!(AttrPath::root().parent(), AttrPath::root());
    }
}
