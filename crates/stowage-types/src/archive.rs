use std::fmt;

use crate::{is_safe_id, NameError};

/// What an archive holds, from the extension of its user-facing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveKind {
    /// A disk image, stored as a fixed index (`.img` -> `.img.fidx`).
    Image,
    /// A file-tree archive, stored as a dynamic index (`.pxar` -> `.pxar.didx`).
    Pxar,
    /// A small file stored whole as a blob (`.conf`, `.log`, `.json`, `.key` -> `+.blob`).
    Blob,
}

/// An archive name as the user gives it (`drive-scsi0.img`, `vm.conf`) together with the name
/// it is stored under (`drive-scsi0.img.fidx`, `vm.conf.blob`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveName {
    user: String,
    kind: ArchiveKind,
}

impl ArchiveName {
    /// Parses either form: `disk.img` or `disk.img.fidx`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let bad = |why| NameError::Archive(name.to_string(), why);
        let user = name
            .strip_suffix(".fidx")
            .or_else(|| name.strip_suffix(".didx"))
            .or_else(|| name.strip_suffix(".blob"))
            .unwrap_or(name);
        if !is_safe_id(user) || user.len() > 200 {
            return Err(bad("use letters, digits, '_', '-' and '.'"));
        }
        let (stem, ext) = user
            .rsplit_once('.')
            .ok_or_else(|| bad("it needs an extension: .img, .pxar, .conf or .log"))?;
        if stem.is_empty() {
            return Err(bad("the name before the extension is empty"));
        }
        let kind = match ext {
            "img" => ArchiveKind::Image,
            "pxar" | "mpxar" | "ppxar" | "pcat1" => ArchiveKind::Pxar,
            "conf" | "log" | "json" | "key" => ArchiveKind::Blob,
            _ => return Err(bad("unknown extension: use .img, .pxar, .conf or .log")),
        };
        let stored_suffix = match kind {
            ArchiveKind::Image => ".fidx",
            ArchiveKind::Pxar => ".didx",
            ArchiveKind::Blob => ".blob",
        };
        if name != user && !name.ends_with(stored_suffix) {
            return Err(bad("the stored suffix does not fit the extension"));
        }
        Ok(ArchiveName {
            user: user.to_string(),
            kind,
        })
    }

    pub fn kind(&self) -> ArchiveKind {
        self.kind
    }

    /// The name as the user gives it: `drive-scsi0.img`.
    pub fn user_name(&self) -> &str {
        &self.user
    }

    /// The file name inside the snapshot directory: `drive-scsi0.img.fidx`.
    pub fn stored_name(&self) -> String {
        let suffix = match self.kind {
            ArchiveKind::Image => "fidx",
            ArchiveKind::Pxar => "didx",
            ArchiveKind::Blob => "blob",
        };
        format!("{}.{}", self.user, suffix)
    }
}

impl fmt::Display for ArchiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_user_names_to_stored_names() {
        let cases = [
            (
                "drive-scsi0.img",
                "drive-scsi0.img.fidx",
                ArchiveKind::Image,
            ),
            (
                "drive-scsi0.img.fidx",
                "drive-scsi0.img.fidx",
                ArchiveKind::Image,
            ),
            ("root.pxar", "root.pxar.didx", ArchiveKind::Pxar),
            (
                "qemu-server.conf",
                "qemu-server.conf.blob",
                ArchiveKind::Blob,
            ),
            ("client.log.blob", "client.log.blob", ArchiveKind::Blob),
            ("catalog.pcat1", "catalog.pcat1.didx", ArchiveKind::Pxar),
        ];
        for (input, stored, kind) in cases {
            let a = ArchiveName::parse(input).unwrap();
            assert_eq!(a.stored_name(), stored);
            assert_eq!(a.kind(), kind);
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "disk",
            "disk.raw",
            "../x.img",
            "a/b.img",
            ".img",
            "disk.img.didx",
            "x.conf.fidx",
        ] {
            assert!(ArchiveName::parse(bad).is_err(), "{bad}");
        }
    }
}
