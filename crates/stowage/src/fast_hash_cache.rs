//! The client's cache of fast hashes (see `stowage_core::FastHashes`): for each datastore,
//! namespace, group and image archive, the SHA-256/BLAKE3 pairs of the newest backup this client
//! made of it. The next backup of the same image recognises unchanged chunks by BLAKE3.
//!
//! Nothing here is needed for correctness: a missing, stale or damaged file is ignored (and the
//! backup hashes with SHA-256 as usual), and a failure to write one is only a warning.
//!
//! Where: `$STOWAGE_CACHE_DIR`, else `$XDG_CACHE_HOME/stowage`, else `~/.cache/stowage`; below
//! it `fast-hashes/<datastore>/<namespace>/<type>/<id>/<archive>/<snapshot epoch>.b3`, where
//! `<datastore>` is the first 16 hex digits of the SHA-256 of the datastore's canonical path. The
//! newest [`KEEP`] files of an archive are kept, so a backup whose newest snapshot was forgotten
//! (or failed) still finds the one it is incremental against.
//!
//! File: magic `STWB3v1\n`, the snapshot's time (i64 LE), the pair count (u64 LE), the pairs
//! (32-byte SHA-256, 32-byte BLAKE3), then the SHA-256 of everything before.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use stowage_core::Blake3;
use stowage_datastore::Datastore;
use stowage_types::{ArchiveName, BackupGroup, Digest};

const MAGIC: &[u8; 8] = b"STWB3v1\n";
const HEADER: usize = 8 + 8 + 8;
const PAIR: usize = 64;
/// The (SHA-256, BLAKE3) pairs of one archive's data chunks.
pub type Pairs = Vec<(Digest, Blake3)>;

/// Cache files kept per archive.
pub const KEEP: usize = 3;

/// The cache directory of one image archive of `group` in `store`, if a cache directory is known.
pub fn dir(store: &Datastore, group: &BackupGroup, archive: &ArchiveName) -> Option<PathBuf> {
    let root = match std::env::var_os("STOWAGE_CACHE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("stowage"),
            _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache/stowage"),
        },
    };
    let base = std::fs::canonicalize(store.base()).ok()?;
    let id = stowage_format::sha256(base.as_os_str().as_encoded_bytes()).to_hex();
    Some(
        root.join("fast-hashes")
            .join(&id[..16])
            .join(store.namespace().relative_path())
            .join(group.to_string())
            .join(archive.stored_name()),
    )
}

pub fn encode(time: i64, pairs: &[(Digest, Blake3)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + pairs.len() * PAIR + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    for (digest, b3) in pairs {
        out.extend_from_slice(digest.as_bytes());
        out.extend_from_slice(b3);
    }
    let sum = stowage_format::sha256(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The snapshot time and pairs of a cache file; `None` for anything malformed.
pub fn decode(bytes: &[u8]) -> Option<(i64, Vec<(Digest, Blake3)>)> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if body.len() < HEADER || &body[..8] != MAGIC || stowage_format::sha256(body).as_bytes() != sum
    {
        return None;
    }
    let time = i64::from_le_bytes(body[8..16].try_into().ok()?);
    let count = u64::from_le_bytes(body[16..24].try_into().ok()?);
    let pairs = &body[HEADER..];
    if pairs.len() as u64 != count.checked_mul(PAIR as u64)? {
        return None;
    }
    let pairs = pairs
        .chunks_exact(PAIR)
        .map(|p| {
            let digest = Digest::from_slice(&p[..32]).expect("32 bytes");
            let b3: Blake3 = p[32..].try_into().expect("32 bytes");
            (digest, b3)
        })
        .collect();
    Some((time, pairs))
}

fn file(dir: &Path, time: i64) -> PathBuf {
    dir.join(format!("{time}.b3"))
}

/// The pairs recorded for the snapshot taken at `time`, or nothing. A file that someone else
/// could have written (another owner, or writable by group or others) is not used: its pairs
/// would name the chunks of the next backup.
pub fn load(dir: &Path, time: i64) -> Vec<(Digest, Blake3)> {
    use std::os::unix::fs::MetadataExt;
    let path = file(dir, time);
    let trusted = std::fs::symlink_metadata(&path).is_ok_and(|m| {
        m.is_file() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0
    });
    if !trusted {
        return Vec::new();
    }
    std::fs::read(path)
        .ok()
        .and_then(|bytes| decode(&bytes))
        .filter(|(t, _)| *t == time)
        .map(|(_, pairs)| pairs)
        .unwrap_or_default()
}

/// Writes the file of the snapshot taken at `time` (temporary file, then rename), removes the
/// files of snapshots that are gone (`exists` says which remain), and keeps the newest [`KEEP`].
pub fn save(
    dir: &Path,
    time: i64,
    pairs: &[(Digest, Blake3)],
    exists: impl Fn(i64) -> bool,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = &file(dir, time);
    let tmp = path.with_extension(format!("b3.tmp-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&encode(time, pairs)));
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let mut times: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".b3")?.parse().ok())
        .collect();
    times.sort_unstable_by(|a, b| b.cmp(a));
    let (live, gone): (Vec<i64>, Vec<i64>) =
        times.into_iter().partition(|t| *t == time || exists(*t));
    for old in gone.iter().chain(live.iter().skip(KEEP)) {
        let _ = std::fs::remove_file(file(dir, *old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_damage_is_refused() {
        let pairs = vec![(Digest([1; 32]), [2; 32]), (Digest([3; 32]), [4; 32])];
        let bytes = encode(1_795_000_000, &pairs);
        assert_eq!(bytes.len(), HEADER + 2 * PAIR + 32);
        assert_eq!(decode(&bytes), Some((1_795_000_000, pairs.clone())));
        for at in [0, 9, 17, HEADER + 5, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad), None, "byte {at} flipped");
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(&encode(5, &[])), Some((5, Vec::new())));
    }

    #[test]
    fn each_snapshot_has_its_file_and_the_newest_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let pairs = vec![(Digest([9; 32]), [8; 32])];
        for time in [100, 101, 102, 103] {
            save(&dir, time, &pairs, |_| true).unwrap();
        }
        assert_eq!(load(&dir, 103), pairs);
        assert_eq!(load(&dir, 101), pairs);
        assert!(
            load(&dir, 100).is_empty(),
            "only the newest {KEEP} are kept"
        );
        assert!(load(&dir, 104).is_empty());
        // Files of forgotten snapshots go first, so an older live one stays.
        save(&dir, 105, &pairs, |t| t == 101).unwrap();
        assert_eq!(load(&dir, 101), pairs);
        assert!(load(&dir, 102).is_empty() && load(&dir, 103).is_empty());
        save(&dir, 103, &pairs, |_| true).unwrap();
        // A file others may write is not used.
        use std::os::unix::fs::PermissionsExt;
        let shared = std::fs::Permissions::from_mode(0o666);
        std::fs::set_permissions(dir.join("103.b3"), shared).unwrap();
        assert!(load(&dir, 103).is_empty());
        std::fs::set_permissions(dir.join("103.b3"), PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(load(&dir, 103), pairs);
        // A file renamed to another snapshot's name is not taken for it.
        std::fs::rename(dir.join("103.b3"), dir.join("104.b3")).unwrap();
        assert!(load(&dir, 104).is_empty());
    }
}
