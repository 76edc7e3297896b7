//! Exclude patterns, gitignore style: from `--exclude` and from `.pxarexclude` files.
//!
//! A pattern with a `/` before its end is anchored to the directory it was given for (the
//! archive root for `--exclude`, the file's directory for `.pxarexclude`); without one it matches
//! the name at any depth below. `**` spans directories, a trailing `/` matches directories only,
//! a leading `!` re-includes what an earlier pattern excluded, `#` starts a comment. The last
//! matching pattern decides. An excluded directory is not entered, so nothing below it can be
//! re-included (as in git).

use stowage_format::catalog::Glob;

/// One parsed pattern.
#[derive(Debug)]
struct Rule {
    glob: Glob,
    negated: bool,
    dir_only: bool,
}

/// A pattern that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid exclude pattern '{pattern}': {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// An ordered set of exclude rules.
#[derive(Debug, Default)]
pub struct Excludes {
    rules: Vec<Rule>,
}

/// Escapes glob syntax in a literal directory path.
fn escape(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

impl Excludes {
    pub fn new() -> Self {
        Excludes::default()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Adds one pattern given for directory `base` (a path relative to the archive root, empty
    /// for the root itself). Blank lines and comments are ignored.
    pub fn add(&mut self, base: &[u8], pattern: &[u8]) -> Result<(), PatternError> {
        let mut p = pattern;
        while let [rest @ .., b'\r' | b' ' | b'\t'] = p {
            p = rest;
        }
        if p.is_empty() || p[0] == b'#' {
            return Ok(());
        }
        let negated = p[0] == b'!';
        if negated {
            p = &p[1..];
        }
        let dir_only = p.len() > 1 && p.ends_with(b"/");
        if dir_only {
            p = &p[..p.len() - 1];
        }
        let anchored = p.contains(&b'/');
        let p = p.strip_prefix(b"/").unwrap_or(p);
        if p.is_empty() {
            return Err(PatternError {
                pattern: String::from_utf8_lossy(pattern).into_owned(),
                reason: "it matches nothing".into(),
            });
        }
        let mut full = escape(base);
        if !full.is_empty() {
            full.push(b'/');
        }
        if !anchored {
            full.extend_from_slice(b"**/");
        }
        full.extend_from_slice(p);
        let glob = Glob::new(&full).map_err(|e| PatternError {
            pattern: String::from_utf8_lossy(pattern).into_owned(),
            reason: e.to_string(),
        })?;
        self.rules.push(Rule {
            glob,
            negated,
            dir_only,
        });
        Ok(())
    }

    /// Adds every line of a `.pxarexclude` file found in directory `base`.
    pub fn add_file(&mut self, base: &[u8], text: &[u8]) -> Result<(), PatternError> {
        for line in text.split(|b| *b == b'\n') {
            self.add(base, line)?;
        }
        Ok(())
    }

    /// Whether the entry at `path` (relative to the archive root) is excluded.
    pub fn is_excluded(&self, path: &[u8], is_dir: bool) -> bool {
        self.rules
            .iter()
            .rev()
            .find(|r| (!r.dir_only || is_dir) && r.glob.is_match(path))
            .is_some_and(|r| !r.negated)
    }

    /// Number of rules: the walker drops rules of a directory it leaves by truncating to this.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn truncate(&mut self, len: usize) {
        self.rules.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> Excludes {
        let mut e = Excludes::new();
        for p in patterns {
            e.add(b"", p.as_bytes()).unwrap();
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
    fn anchored_patterns_match_from_their_base() {
        let e = set(&["/tmp", "var/cache"]);
        assert!(e.is_excluded(b"tmp", true));
        assert!(!e.is_excluded(b"home/tmp", true));
        assert!(e.is_excluded(b"var/cache", true));
        assert!(!e.is_excluded(b"x/var/cache", true));
    }

    #[test]
    fn double_star_negation_and_dir_only() {
        let e = set(&["**/node_modules/", "*.o", "!keep.o", "# comment", ""]);
        assert!(e.is_excluded(b"src/web/node_modules", true));
        assert!(!e.is_excluded(b"src/web/node_modules", false));
        assert!(e.is_excluded(b"a/b/c.o", false));
        assert!(!e.is_excluded(b"a/b/keep.o", false));
        let e = set(&["a/**/z"]);
        assert!(e.is_excluded(b"a/b/c/z", false));
        assert!(e.is_excluded(b"a/z", false));
    }

    #[test]
    fn per_directory_rules_stay_in_their_directory() {
        let mut e = Excludes::new();
        e.add_file(b"home/u", b"*.tmp\n/build\n").unwrap();
        assert!(e.is_excluded(b"home/u/x.tmp", false));
        assert!(e.is_excluded(b"home/u/deep/x.tmp", false));
        assert!(!e.is_excluded(b"home/v/x.tmp", false));
        assert!(e.is_excluded(b"home/u/build", true));
        assert!(!e.is_excluded(b"home/u/src/build", true));
        // Glob characters in the directory name are literal.
        let mut e = Excludes::new();
        e.add(b"we*rd", b"x").unwrap();
        assert!(e.is_excluded(b"we*rd/x", false));
        assert!(!e.is_excluded(b"weXrd/x", false));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Excludes::new().add(b"", b"/").is_err());
        assert!(Excludes::new().add(b"", b"[").is_err());
    }
}
