//! Exclude patterns for the walk, from `--exclude` and from `.pxarexclude` files, with the
//! meaning PBS gives them (see [`stowage_format::pattern`]).
//!
//! Entries are matched by their path below the archive root with a `/` in front (`/etc/hosts`).
//! A pattern matches the whole path or any complete suffix of it, so `*.log` or `var/cache`
//! match at any depth; one starting with `/` matches the whole path only. A trailing `/` matches
//! directories only, a leading `!` re-includes what an earlier pattern excluded, and the last
//! matching pattern decides. In a `.pxarexclude` file, lines are trimmed, empty lines and `#`
//! comments are skipped, and a line starting with `/` is anchored to the file's directory; its
//! patterns apply below that directory only. An excluded directory is not entered, so nothing
//! below it can be re-included.

use stowage_format::pattern::{self, MatchType, Pattern, PatternList};

/// A pattern that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid exclude pattern '{pattern}': {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl From<pattern::PatternError> for PatternError {
    fn from(e: pattern::PatternError) -> Self {
        PatternError {
            pattern: e.pattern,
            reason: e.reason.to_string(),
        }
    }
}

/// An ordered list of exclude patterns.
#[derive(Debug, Default)]
pub struct Excludes {
    list: PatternList,
}

/// `path` (relative to the archive root, `home/u`) as a match path (`/home/u`).
fn match_path(path: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(path.len() + 1);
    full.push(b'/');
    full.extend_from_slice(path);
    full
}

impl Excludes {
    pub fn new() -> Self {
        Excludes::default()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds one pattern given for the whole archive (`--exclude`, a profile's `exclude`): an
    /// exclude pattern (`!` for an include), matching at any depth unless it starts with `/`.
    /// Taken as given: no trimming, no comments.
    pub fn add(&mut self, pattern: &[u8]) -> Result<(), PatternError> {
        self.list.push(Pattern::parse(pattern, MatchType::Exclude)?);
        Ok(())
    }

    /// Adds every line of a `.pxarexclude` file found in directory `base` (relative to the
    /// archive root, empty for the root itself). Invalid lines are left out and returned; the
    /// others apply.
    pub fn add_file(&mut self, base: &[u8], text: &[u8]) -> Vec<PatternError> {
        let errors = self.list.add_exclude_file(&match_path(base), text);
        errors.into_iter().map(PatternError::from).collect()
    }

    /// Whether the entry at `path` (relative to the archive root, `etc/hosts`) is excluded.
    pub fn is_excluded(&self, path: &[u8], is_dir: bool) -> bool {
        !self.list.is_empty()
            && self.list.matches(&match_path(path), is_dir) == Some(MatchType::Exclude)
    }

    /// Number of patterns: the walker drops those of a directory it leaves by truncating to
    /// this.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn truncate(&mut self, len: usize) {
        self.list.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> Excludes {
        let mut e = Excludes::new();
        for p in patterns {
            e.add(p.as_bytes()).unwrap();
        }
        e
    }

    #[test]
    fn unanchored_patterns_match_at_any_depth() {
        let e = set(&["*.log"]);
        assert!(e.is_excluded(b"a.log", false));
        assert!(e.is_excluded(b"var/log/syslog.log", false));
        assert!(!e.is_excluded(b"var/log/syslog", false));
    }

    #[test]
    fn a_leading_slash_anchors_a_slash_inside_does_not() {
        // PBS's meaning: `var/cache` matches every path ending in var/cache (gitignore would
        // anchor it at the root).
        let e = set(&["/tmp", "var/cache"]);
        assert!(e.is_excluded(b"tmp", true));
        assert!(!e.is_excluded(b"home/tmp", true));
        assert!(e.is_excluded(b"var/cache", true));
        assert!(e.is_excluded(b"x/var/cache", true));
        assert!(!e.is_excluded(b"var/cache/apt", true));
        assert!(!e.is_excluded(b"xvar/cache", true));
    }

    #[test]
    fn double_star_negation_and_dir_only() {
        let e = set(&["**/node_modules/", "*.o", "!keep.o"]);
        assert!(e.is_excluded(b"src/web/node_modules", true));
        assert!(!e.is_excluded(b"src/web/node_modules", false));
        assert!(e.is_excluded(b"a/b/c.o", false));
        assert!(!e.is_excluded(b"a/b/keep.o", false));
        let e = set(&["a/**/z"]);
        assert!(e.is_excluded(b"a/b/c/z", false));
        assert!(e.is_excluded(b"a/z", false));
        assert!(e.is_excluded(b"q/a/z", false));
        // Command-line patterns are taken as given: '#' is no comment there.
        let e = set(&["#x"]);
        assert!(e.is_excluded(b"d/#x", false));
    }

    #[test]
    fn per_directory_rules_stay_in_their_directory() {
        let mut e = set(&["*.log"]);
        let before = e.len();
        let errors = e.add_file(b"home/u", b"*.tmp\n/build\n# c\n\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(e.len(), before + 2);
        assert!(e.is_excluded(b"home/u/x.tmp", false));
        assert!(e.is_excluded(b"home/u/deep/x.tmp", false));
        assert!(e.is_excluded(b"home/u/build", true));
        assert!(!e.is_excluded(b"home/u/src/build", true));
        assert!(!e.is_excluded(b"build", true));
        // Leaving the directory, the walk drops its patterns.
        e.truncate(before);
        assert!(!e.is_excluded(b"home/u/x.tmp", false));
        assert!(!e.is_excluded(b"home/u/build", true));
        assert!(e.is_excluded(b"home/u/a.log", false));
        // At the root, an anchored line is anchored at the root.
        let mut e = Excludes::new();
        assert!(e.add_file(b"", b"/build\n").is_empty());
        assert!(e.is_excluded(b"build", true));
        assert!(!e.is_excluded(b"a/build", true));
        // Glob characters in the directory name are literal.
        let mut e = Excludes::new();
        assert!(e.add_file(b"we*rd", b"/x").is_empty());
        assert!(e.is_excluded(b"we*rd/x", false));
        assert!(!e.is_excluded(b"weXrd/x", false));
    }

    #[test]
    fn bad_patterns_are_errors() {
        let e = Excludes::new().add(b"[").unwrap_err();
        assert!(e.to_string().contains("invalid exclude pattern '['"), "{e}");
        assert!(Excludes::new().add(b"").is_err());
        // Slashes alone are the root directory, which the walk never asks about.
        let e = set(&["/"]);
        assert!(!e.is_excluded(b"a", true));
        let mut e = Excludes::new();
        let errors = e.add_file(b"d", b"ok\nbad[\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pattern, "bad[");
        assert!(e.is_excluded(b"d/ok", false));
    }
}
