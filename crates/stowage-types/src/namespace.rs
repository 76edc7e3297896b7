//! Backup namespaces: `a/b/c`, stored on disk as `ns/a/ns/b/ns/c` below the datastore.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{is_safe_id, NameError};

/// Deepest namespace below the root (the root is depth 0).
pub const MAX_NAMESPACE_DEPTH: usize = 7;
/// Longest slash-joined namespace name, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 256;

/// A namespace; the root namespace has no components.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupNamespace {
    components: Vec<String>,
}

impl BackupNamespace {
    pub fn root() -> Self {
        BackupNamespace::default()
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    pub fn depth(&self) -> usize {
        self.components.len()
    }

    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The namespace one level down, `self/name`.
    pub fn child(&self, name: &str) -> Result<Self, NameError> {
        let mut components = self.components.clone();
        components.push(name.to_string());
        Self::from_components(components)
    }

    /// The namespace one level up; none for the root.
    pub fn parent(&self) -> Option<Self> {
        let mut components = self.components.clone();
        components.pop()?;
        Some(BackupNamespace { components })
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &BackupNamespace) -> bool {
        self.components.starts_with(&other.components)
    }

    /// The directory below the datastore: empty for the root, `ns/a/ns/b` otherwise.
    pub fn relative_path(&self) -> PathBuf {
        let mut path = PathBuf::new();
        for c in &self.components {
            path.push("ns");
            path.push(c);
        }
        path
    }

    fn from_components(components: Vec<String>) -> Result<Self, NameError> {
        let joined = components.join("/");
        if components.len() > MAX_NAMESPACE_DEPTH {
            return Err(NameError::Namespace(
                joined,
                "deeper than the 7 levels a namespace may have",
            ));
        }
        if joined.len() > MAX_NAMESPACE_LEN {
            return Err(NameError::Namespace(joined, "longer than 256 bytes"));
        }
        if components.iter().any(|c| !is_safe_id(c)) {
            return Err(NameError::Namespace(
                joined,
                "each level must use letters, digits, '_', '-' and '.', not starting with '.' or '-'",
            ));
        }
        Ok(BackupNamespace { components })
    }
}

impl FromStr for BackupNamespace {
    type Err = NameError;

    /// `a/b/c`; the empty string (or `/`) is the root.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(BackupNamespace::root());
        }
        Self::from_components(trimmed.split('/').map(str::to_string).collect())
    }
}

impl fmt::Display for BackupNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.components.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_path() {
        let ns: BackupNamespace = "a/b/c".parse().unwrap();
        assert_eq!(ns.depth(), 3);
        assert_eq!(ns.relative_path(), PathBuf::from("ns/a/ns/b/ns/c"));
        assert_eq!(ns.to_string(), "a/b/c");
        assert_eq!(ns.parent().unwrap().to_string(), "a/b");
        assert!(ns.is_within(&"a".parse().unwrap()));
        assert!(!ns.is_within(&"b".parse().unwrap()));
        assert!("".parse::<BackupNamespace>().unwrap().is_root());
        assert_eq!(BackupNamespace::root().relative_path(), PathBuf::new());
    }

    #[test]
    fn limits() {
        assert!("1/2/3/4/5/6/7".parse::<BackupNamespace>().is_ok());
        assert!("1/2/3/4/5/6/7/8".parse::<BackupNamespace>().is_err());
        let long = "x".repeat(200);
        assert!(format!("{long}/{long}").parse::<BackupNamespace>().is_err());
        assert!("a//b".parse::<BackupNamespace>().is_err());
        assert!("a/../b".parse::<BackupNamespace>().is_err());
        assert!("a/.hidden".parse::<BackupNamespace>().is_err());
        let seven: BackupNamespace = "1/2/3/4/5/6/7".parse().unwrap();
        assert!(seven.child("8").is_err());
    }
}
