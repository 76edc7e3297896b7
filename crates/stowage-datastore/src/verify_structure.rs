//! Verify's second look at a snapshot whose chunks are all good: its file-tree archives and
//! catalog are decoded from start to end, as restore, export and catalog read them. Intact
//! chunks can still hold a crafted or broken archive (names with `/` or `..`, hardlinks out of
//! the tree, sizes of 2^60, overlapping payloads, a catalog that loops); such a snapshot fails
//! verification instead of failing only when someone needs it.
//!
//! A `.pxar` stream is decoded whole, a split archive's `.mpxar` stream with every payload
//! reference checked to lie inside its `.ppxar` stream and to overlap no other (the payloads
//! themselves, and the 16-byte header before each, are not read again: their chunks were just
//! verified, and restore checks each header as it copies the file), a catalog walked entry by
//! entry.

use std::collections::HashSet;

use stowage_archive::{Decoder, EntryKind, Event, HardlinkCheck, Payload};
use stowage_core::{PipelineError, RestoreCounters};
use stowage_format::catalog::MAX_CATALOG_SIZE;
use stowage_format::{CatalogReader, DynamicIndex, Manifest};
use stowage_types::{ArchiveName, Digest, SnapshotRef};

use crate::Datastore;

/// A problem found, as verify reports it.
struct Problem(String);

impl From<PipelineError> for Problem {
    fn from(e: PipelineError) -> Self {
        Problem(e.to_string())
    }
}

impl From<String> for Problem {
    fn from(e: String) -> Self {
        Problem(e)
    }
}

impl Datastore {
    /// The problems of the file-tree archives and catalog of `snapshot` (empty: none). An
    /// archive found sound before (`sound`: by its index's checksum, and that of the payload
    /// index for a split archive, whose check depends on it) is not decoded again; those found
    /// sound now are added.
    pub(crate) fn check_structure(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        threads: usize,
        sound: &mut HashSet<(Digest, Option<Digest>)>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for file in &manifest.files {
            let name = &file.filename;
            let payload_csum = name
                .strip_suffix(".mpxar.didx")
                .and_then(|stem| manifest.file(&format!("{stem}.ppxar.didx")))
                .map(|p| p.csum);
            let key = (file.csum, payload_csum);
            if sound.contains(&key) {
                continue;
            }
            // Named as users name the archive (`root.pxar`, split or not).
            let shown = match name.strip_suffix(".mpxar.didx") {
                Some(stem) => format!("{stem}.pxar ({name})"),
                None => name.trim_end_matches(".didx").to_string(),
            };
            let result = if let Some(stem) = name.strip_suffix(".pxar.didx") {
                self.read_tree_index(snapshot, manifest, &format!("{stem}.pxar"))
                    .and_then(|index| self.decode_archive(&index, None, threads))
            } else if let Some(stem) = name.strip_suffix(".mpxar.didx") {
                self.read_tree_index(snapshot, manifest, &format!("{stem}.mpxar"))
                    .and_then(|meta| {
                        let payload =
                            self.read_tree_index(snapshot, manifest, &format!("{stem}.ppxar"))?;
                        self.decode_archive(&meta, Some(payload.size()), threads)
                    })
            } else if name == "catalog.pcat1.didx" {
                self.read_tree_index(snapshot, manifest, "catalog.pcat1")
                    .and_then(|index| self.walk_catalog(&index, threads))
            } else {
                continue;
            };
            match result {
                Ok(()) => {
                    sound.insert(key);
                }
                Err(e) => errors.push(format!("{shown}: {e}")),
            }
        }
        errors
    }

    fn read_tree_index(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        name: &str,
    ) -> Result<DynamicIndex, String> {
        let name = ArchiveName::parse(name).map_err(|e| e.to_string())?;
        self.read_dynamic_index(snapshot, manifest, &name)
            .map_err(|e| e.to_string())
    }

    /// Decodes the stream of `index` to its end; a split archive's metadata stream when
    /// `payload_size` (of its payload stream) is given.
    fn decode_archive(
        &self,
        index: &DynamicIndex,
        payload_size: Option<u64>,
        threads: usize,
    ) -> Result<(), String> {
        let counters = RestoreCounters::default();
        let checked = stowage_core::with_stream(
            self.chunk_store(),
            index,
            "archive",
            threads,
            &counters,
            |stream| {
                let mut decoder = Decoder::new(stream);
                let mut links = HardlinkCheck::new();
                let mut buf = vec![0u8; 64 * 1024];
                while let Some(event) = decoder.next_event().map_err(|e| e.to_string())? {
                    let Event::Entry(entry) = event else { continue };
                    links.check(&entry).map_err(|e| e.to_string())?;
                    let EntryKind::File { payload, .. } = entry.kind else {
                        continue;
                    };
                    let path = || String::from_utf8_lossy(&entry.path.join(&b'/')).into_owned();
                    match (payload, payload_size) {
                        (Payload::Inline, _) => loop {
                            match decoder.read_payload(&mut buf) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e) => return Err(Problem(format!("{}: {e}", path()))),
                            }
                        },
                        (Payload::Ref(r), Some(size)) => {
                            let end = r.offset.checked_add(16).and_then(|e| e.checked_add(r.size));
                            if end.is_none_or(|end| end > size) {
                                return Err(Problem(format!(
                                "{}: its contents ({} bytes at offset {}) lie beyond the payload stream ({size} bytes)",
                                path(),
                                r.size,
                                r.offset
                            )));
                            }
                        }
                        (Payload::Ref(_), None) => {
                            return Err(Problem(format!(
                                "{}: refers to a payload stream the archive does not have",
                                path()
                            )))
                        }
                    }
                }
                Ok(())
            },
        );
        checked.map_err(|Problem(e)| e)
    }

    fn walk_catalog(&self, index: &DynamicIndex, threads: usize) -> Result<(), String> {
        if index.size() > MAX_CATALOG_SIZE {
            return Err(format!(
                "declares a catalog of {} bytes, more than the {MAX_CATALOG_SIZE} a catalog may have",
                index.size()
            ));
        }
        let bytes = stowage_core::read_stream(self.chunk_store(), index, "catalog", threads)
            .map_err(|e| e.to_string())?;
        let reader = CatalogReader::new(&bytes).map_err(|e| e.to_string())?;
        for item in reader.walk() {
            item.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
