//! Which entries of an archive a restore selects.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use stowage_format::pattern::{MatchType, Pattern, PatternList};
use stowage_types::ErrorClass;

use crate::OpsError;

/// Which entries to restore: all, or those an ordered list of patterns selects (PBS's restore
/// `--pattern`; see [`stowage_format::pattern`]). The last matching pattern decides; a `!`
/// pattern excludes. An entry no pattern matches inherits the decision of its directory; the
/// archive root (`/`) is included only if a pattern says so, or when there are no patterns.
pub struct Includes(PatternList);

impl Includes {
    pub fn new(patterns: &[OsString]) -> Result<Includes, OpsError> {
        let mut list = PatternList::new();
        for p in patterns {
            let pattern = Pattern::parse(p.as_bytes(), MatchType::Include).map_err(|e| {
                OpsError::failed(
                    ErrorClass::Usage,
                    format!("invalid --include pattern '{}': {}", e.pattern, e.reason),
                )
            })?;
            list.push(pattern);
        }
        Ok(Includes(list))
    }

    pub fn everything(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the entry at `path` (relative to the archive root, `etc/hosts`) is restored, when
    /// its directory's decision is `parent`.
    pub fn decide(&self, path: &[u8], is_dir: bool, parent: bool) -> bool {
        if self.everything() {
            return true;
        }
        let mut full = Vec::with_capacity(path.len() + 1);
        full.push(b'/');
        full.extend_from_slice(path);
        match self.0.matches(&full, is_dir) {
            Some(ty) => ty == MatchType::Include,
            None => parent,
        }
    }

    /// The decision for the archive root, which the entries below it inherit.
    pub fn root(&self) -> bool {
        match self.0.matches(b"/", true) {
            Some(ty) => ty == MatchType::Include,
            None => self.everything(),
        }
    }
}

/// A path as the user gives it (`/etc/`, `etc`) in the archive's form (`etc`).
pub fn trim_slashes(mut p: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = p {
        p = rest;
    }
    while let [rest @ .., b'/'] = p {
        p = rest;
    }
    p
}
