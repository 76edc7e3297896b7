#![no_main]
//! The tar walk of `verify-archive` on arbitrary bytes (as an uncompressed `.tar`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("stowage-fuzz-tar-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.tar");
    if std::fs::write(&path, data).is_ok() {
        let _ = stowage_export::verify::verify_archive(&path);
    }
});
