//! Standard archives: `export` and `archive` write files the standard tools read back into the
//! original bytes, with `OUT.sha256` and `OUT.manifest.json`; `verify-archive` finds damage;
//! the space check refuses early and a full disk leaves no partial file.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Zeros, text-like data and random data, a bit over three chunks.
fn mixed_image() -> Vec<u8> {
    let mut data = vec![0u8; CHUNK];
    let text: Vec<u8> = (0..CHUNK / 8)
        .flat_map(|i| format!("line {i:06}\n").into_bytes())
        .take(CHUNK)
        .collect();
    data.extend(&text);
    data.extend(random_bytes(77, CHUNK + 12345));
    data
}

/// Decompresses `path` with the standard tool for its format.
fn decompress_with_tool(tool: &str, path: &Path) -> Vec<u8> {
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} -dc {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256sum_check(out: &Path) {
    let dir = out.parent().unwrap();
    let sums = format!("{}.sha256", out.file_name().unwrap().to_string_lossy());
    let run = Command::new("sha256sum")
        .args(["-c", &sums])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&run.stdout)
    );
}

#[test]
fn exported_images_are_read_by_standard_tools() {
    let store = Store::new();
    let data = mixed_image();
    store.backup_image(&data, "100", T1);
    let snapshot = snap("100", T1);
    for (ext, tools) in [
        ("gz", &["gzip", "pigz"][..]),
        ("zst", &["zstd"][..]),
        ("xz", &["xz"][..]),
        ("lz4", &["lz4"][..]),
    ] {
        let out = store.file(&format!("disk.img.{ext}"));
        let run = store.run([
            "--output-format".as_ref(),
            "json".as_ref(),
            "export".as_ref(),
            snapshot.as_ref(),
            "drive-scsi0.img".as_ref(),
            out.as_os_str(),
        ]);
        run.ok();
        let report = run.json();
        assert_eq!(report["manifest"]["size"], data.len() as u64, "{ext}");
        for tool in tools {
            assert!(decompress_with_tool(tool, &out) == data, "{tool} on .{ext}");
        }
        sha256sum_check(&out);
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(format!("{}.manifest.json", out.display())).unwrap())
                .unwrap();
        for key in [
            "source",
            "size",
            "compressed_size",
            "ratio",
            "format",
            "level",
            "threads",
            "host",
            "started",
            "duration_s",
            "throughput_mbs",
            "sha256",
        ] {
            assert!(!manifest[key].is_null(), "manifest of .{ext} lacks {key}");
        }
        assert_eq!(manifest["format"], ext);
        assert_eq!(
            manifest["compressed_size"],
            fs::metadata(&out).unwrap().len()
        );
        let check = store.run(["verify-archive".as_ref(), out.as_os_str()]);
        check.ok();
    }
    // At level 1 the stored chunk frames are the output (zero, text and raw-stored chunks).
    let spliced = store.file("spliced.img.zst");
    let run = store.run([
        "--output-format".as_ref(),
        "json".as_ref(),
        "export".as_ref(),
        snapshot.as_ref(),
        "drive-scsi0.img".as_ref(),
        spliced.as_os_str(),
        "--level".as_ref(),
        "1".as_ref(),
    ]);
    run.ok();
    assert_eq!(run.json()["manifest"]["size"], data.len() as u64);
    assert!(
        decompress_with_tool("zstd", &spliced) == data,
        "spliced .zst"
    );
    sha256sum_check(&spliced);
    store
        .run(["verify-archive".as_ref(), spliced.as_os_str()])
        .ok();
    // A bad chunk stops the export, and no file is left.
    let text_chunk = image_digests(&data)[1].clone();
    let chunk = store.chunk_path(&text_chunk);
    let good = fs::read(&chunk).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    fs::write(&chunk, &bad).unwrap();
    let broken = store.file("broken.img.zst");
    for level in ["1", "3"] {
        let run = store.run([
            "export".as_ref(),
            snapshot.as_ref(),
            "drive-scsi0.img".as_ref(),
            broken.as_os_str(),
            "--level".as_ref(),
            level.as_ref(),
        ]);
        run.expect_code(8);
        assert!(!broken.exists(), "no partial export at level {level}");
    }
    fs::write(&chunk, &good).unwrap();
    // No compression, and standard output.
    let raw = store.file("disk.img");
    store
        .run([
            "export".as_ref(),
            snapshot.as_ref(),
            "drive-scsi0.img".as_ref(),
            raw.as_os_str(),
        ])
        .ok();
    assert!(fs::read(&raw).unwrap() == data);
    let piped = store.run([
        "export",
        &snapshot,
        "drive-scsi0.img",
        "-",
        "--format",
        "zst",
    ]);
    piped.ok();
    let mut zstd = Command::new("zstd")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = zstd.stdin.take().unwrap();
    let bytes = piped.stdout.clone();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&bytes).unwrap();
    });
    let out = zstd.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.stdout == data, "zstd -dc of the piped export");
}

#[test]
fn archive_of_an_image_file_and_verify_archive_finds_damage() {
    let store = Store::new();
    let data = mixed_image();
    let src = store.write_file("boot.raw", &data);
    let out = store.file("boot.img.gz");
    store
        .run([
            "archive".as_ref(),
            src.as_os_str(),
            out.as_os_str(),
            "--level".as_ref(),
            "1".as_ref(),
        ])
        .ok();
    assert!(decompress_with_tool("pigz", &out) == data);
    sha256sum_check(&out);
    store.run(["verify-archive".as_ref(), out.as_os_str()]).ok();
    // An existing output is not replaced without --overwrite.
    let again = store.run(["archive".as_ref(), src.as_os_str(), out.as_os_str()]);
    again.expect_code(5);
    assert!(again.single_error_line().contains("--overwrite"));

    // A flipped bit inside the stream.
    let good = fs::read(&out).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    fs::write(&out, &bad).unwrap();
    let run = store.run(["verify-archive".as_ref(), out.as_os_str()]);
    run.expect_code(8);
    let line = run.single_error_line();
    assert!(line.contains("boot.img.gz"), "{line}");
    // Truncated.
    fs::write(&out, &good[..good.len() - 100]).unwrap();
    let run = store.run(["verify-archive".as_ref(), out.as_os_str()]);
    run.expect_code(8);
    assert!(run.single_error_line().contains("byte"), "{}", run.stderr);
    // Intact stream, wrong checksum file.
    fs::write(&out, &good).unwrap();
    fs::write(
        format!("{}.sha256", out.display()),
        format!("{}  boot.img.gz\n", "0".repeat(64)),
    )
    .unwrap();
    let run = store.run(["verify-archive".as_ref(), out.as_os_str()]);
    run.expect_code(8);
    assert!(
        run.single_error_line().contains("SHA-256"),
        "{}",
        run.stderr
    );
}

/// Needs root to mount a small tmpfs; skipped otherwise.
#[test]
fn too_little_space_is_refused_and_a_full_disk_leaves_nothing() {
    let dir = tempdir();
    let Some(small) = common::SmallTmpfs::mount(dir.path(), "small", "4m") else {
        return;
    };
    let mnt = &small.path;
    // 8 MiB of random data: about 8 MiB compressed, the tmpfs holds 4.
    let src = dir.path().join("random.raw");
    fs::write(&src, random_bytes(5, 8 << 20)).unwrap();
    let out = mnt.join("random.img.zst");
    let run = run_cmd(
        stowage(),
        ["archive".as_ref(), src.as_os_str(), out.as_os_str()],
        None,
    );
    run.expect_code(12);
    let line = run.single_error_line();
    assert!(line.contains("--force") && line.contains("free"), "{line}");
    assert!(
        dir_names(mnt).is_empty(),
        "nothing written: {:?}",
        dir_names(mnt)
    );

    // Forced, it runs out of space half way: exit 12 and no partial file.
    let run = run_cmd(
        stowage(),
        [
            "archive".as_ref(),
            src.as_os_str(),
            out.as_os_str(),
            "--force".as_ref(),
        ],
        None,
    );
    run.expect_code(12);
    assert!(
        run.single_error_line().contains("random.img.zst"),
        "{}",
        run.stderr
    );
    assert!(
        dir_names(mnt).is_empty(),
        "left behind: {:?}",
        dir_names(mnt)
    );

    // Compressible data fits: the estimate comes from samples.
    let text: Vec<u8> = (0..(8 << 20) / 8)
        .flat_map(|i| format!("row {:04}\n", i % 1000).into_bytes())
        .collect();
    fs::write(&src, &text).unwrap();
    run_cmd(
        stowage(),
        ["archive".as_ref(), src.as_os_str(), out.as_os_str()],
        None,
    )
    .ok();
    assert!(decompress_with_tool("zstd", &out) == text);
}

/// A block device (a loop device over an image file) archived to `.img.gz`. Needs root and a
/// free loop device; skipped otherwise.
#[test]
fn archive_of_a_block_device() {
    let store = Store::new();
    let data = mixed_image();
    let backing = store.write_file("disk.raw", &data);
    let attach = Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(&backing)
        .output();
    let device = match attach {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("skipped: cannot attach a loop device here (not root?)");
            return;
        }
    };
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _guard = Detach(device.clone());
    let out = store.file("device.img.gz");
    let run = store.run([
        "--output-format".as_ref(),
        "json".as_ref(),
        "archive".as_ref(),
        device.as_ref(),
        out.as_os_str(),
    ]);
    run.ok();
    // A loop device ends at the last whole 512-byte sector of its file.
    let device_data = &data[..data.len() / 512 * 512];
    assert_eq!(run.json()["manifest"]["size"], device_data.len() as u64);
    assert!(decompress_with_tool("gzip", &out) == device_data);
    sha256sum_check(&out);
}
