use std::io;

use stowage_types::Digest;

use crate::{ChunkCodec, StoreError, PLAIN};

/// Where a backup puts its chunks.
pub trait ChunkSink: Sync {
    /// True when the store already holds the chunk; it is then marked as in use (for GC).
    fn touch_chunk(&self, digest: &Digest) -> Result<bool, StoreError>;

    /// Stores an encoded chunk (a DataBlob) under the digest of its plain data. Inserting a
    /// digest that already exists is harmless.
    fn insert_chunk(&self, digest: &Digest, encoded: &[u8]) -> Result<(), StoreError>;
}

/// Where a restore or verify reads chunks from.
pub trait ChunkSource: Sync {
    /// Reads the encoded chunk into `out` (cleared first).
    fn read_chunk(&self, digest: &Digest, out: &mut Vec<u8>) -> Result<(), StoreError>;

    /// How the chunks read from here are named and decoded: PBS's plain chunks unless the
    /// source says otherwise (a source of encrypted chunks carries the key's codec).
    fn codec(&self) -> &dyn ChunkCodec {
        &PLAIN
    }
}

/// A target any thread may write at any offset, in any order: a regular file, a block device.
pub trait PositionalWrite: Send + Sync {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl PositionalWrite for std::fs::File {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }
}

/// Where a restored image goes: a sparse file, a block device, a pipe.
pub trait ImageTarget {
    /// A handle through which the restore's workers write data chunks themselves, each as soon
    /// as it is verified, in any order; the target then sees only `write_zeroes` and `finish`
    /// (in order). `None` (the default): every chunk goes through `write_at`, in order.
    fn positional(&self) -> Option<std::sync::Arc<dyn PositionalWrite>> {
        None
    }

    /// Writes `data` at `offset`. Calls arrive in ascending offset order.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// As [`write_at`](ImageTarget::write_at), taking the buffer; returns a buffer for the
    /// pipeline to decode into next (the same one, unless the target kept it).
    fn write_owned(&mut self, offset: u64, data: Vec<u8>) -> io::Result<Vec<u8>> {
        self.write_at(offset, &data)?;
        Ok(data)
    }

    /// The range is all zeros: leave a hole where the target can, write zeros where it cannot.
    fn write_zeroes(&mut self, offset: u64, len: u64) -> io::Result<()>;

    /// All data is written; the image is `size` bytes long. Make it durable.
    fn finish(&mut self, size: u64) -> io::Result<()>;
}

/// A small stream restored into memory (a catalog): writes arrive in order.
impl ImageTarget for Vec<u8> {
    fn write_at(&mut self, _offset: u64, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }

    fn write_zeroes(&mut self, _offset: u64, len: u64) -> io::Result<()> {
        self.resize(self.len() + len as usize, 0);
        Ok(())
    }

    fn finish(&mut self, _size: u64) -> io::Result<()> {
        Ok(())
    }
}
