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

/// Archive names a snapshot keeps for its own files (PBS's and stowage's), with what they are:
/// no backup may take them.
pub const RESERVED: [(&str, &str); 4] = [
    ("index.json", "the snapshot's manifest (index.json.blob)"),
    (
        "catalog.pcat1",
        "the snapshot's file catalog (catalog.pcat1.didx)",
    ),
    ("client.log", "the client log (client.log.blob)"),
    (
        "rsa-encrypted.key",
        "the master-key copy of the encryption key (rsa-encrypted.key.blob)",
    ),
];

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
        let bad = |why: &'static str| NameError::Archive(name.to_string(), why.into());
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

    /// Parses a name for a new archive of a backup (`NAME.img`, `NAME.pxar`, `NAME.conf`,
    /// `NAME.log`), refusing what only a snapshot itself may hold: a stored suffix
    /// (`.fidx`/`.didx`/`.blob`), the split and catalog streams a tree backup writes (`.mpxar`,
    /// `.ppxar`, `.pcat1`), and the names of the snapshot's own files ([`RESERVED`]).
    pub fn for_backup(name: &str) -> Result<Self, NameError> {
        let parsed = ArchiveName::parse(name)?;
        let bad = |why: String| NameError::Archive(name.to_string(), why.into());
        if let Some((_, what)) = RESERVED.iter().find(|(n, _)| *n == parsed.user) {
            return Err(bad(format!(
                "the name is reserved for {what}; choose another"
            )));
        }
        if parsed.user != name {
            return Err(bad(format!(
                "give the name without its stored suffix: {}",
                parsed.user
            )));
        }
        let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
        if !matches!(ext, "img" | "pxar" | "conf" | "log") {
            return Err(bad(format!(
                ".{ext} archives are written by stowage itself; back up NAME.img, NAME.pxar, NAME.conf or NAME.log"
            )));
        }
        Ok(parsed)
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
    fn backups_may_not_take_the_snapshots_own_names() {
        for name in [
            "index.json",
            "index.json.blob",
            "catalog.pcat1",
            "catalog.pcat1.didx",
            "client.log",
            "client.log.blob",
            "rsa-encrypted.key",
            "rsa-encrypted.key.blob",
            "disk.img.fidx",
            "root.pxar.didx",
            "vm.conf.blob",
            "root.mpxar",
            "root.ppxar",
            "x.pcat1",
            "x.json",
            "x.key",
            "owner",
            ".lock",
            ".index.json.lck",
            "disk.img.tmp_fidx",
            "root.pxar.tmp_didx",
            ".protected",
        ] {
            assert!(
                ArchiveName::for_backup(name).is_err(),
                "{name} was accepted"
            );
        }
        for name in [
            "drive-scsi0.img",
            "root.pxar",
            "qemu-server.conf",
            "pveversion.log",
            "client2.log",
        ] {
            assert_eq!(ArchiveName::for_backup(name).unwrap().user_name(), name);
        }
        let err = ArchiveName::for_backup("index.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reserved") && err.contains("manifest"),
            "{err}"
        );
    }

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
