#![no_main]
//! Every decompressing reader of `verify-archive` (gzip, zstd, xz, and stowage's own lz4 frame
//! parser) on arbitrary bytes: an error or data, never a panic or a hang.

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use stowage_export::compress::{decompress_reader, Format};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Gzip, Format::Zstd, Format::Xz, Format::Lz4] {
        let Ok(mut reader) = decompress_reader(Box::new(std::io::Cursor::new(data.to_vec())), format)
        else {
            continue;
        };
        // Bounded: a tiny input may claim a huge output; read at most 16 MiB of it.
        let mut sink = Vec::new();
        let _ = (&mut reader).take(16 << 20).read_to_end(&mut sink);
    }
});
