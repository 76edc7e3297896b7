//! The snapshot manifest, `index.json.blob`: which files a snapshot holds, with size and checksum.

use serde::{Deserialize, Serialize};
use stowage_types::{BackupGroup, BackupTime, BackupType, Digest, ErrorClass, SnapshotRef};

/// The manifest's own file name in a snapshot directory.
pub const MANIFEST_BLOB_NAME: &str = "index.json.blob";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CryptMode {
    #[default]
    None,
    Encrypt,
    SignOnly,
}

/// One file of a snapshot. Field order is alphabetical, as PBS writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    #[serde(rename = "crypt-mode", default)]
    pub crypt_mode: CryptMode,
    pub csum: Digest,
    pub filename: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "backup-id")]
    pub backup_id: String,
    #[serde(rename = "backup-time")]
    pub backup_time: i64,
    #[serde(rename = "backup-type")]
    pub backup_type: BackupType,
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub unprotected: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest names an invalid snapshot: {0}")]
    Name(#[from] stowage_types::NameError),
    #[error("manifest lists an unsafe file name '{0}'")]
    FileName(String),
}

impl ManifestError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Verification
    }
}

impl Manifest {
    pub fn new(snapshot: &SnapshotRef) -> Self {
        Manifest {
            backup_id: snapshot.group.id().to_string(),
            backup_time: snapshot.time.epoch(),
            backup_type: snapshot.group.ty,
            files: Vec::new(),
            signature: None,
            unprotected: serde_json::Map::new(),
        }
    }

    pub fn snapshot(&self) -> Result<SnapshotRef, ManifestError> {
        let group = BackupGroup::new(self.backup_type, &self.backup_id)?;
        Ok(SnapshotRef::new(
            group,
            BackupTime::from_epoch(self.backup_time)?,
        ))
    }

    pub fn file(&self, filename: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.filename == filename)
    }

    /// Pretty-printed JSON, as PBS stores it inside the blob.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and checks that every file name is a plain name inside the snapshot directory.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        m.snapshot()?;
        for f in &m.files {
            let plain = !f.filename.is_empty()
                && !f.filename.starts_with('.')
                && !f.filename.contains(['/', '\\', '\0']);
            if !plain {
                return Err(ManifestError::FileName(f.filename.clone()));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let snap: SnapshotRef = "host/elsa/2020-06-26T13:56:05Z".parse().unwrap();
        let mut m = Manifest::new(&snap);
        m.files.push(FileEntry {
            crypt_mode: CryptMode::None,
            csum: Digest([1; 32]),
            filename: "test1.img.fidx".into(),
            size: 200,
        });
        m
    }

    /// The schema of spec section 5.1 with PBS's alphabetical key order.
    #[test]
    fn golden_json() {
        let text = String::from_utf8(sample().to_json()).unwrap();
        let expected = format!(
            "{{\n  \"backup-id\": \"elsa\",\n  \"backup-time\": 1593179765,\n  \"backup-type\": \"host\",\n  \"files\": [\n    {{\n      \"crypt-mode\": \"none\",\n      \"csum\": \"{}\",\n      \"filename\": \"test1.img.fidx\",\n      \"size\": 200\n    }}\n  ],\n  \"signature\": null,\n  \"unprotected\": {{}}\n}}",
            "01".repeat(32)
        );
        assert_eq!(text, expected);
        assert_eq!(Manifest::from_json(text.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn missing_optional_fields_default() {
        let json = br#"{"backup-type":"vm","backup-id":"100","backup-time":1,"files":[{"filename":"a.blob","size":1,"csum":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
        let m = Manifest::from_json(json).unwrap();
        assert_eq!(m.files[0].crypt_mode, CryptMode::None);
        assert!(m.unprotected.is_empty());
    }

    #[test]
    fn hostile_manifests_are_refused() {
        for json in [
            br#"{"backup-type":"vm","backup-id":"../x","backup-time":1,"files":[]}"#.as_slice(),
            br#"{"backup-type":"vm","backup-id":"1","backup-time":0,"files":[]}"#,
            br#"{"backup-type":"disk","backup-id":"1","backup-time":1,"files":[]}"#,
            br#"{"backup-type":"vm","backup-id":"1","backup-time":1,"files":[{"filename":"../../etc/passwd","size":1,"csum":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
            b"not json",
        ] {
            assert!(Manifest::from_json(json).is_err());
        }
    }
}
