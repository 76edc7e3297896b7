#![no_main]
//! Catalog reading and glob matching: never a panic; a walk ends at its first error.
use libfuzzer_sys::fuzz_target;
use stowage_format::catalog::{CatalogReader, Glob};

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the following bytes are a glob pattern.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (pattern, catalog) = rest.split_at(usize::from(n).min(rest.len()));
    let glob = Glob::new(pattern).ok();
    if let Ok(reader) = CatalogReader::new(catalog) {
        let mut failed = false;
        for item in reader.walk() {
            assert!(!failed, "a walk ends after an error");
            match item {
                Ok((path, entry)) => {
                    assert!(path.ends_with(entry.name));
                    if let Some(glob) = &glob {
                        glob.is_match(&path);
                    }
                }
                Err(_) => failed = true,
            }
        }
        let _ = reader.lookup(pattern);
        let _ = reader.find(pattern).map(Iterator::count);
    }
});
