//! The catalog of a snapshot: every entry of its file-tree archives, without their data.

use stowage_core::read_stream;
use stowage_core::session::SnapshotReader;
use stowage_format::catalog::MAX_CATALOG_SIZE;
use stowage_types::{ArchiveName, ErrorClass};

use crate::OpsError;

/// The name of the catalog in a snapshot.
pub const CATALOG_NAME: &str = "catalog.pcat1";

/// The catalog's bytes, read whole into memory (refused when its index declares more than a
/// catalog of tens of millions of entries takes: a few entries of one repeated chunk can
/// declare any size). Parse them with `stowage_format::CatalogReader`.
pub fn load_catalog(reader: &dyn SnapshotReader, threads: usize) -> Result<Vec<u8>, OpsError> {
    let snapshot = reader.snapshot();
    let name = ArchiveName::parse(CATALOG_NAME)?;
    if reader.manifest().file(&name.stored_name()).is_none() {
        return Err(OpsError::failed(
            ErrorClass::NotFound,
            format!("snapshot {snapshot} has no catalog (it holds no file-tree archive)"),
        ));
    }
    let index = reader.dynamic_index(&name)?;
    if index.size() > MAX_CATALOG_SIZE {
        return Err(OpsError::failed(
            ErrorClass::Verification,
            format!(
                "{} of {snapshot} declares a catalog of {} bytes, more than the {} a catalog \
                 may have here",
                name.stored_name(),
                index.size(),
                MAX_CATALOG_SIZE
            ),
        ));
    }
    Ok(read_stream(reader.chunks(), &index, "catalog", threads)?)
}
