//! Only these paths: a [`Selection`] restricts a walk to some paths of a tree and everything
//! below them (host profiles collect `/etc/pve`, `/etc/hosts`, ... from `/` into one archive).
//!
//! Paths are relative to the walk root and literal (no globs: expand them before). The walker
//! enters a directory only if it is selected, below a selected path, or an ancestor of one; an
//! ancestor goes into the archive as a directory holding only the selected parts.

/// A path that cannot be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selected path '{path}': {reason}")]
pub struct SelectError {
    pub path: String,
    pub reason: String,
}

/// Where an entry stands with respect to a [`Selection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// A selected path or below one: it goes into the archive whole.
    Inside,
    /// A directory on the way to a selected path: entered, holding only what is selected.
    Ancestor,
    /// Neither: left out without being looked at.
    Outside,
}

/// A set of selected paths, relative to the walk root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Normalized: no leading, trailing or doubled `/`; empty for the root itself.
    paths: Vec<Vec<u8>>,
}

impl Selection {
    /// An empty selection: selects nothing but the root directory itself.
    pub fn new() -> Self {
        Selection::default()
    }

    /// Adds `path` (leading `/` allowed; `""` or `/` selects the whole tree). `.` and `..`
    /// components are refused: the walker matches names, it does not resolve them.
    pub fn add(&mut self, path: &[u8]) -> Result<(), SelectError> {
        let bad = |reason: &str| SelectError {
            path: String::from_utf8_lossy(path).into_owned(),
            reason: reason.into(),
        };
        if path.contains(&0) {
            return Err(bad("it contains a NUL byte"));
        }
        let mut normal = Vec::with_capacity(path.len());
        for component in path.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            if component == b"." || component == b".." {
                return Err(bad("'.' and '..' are not allowed"));
            }
            if !normal.is_empty() {
                normal.push(b'/');
            }
            normal.extend_from_slice(component);
        }
        if !self.paths.contains(&normal) {
            self.paths.push(normal);
        }
        Ok(())
    }

    /// The selected paths, normalized, in the order they were added.
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.paths.iter().map(Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether the whole tree is selected (the root was added).
    pub fn is_all(&self) -> bool {
        self.paths.iter().any(Vec::is_empty)
    }

    /// Where `path` (relative to the walk root, without leading `/`) stands.
    pub fn decide(&self, path: &[u8]) -> Selected {
        let mut ancestor = path.is_empty();
        for selected in &self.paths {
            if is_within(path, selected) {
                return Selected::Inside;
            }
            ancestor |= is_within(selected, path);
        }
        match ancestor {
            true => Selected::Ancestor,
            false => Selected::Outside,
        }
    }
}

/// Whether `path` is `base` or below it (the empty base is the root: everything is below it).
fn is_within(path: &[u8], base: &[u8]) -> bool {
    base.is_empty()
        || path == base
        || (path.len() > base.len() && path.starts_with(base) && path[base.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(paths: &[&str]) -> Selection {
        let mut s = Selection::new();
        for p in paths {
            s.add(p.as_bytes()).unwrap();
        }
        s
    }

    #[test]
    fn selected_paths_their_contents_and_ancestors() {
        let s = select(&["/etc/pve", "etc/hosts", "/root/.ssh/"]);
        assert_eq!(s.decide(b"etc/pve"), Selected::Inside);
        assert_eq!(s.decide(b"etc/pve/nodes/a/host.fw"), Selected::Inside);
        assert_eq!(s.decide(b"etc/hosts"), Selected::Inside);
        assert_eq!(s.decide(b"root/.ssh/authorized_keys"), Selected::Inside);
        assert_eq!(s.decide(b"etc"), Selected::Ancestor);
        assert_eq!(s.decide(b"root"), Selected::Ancestor);
        assert_eq!(s.decide(b""), Selected::Ancestor);
        assert_eq!(s.decide(b"usr"), Selected::Outside);
        assert_eq!(s.decide(b"etc/passwd"), Selected::Outside);
        // Prefixes of names are not ancestors, nor contents.
        assert_eq!(s.decide(b"etc/pve2"), Selected::Outside);
        assert_eq!(s.decide(b"etc/hosts.allow"), Selected::Outside);
        assert_eq!(s.decide(b"et"), Selected::Outside);
        assert_eq!(s.decide(b"root/.ss"), Selected::Outside);
    }

    #[test]
    fn paths_are_normalized_and_deduplicated() {
        let s = select(&["//etc//hosts/", "etc/hosts", "/etc/hosts"]);
        assert_eq!(s.paths().collect::<Vec<_>>(), vec![&b"etc/hosts"[..]]);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_root_selects_everything() {
        for root in ["", "/", "//"] {
            let s = select(&[root, "etc/hosts"]);
            assert!(s.is_all());
            assert_eq!(s.decide(b"usr/bin/ls"), Selected::Inside);
            assert_eq!(s.decide(b"etc"), Selected::Inside);
        }
    }

    #[test]
    fn an_empty_selection_selects_nothing_below_the_root() {
        let s = Selection::new();
        assert!(s.is_empty() && !s.is_all());
        assert_eq!(s.decide(b""), Selected::Ancestor);
        assert_eq!(s.decide(b"etc"), Selected::Outside);
    }

    #[test]
    fn dot_components_and_nul_are_refused() {
        for bad in ["etc/../root", "./etc", "etc/.", "etc\0x"] {
            let err = Selection::new().add(bad.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("invalid selected path"), "{err}");
        }
        // Names that merely start with dots are fine.
        select(&["root/.ssh", "etc/..weird", ".../x"]);
    }
}
