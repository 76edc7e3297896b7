//! Hardlinks checked against the archive they are in: a hardlink must name a regular file that
//! came earlier in the archive, by both the offset of that file's entry and its path. Anything
//! else (a link to nothing, to a directory, or through a symlink of the archive to a file
//! outside it) would make an extraction link whatever lies under that name, or fail.

use crate::event::{Entry, EntryKind};

/// A hardlink that does not name an earlier regular file of its archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: hardlink target {target} is not a regular file earlier in the archive")]
pub struct HardlinkError {
    pub path: String,
    pub target: String,
}

/// The regular files of an archive so far, by the offset of their entry (increasing in archive
/// order) with a hash of their path: 16 bytes per regular file.
#[derive(Debug, Default)]
pub struct HardlinkCheck(Vec<(u64, u64)>);

impl HardlinkCheck {
    pub fn new() -> Self {
        HardlinkCheck::default()
    }

    fn hash(path: &[u8]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        path.hash(&mut h);
        h.finish()
    }

    /// Takes the next entry of the archive (in order): remembers a regular file, checks a
    /// hardlink.
    pub fn check(&mut self, entry: &Entry) -> Result<(), HardlinkError> {
        match &entry.kind {
            EntryKind::File { .. } => {
                if let Some(offset) = entry.filename_offset {
                    self.0.push((offset.0, Self::hash(&entry.path_bytes())));
                }
            }
            EntryKind::Hardlink {
                target_path,
                target,
            } => {
                let found = self
                    .0
                    .binary_search_by_key(&target.0, |f| f.0)
                    .is_ok_and(|i| self.0[i].1 == Self::hash(target_path));
                if !found {
                    return Err(HardlinkError {
                        path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                        target: String::from_utf8_lossy(target_path).into_owned(),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }
}
