//! The seed corpus the fuzz targets start from (`fuzz/corpus/<target>/`), made from the hostile
//! snapshots of `tests/hostile/` (the well-formed `control` one and the crafted ones): blobs,
//! indexes, manifests, catalogs, pxar streams, compressed streams, tars and exclude files.
//!
//! The checked-in files are the corpus; `STOWAGE_REGENERATE_FUZZ_SEEDS=1` writes them anew.
//! Inputs that once crashed a target are kept beside them as `regression-*`; the decoder tests
//! run them too.
//! Without it this test checks that every target has seeds and that they are what this
//! generator makes (so a format change that makes them stale is noticed).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use stowage_archive::Decoder;
use stowage_export::compress::{compress_writer, CompressOptions, Format};
use stowage_format::{BlobDecoder, DynamicIndex};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hostile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// Every seed: target → file name → bytes.
type Seeds = BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>;

fn decode(blob: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    BlobDecoder::new()
        .ok()?
        .decode_into(blob, &mut out, 16 << 20)
        .ok()?;
    Some(out)
}

/// The stream behind a dynamic index of `case`, from its chunk files.
fn stream(case: &Path, index: &str) -> Option<Vec<u8>> {
    let index = DynamicIndex::decode(&fs::read(case.join(index)).ok()?).ok()?;
    let mut out = Vec::new();
    for (_, digest) in &index.entries {
        let chunk = fs::read(case.join("chunks").join(digest.to_hex())).ok()?;
        out.extend(decode(&chunk)?);
        if out.len() > 64 << 10 {
            return None; // too big for a seed (a case declaring gigabytes)
        }
    }
    Some(out)
}

fn compressed(data: &[u8], format: Format) -> Vec<u8> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let opts = CompressOptions {
        format,
        level: None,
        threads: 1,
    };
    let mut w = compress_writer(Box::new(Shared(out.clone())), &opts).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap();
    let bytes = out.lock().unwrap().clone();
    bytes
}

fn seeds() -> Seeds {
    let mut seeds = Seeds::new();
    let mut add = |target: &'static str, name: String, bytes: Vec<u8>| {
        // Keep seeds small: libFuzzer's default input limit is 4 KiB, larger ones are cut.
        if bytes.len() <= 64 << 10 {
            seeds.entry(target).or_default().insert(name, bytes);
        }
    };
    let mut cases: Vec<PathBuf> = fs::read_dir(hostile())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    for case in &cases {
        let tag = case.file_name().unwrap().to_string_lossy().into_owned();
        for entry in fs::read_dir(case).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let Ok(bytes) = fs::read(&path) else { continue };
            if name.ends_with(".blob") {
                add("blob", format!("{tag}-{name}"), bytes.clone());
                if name == "index.json.blob" {
                    if let Some(json) = decode(&bytes) {
                        add("manifest", format!("{tag}.json"), json);
                    }
                }
            } else if name.ends_with(".fidx") {
                add("fixed_index", format!("{tag}-{name}"), bytes);
            } else if name.ends_with(".didx") {
                add("dynamic_index", format!("{tag}-{name}"), bytes);
            }
        }
        if let Ok(chunks) = fs::read_dir(case.join("chunks")) {
            let mut chunks: Vec<PathBuf> = chunks.map(|e| e.unwrap().path()).collect();
            chunks.sort();
            if let Some(first) = chunks.first() {
                add("blob", format!("{tag}-chunk"), fs::read(first).unwrap());
            }
        }
        for (index, unit) in [("root.pxar.didx", "pxar"), ("split.mpxar.didx", "mpxar")] {
            if let Some(s) = stream(case, index) {
                let mut entry = vec![u8::from(unit == "mpxar")];
                entry.extend_from_slice(&s);
                add("pxar_entry", format!("{tag}-{unit}"), entry);
                add("pxar_decode", format!("{tag}-{unit}"), s);
            }
        }
        if let Some(catalog) = stream(case, "catalog.pcat1.didx") {
            for pattern in [&b"hosts"[..], b"**/*.conf", b"/root.pxar.didx/d/"] {
                let mut seed = vec![pattern.len() as u8];
                seed.extend_from_slice(pattern);
                seed.extend_from_slice(&catalog);
                let tag2 = String::from_utf8_lossy(pattern).replace(['/', '*'], "_");
                add("catalog", format!("{tag}-{tag2}"), seed);
            }
        }
    }
    // Compressed streams and tars of the well-formed archive.
    let control = stream(&hostile().join("control"), "root.pxar.didx").unwrap();
    let mut tar = Vec::new();
    stowage_export::tar::pxar_to_tar(Decoder::new(&control[..]), None, &mut tar).unwrap();
    for (format, ext) in [
        (Format::Gzip, "gz"),
        (Format::Zstd, "zst"),
        (Format::Xz, "xz"),
        (Format::Lz4, "lz4"),
    ] {
        add(
            "decompress",
            format!("control.pxar.{ext}"),
            compressed(&control, format),
        );
    }
    add("tar_walk", "control.tar".into(), tar.clone());
    add(
        "tar_walk",
        "control.tar.gz".into(),
        compressed(&tar, Format::Gzip),
    );
    // Exclude files: text, a 0 byte, paths.
    for (name, text) in [
        ("simple", &b"*.o\n/build\n!keep.o\n# comment\n\nvar/cache/\0/dir/a.o\n/dir/keep.o\n/dir/build\n/dir/x/var/cache"[..]),
        ("globs", b"**/node_modules/\n[a-c]?.tmp\n\\*literal\n/a/**/b\0/dir/a/x/y/b\n/dir/b.tmp\n/dir/*literal"),
        ("odd", b"!\n///\n[\n\\\n**\0/\n/dir\n"),
    ] {
        add("pattern", name.to_string(), text.to_vec());
    }
    seeds
}

#[test]
fn fuzz_seed_corpus_is_current() {
    let corpus = repo().join("fuzz/corpus");
    let seeds = seeds();
    // Inputs fuzzing found (`regression-*`) stay beside the generated seeds.
    if std::env::var_os("STOWAGE_REGENERATE_FUZZ_SEEDS").is_some() {
        for (target, files) in &seeds {
            let dir = corpus.join(target);
            fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in files {
                fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
    let targets = fs::read_to_string(repo().join("fuzz/Cargo.toml")).unwrap();
    for line in targets.lines().filter_map(|l| l.strip_prefix("name = \"")) {
        let target = line.trim_end_matches('"');
        if target == "stowage-fuzz" {
            continue;
        }
        let files = seeds
            .get(target)
            .unwrap_or_else(|| panic!("no seeds for {target}"));
        for (name, bytes) in files {
            let path = corpus.join(target).join(name);
            let stored = fs::read(&path).unwrap_or_else(|_| {
                panic!(
                    "{} is missing: run with STOWAGE_REGENERATE_FUZZ_SEEDS=1",
                    path.display()
                )
            });
            assert!(
                &stored == bytes,
                "{} is stale: regenerate the seeds",
                path.display()
            );
        }
    }
}
