//! Path patterns with the meaning Proxmox Backup Server gives them (spec 13.7): `catalog find`,
//! restore selections (`--include`), `--exclude` and `.pxarexclude` files.
//!
//! A pattern is a [`Glob`] (`*`, `?`, `**`, `[...]`, `\x`) with two marks:
//! - a leading `!` inverts it: an include pattern becomes an exclude pattern and back;
//! - trailing `/` characters are dropped and make it match directories only; a pattern of
//!   slashes alone becomes `/` (directories only).
//!
//! Paths are matched in the form `/a/b/c`: a leading `/`, relative to the archive root (the root
//! itself is `/`). A pattern matches a path when its glob matches the whole path or any complete
//! suffix that starts after a `/`: for `/foo/bar/baz` these are `baz`, `bar/baz` and
//! `foo/bar/baz`. So `hosts` matches every entry named `hosts`, `var/cache` matches `/var/cache`
//! and `/x/var/cache` (a `/` inside a pattern does not anchor it, unlike gitignore), and as no
//! suffix starts with `/`, a pattern that starts with `/` is compared with the whole path only.
//!
//! In a [`PatternList`] the last matching pattern decides.
//!
//! Differences from PBS, on purpose: `?` and a class take one UTF-8 character, not one byte (see
//! [`Glob`]); an empty pattern (or `!` alone) is refused rather than read as `/`; glob characters
//! in the directory that anchors a `.pxarexclude` line are taken literally.

use crate::catalog::Glob;

/// What a matching pattern says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Include,
    Exclude,
}

impl std::ops::Not for MatchType {
    type Output = MatchType;

    fn not(self) -> MatchType {
        match self {
            MatchType::Include => MatchType::Exclude,
            MatchType::Exclude => MatchType::Include,
        }
    }
}

/// A pattern that is not valid; `pattern` is what the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern '{pattern}': {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

/// One parsed pattern: a glob, its type, and whether it is for directories only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Compiled so that one pass over the whole path tries every suffix: `**/` + the pattern,
    /// unless it starts with `/`.
    glob: Glob,
    ty: MatchType,
    dir_only: bool,
}

/// Escapes glob syntax in a literal path.
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

/// Splits a leading `!` off `pattern`, inverting `ty`.
fn split_bang(pattern: &[u8], ty: MatchType) -> (&[u8], MatchType) {
    match pattern.strip_prefix(b"!") {
        Some(rest) => (rest, !ty),
        None => (pattern, ty),
    }
}

impl Pattern {
    /// Parses `pattern`, of type `ty` unless a leading `!` inverts it (for `--exclude`, `ty` is
    /// [`MatchType::Exclude`]; for restore selections and `find`, [`MatchType::Include`]).
    pub fn parse(pattern: &[u8], ty: MatchType) -> Result<Pattern, PatternError> {
        let (body, ty) = split_bang(pattern, ty);
        Pattern::compile(pattern, body, ty)
    }

    /// Parses `pattern` given in the directory whose match path is `dir` (`/home/u`; `/` or
    /// empty for the root), as a `.pxarexclude` line there: a pattern starting with `/` (after
    /// a `!`) is anchored to `dir`, so `/build` in `/home/u` matches `/home/u/build` only. Other
    /// patterns are as [`parse`](Self::parse) gives them.
    pub fn parse_in(dir: &[u8], pattern: &[u8], ty: MatchType) -> Result<Pattern, PatternError> {
        let (body, ty) = split_bang(pattern, ty);
        let mut dir = dir;
        while let [rest @ .., b'/'] = dir {
            dir = rest;
        }
        if !body.starts_with(b"/") || dir.is_empty() {
            return Pattern::compile(pattern, body, ty);
        }
        let mut full = escape(dir);
        if !full.starts_with(b"/") {
            full.insert(0, b'/');
        }
        full.extend_from_slice(body);
        Pattern::compile(pattern, &full, ty)
    }

    /// Compiles `body` (`!` already taken off); `shown` is the pattern as given, for errors.
    fn compile(shown: &[u8], body: &[u8], ty: MatchType) -> Result<Pattern, PatternError> {
        if body.is_empty() {
            return Err(PatternError {
                pattern: String::from_utf8_lossy(shown).into_owned(),
                reason: "it is empty",
            });
        }
        let (body, dir_only) = match body.iter().rposition(|&b| b != b'/') {
            Some(last) => (&body[..=last], last + 1 < body.len()),
            None => (&b"/"[..], true),
        };
        let glob = if body.starts_with(b"/") {
            Glob::new(body)
        } else {
            Glob::new(&[&b"**/"[..], body].concat())
        };
        let glob = glob.map_err(|e| PatternError {
            pattern: String::from_utf8_lossy(shown).into_owned(),
            reason: e.reason,
        })?;
        Ok(Pattern { glob, ty, dir_only })
    }

    /// Include or exclude: what this pattern says about the entries it matches.
    pub fn match_type(&self) -> MatchType {
        self.ty
    }

    /// Whether the pattern is for directories only (it ended in `/`).
    pub fn dir_only(&self) -> bool {
        self.dir_only
    }

    /// Whether the pattern matches the entry at `path` (`/a/b/c`): its whole path or a complete
    /// suffix of it, and, for a directories-only pattern, only if `is_dir`.
    pub fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        (is_dir || !self.dir_only) && self.glob.is_match(path)
    }
}

/// An ordered list of patterns; the last one that matches an entry decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternList {
    patterns: Vec<Pattern>,
}

impl PatternList {
    pub fn new() -> Self {
        PatternList::default()
    }

    pub fn push(&mut self, pattern: Pattern) {
        self.patterns.push(pattern);
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Drops every pattern after the first `len` (those of a directory the walk leaves).
    pub fn truncate(&mut self, len: usize) {
        self.patterns.truncate(len);
    }

    /// What the last pattern matching the entry at `path` (`/a/b/c`) says; `None` if none does.
    pub fn matches(&self, path: &[u8], is_dir: bool) -> Option<MatchType> {
        self.patterns
            .iter()
            .rev()
            .find(|p| p.matches(path, is_dir))
            .map(Pattern::match_type)
    }

    /// Adds the patterns of a `.pxarexclude` file found in the directory whose match path is
    /// `dir` (see [`Pattern::parse_in`]): each line is trimmed of ASCII whitespace, empty lines
    /// and lines starting with `#` are skipped, the others are exclude patterns (`!` for an
    /// include), anchored to `dir` when they start with `/`. A line that is not a valid pattern
    /// is left out; the errors are returned, the other lines apply.
    pub fn add_exclude_file(&mut self, dir: &[u8], text: &[u8]) -> Vec<PatternError> {
        let mut errors = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            match Pattern::parse_in(dir, line, MatchType::Exclude) {
                Ok(p) => self.patterns.push(p),
                Err(e) => errors.push(e),
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests;
