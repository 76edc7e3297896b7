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
use std::io::Read;

use stowage_archive::{Decoder, EntryKind, Event, HardlinkCheck, Payload};
use stowage_core::{pipe, restore_image, RestoreCounters};
use stowage_format::catalog::MAX_CATALOG_SIZE;
use stowage_format::{CatalogReader, DynamicIndex, Manifest};
use stowage_types::{ArchiveName, Digest, SnapshotRef};

use crate::Datastore;

/// Pieces of 1 MiB the fetch may run ahead of the decoder.
const PIPE_PIECES: usize = 8;

impl Datastore {
    /// The problems of the file-tree archives and catalog of `snapshot` (empty: none). An
    /// archive whose checksum is in `sound` was found sound before and is not decoded again;
    /// those found sound now are added.
    pub(crate) fn check_structure(
        &self,
        snapshot: &SnapshotRef,
        manifest: &Manifest,
        threads: usize,
        sound: &mut HashSet<Digest>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for file in &manifest.files {
            let name = &file.filename;
            if sound.contains(&file.csum) {
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
                    sound.insert(file.csum);
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
        self.with_stream(index, threads, |stream| {
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
                            Err(e) => return Err(format!("{}: {e}", path())),
                        }
                    },
                    (Payload::Ref(r), Some(size)) => {
                        let end = r.offset.checked_add(16).and_then(|e| e.checked_add(r.size));
                        if end.is_none_or(|end| end > size) {
                            return Err(format!(
                                "{}: its contents ({} bytes at offset {}) lie beyond the payload stream ({size} bytes)",
                                path(),
                                r.size,
                                r.offset
                            ));
                        }
                    }
                    (Payload::Ref(_), None) => {
                        return Err(format!(
                            "{}: refers to a payload stream the archive does not have",
                            path()
                        ))
                    }
                }
            }
            Ok(())
        })
    }

    fn walk_catalog(&self, index: &DynamicIndex, threads: usize) -> Result<(), String> {
        if index.size() > MAX_CATALOG_SIZE {
            return Err(format!(
                "declares a catalog of {} bytes, more than the {MAX_CATALOG_SIZE} a catalog may have",
                index.size()
            ));
        }
        let mut bytes = Vec::with_capacity(index.size() as usize);
        restore_image(
            index,
            self.chunk_store(),
            &mut bytes,
            "catalog",
            threads,
            (threads * 4).max(8),
            &RestoreCounters::default(),
        )
        .map_err(|e| e.to_string())?;
        let reader = CatalogReader::new(&bytes).map_err(|e| e.to_string())?;
        for item in reader.walk() {
            item.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Runs `consume` on the stream of `index`, fetched and checked on helper threads.
    fn with_stream(
        &self,
        index: &DynamicIndex,
        threads: usize,
        consume: impl FnOnce(&mut dyn Read) -> Result<(), String>,
    ) -> Result<(), String> {
        let (mut writer, mut reader) = pipe(PIPE_PIECES);
        std::thread::scope(|s| {
            let fetcher = s.spawn(move || {
                let window = (threads * 4).max(8);
                let counters = RestoreCounters::default();
                let result = restore_image(
                    index,
                    self.chunk_store(),
                    &mut writer,
                    "archive",
                    threads,
                    window,
                    &counters,
                );
                if let Err(e) = &result {
                    writer.fail(std::io::Error::other(e.to_string()));
                }
                result
            });
            let consumed = consume(&mut reader);
            drop(reader);
            match fetcher.join() {
                Ok(Err(e)) if !e.is_closed_target() => Err(e.to_string()),
                Ok(_) => consumed,
                Err(_) => Err("the chunk fetcher panicked".into()),
            }
        })
    }
}
