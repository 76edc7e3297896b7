//! Progress on stderr when it is not a terminal: plain lines at the interval
//! STOWAGE_PROGRESS_INTERVAL_MS sets, for every long command (backup, restore, export, archive,
//! verify, gc, sync); they advance and the last one ends at the total. None with `-q`.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;

const INTERVAL_MS: &str = "50";

/// Runs `cmd` (stdout and stderr piped) feeding `data` on stdin in 512 KiB pieces, pausing
/// between them, so the run lasts well over the progress interval.
fn run_slow_stdin(mut cmd: Command, args: Vec<String>, data: Vec<u8>) -> Run {
    cmd.args(&args)
        .env("STOWAGE_PROGRESS_INTERVAL_MS", INTERVAL_MS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn stowage");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = thread::spawn(move || {
        for piece in data.chunks(512 * 1024) {
            if stdin.write_all(piece).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(25));
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Run::from_output(args, out)
}

/// Runs a restore to stdout with a reader that takes its time; returns the run (with the
/// image in `stdout`).
fn run_slow_reader(mut cmd: Command, args: Vec<String>) -> Run {
    cmd.args(&args)
        .env("STOWAGE_PROGRESS_INTERVAL_MS", INTERVAL_MS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn stowage");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).unwrap();
        text
    });
    let mut image = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        image.extend_from_slice(&buf[..n]);
        thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: image,
        stderr: String::from_utf8_lossy(&errors.join().unwrap()).into_owned(),
        args,
    }
}

/// One plain progress line: `LABEL[ (STAGE)]: PCT% (DONE of TOTAL) in Ns, ...` or
/// `LABEL: DONE in Ns, ...`.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    stage: Option<String>,
    pct: Option<f64>,
    /// In bytes, or a count of things.
    done: f64,
    total: Option<f64>,
}

/// A human amount (`512 B`, `1.5 MiB`) or a count (`3`, `3 snapshots`) as a number.
fn amount(text: &str) -> f64 {
    let mut parts = text.split_whitespace();
    let n: f64 = parts
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("amount {text:?}"));
    let scale = match parts.next() {
        Some("KiB") => 1024.0,
        Some("MiB") => 1024.0 * 1024.0,
        Some("GiB") => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    n * scale
}

/// The progress lines of `label` on stderr, parsed.
fn progress_lines(stderr: &str, label: &str) -> Vec<Line> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(label)?;
            let (stage, rest) = match rest.strip_prefix(" (") {
                Some(r) => {
                    let (stage, r) = r.split_once("): ")?;
                    (Some(stage.to_string()), r)
                }
                None => (None, rest.strip_prefix(": ")?),
            };
            let (counted, _) = rest.split_once(" in ")?;
            let counted = counted.trim_start();
            Some(match counted.split_once("% (") {
                Some((pct, of)) => {
                    let (done, total) = of.trim_end_matches(')').split_once(" of ")?;
                    Line {
                        stage,
                        pct: Some(pct.parse().ok()?),
                        done: amount(done),
                        total: Some(amount(total)),
                    }
                }
                None => Line {
                    stage,
                    pct: None,
                    done: amount(counted),
                    total: None,
                },
            })
        })
        .collect()
}

/// Checks that the lines of one stage advance and that the last ends at its total: 100% with
/// `done == total`, and `done` within rounding of `expected` when given.
#[track_caller]
fn check_progress(lines: &[Line], stderr: &str, expected: Option<f64>) {
    assert!(
        lines.len() >= 2,
        "expected several progress lines, stderr:\n{stderr}"
    );
    for pair in lines.windows(2) {
        assert!(
            pair[1].done >= pair[0].done,
            "progress went back: {pair:?}\n{stderr}"
        );
        if let (Some(a), Some(b)) = (pair[0].pct, pair[1].pct) {
            assert!(b >= a, "share went back: {pair:?}");
        }
    }
    let last = lines.last().unwrap();
    if last.total.is_some() {
        assert_eq!(
            last.pct,
            Some(100.0),
            "last line not at 100%: {last:?}\n{stderr}"
        );
        assert_eq!(Some(last.done), last.total, "{last:?}");
    }
    if let Some(expected) = expected {
        let off = (last.done - expected).abs() / expected.max(1.0);
        assert!(
            off < 0.001,
            "ended at {} instead of {expected}: {stderr}",
            last.done
        );
    }
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "control characters"
    );
}

/// Runs the binary with progress lines every few milliseconds.
fn run_with_progress<I, S>(store: &Store, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = store.cmd();
    cmd.env("STOWAGE_PROGRESS_INTERVAL_MS", FAST_MS);
    run_cmd(cmd, args, None)
}

const FAST_MS: &str = "5";

fn image() -> Vec<u8> {
    make_image(
        &[
            Part::Random(1),
            Part::Zero,
            Part::Pattern(2),
            Part::Random(3),
        ],
        5000,
    )
}

#[test]
fn backup_prints_plain_progress_lines() {
    let store = Store::new();
    let data = image();
    let run = run_slow_stdin(
        store.cmd(),
        backup_args(&["drive-scsi0.img:-".to_string()], "100", T1),
        data.clone(),
    );
    run.ok();
    // Stdout holds the result only.
    assert_eq!(run.json()["size"], data.len() as u64);
    let lines = progress_lines(&run.stderr, "drive-scsi0.img");
    check_progress(&lines, &run.stderr, Some(data.len() as f64));
    for line in run
        .stderr
        .lines()
        .filter(|l| l.starts_with("drive-scsi0.img: "))
    {
        assert!(line.contains(", written "), "no store rate in {line:?}");
    }
    assert!(run.stderr.contains("Starting backup: vm/100/"));
    assert!(store.restore_bytes(&snap("100", T1), "drive-scsi0.img") == data);
}

#[test]
fn restore_prints_plain_progress_lines() {
    let store = Store::new();
    let data = image();
    store.backup_image(&data, "100", T1);
    let run = run_slow_reader(
        store.cmd(),
        vec![
            "restore".into(),
            "vm/100".into(),
            "drive-scsi0.img".into(),
            "-".into(),
        ],
    );
    run.ok();
    assert!(run.stdout == data, "image on stdout differs");
    let lines = progress_lines(&run.stderr, "restore drive-scsi0.img");
    check_progress(&lines, &run.stderr, Some(data.len() as f64));
}

/// An image big enough that every command on it runs over several progress intervals.
fn big_image() -> Vec<u8> {
    let parts: Vec<Part> = (0..12).map(|i| Part::Random(100 + i)).collect();
    make_image(&parts, 777)
}

#[test]
fn every_long_command_shows_true_progress() {
    let store = Store::new();
    let data = big_image();
    let size = data.len() as f64;
    let path = store.write_file("disk.raw", &data);
    let spec = img_spec("drive-scsi0", &path);
    let run = run_with_progress(&store, backup_args(&[spec], "1", T1));
    run.ok();
    check_progress(
        &progress_lines(&run.stderr, "drive-scsi0.img"),
        &run.stderr,
        Some(size),
    );

    let tree = store.file("tree");
    for i in 0..12 {
        common::tree::put(
            &tree.join(format!("d{}/f{i}", i % 3)),
            &random_bytes(i, 4 << 20),
        );
    }
    for mode in ["legacy", "metadata"] {
        let mut args = common::tree::tree_backup_args(&tree, mode, T1, &[]);
        args.extend(["--change-detection-mode".into(), mode.into()]);
        let run = run_with_progress(&store, args);
        run.ok();
        let stored = run.json()["size"].as_f64().unwrap();
        check_progress(
            &progress_lines(&run.stderr, "root.pxar"),
            &run.stderr,
            Some(stored),
        );
    }

    let target = store.file("restored.raw");
    let run = run_with_progress(
        &store,
        [
            "restore",
            "vm/1",
            "drive-scsi0.img",
            target.to_str().unwrap(),
        ],
    );
    run.ok();
    check_progress(
        &progress_lines(&run.stderr, "restore drive-scsi0.img"),
        &run.stderr,
        Some(size),
    );
    for mode in ["legacy", "metadata"] {
        let out = store.file(&format!("tree-{mode}"));
        let snapshot = format!("host/{mode}");
        let run = run_with_progress(
            &store,
            [
                "restore",
                snapshot.as_str(),
                "root.pxar",
                out.to_str().unwrap(),
            ],
        );
        run.ok();
        check_progress(
            &progress_lines(&run.stderr, "restore root.pxar"),
            &run.stderr,
            None,
        );
    }

    for (snapshot, archive, name, expected) in [
        ("vm/1", "drive-scsi0.img", "disk.img.gz", Some(size)),
        ("vm/1", "drive-scsi0.img", "disk.img.zst", Some(size)),
        ("host/legacy", "root.pxar", "tree.tar.zst", None),
    ] {
        let out = store.file(name);
        let run = run_with_progress(&store, ["export", snapshot, archive, out.to_str().unwrap()]);
        run.ok();
        let label = format!("archive to {}", out.display());
        check_progress(&progress_lines(&run.stderr, &label), &run.stderr, expected);
    }
    for (source, name, expected) in [
        (&path, "raw.img.lz4", Some(size)),
        (&tree, "dir.tar.gz", None),
    ] {
        let out = store.file(name);
        let run = run_with_progress(
            &store,
            ["archive", source.to_str().unwrap(), out.to_str().unwrap()],
        );
        run.ok();
        let label = format!("archive to {}", out.display());
        check_progress(&progress_lines(&run.stderr, &label), &run.stderr, expected);
    }

    let run = run_with_progress(&store, ["verify", "--all"]);
    run.ok();
    check_progress(
        &progress_lines(&run.stderr, "verify"),
        &run.stderr,
        Some(3.0),
    );

    let other = Store::new();
    let from = store.path.to_str().unwrap();
    let run = run_with_progress(&other, ["sync", "--from", from]);
    run.ok();
    check_progress(&progress_lines(&run.stderr, "sync"), &run.stderr, Some(3.0));

    store
        .run(["forget", &common::tree::host_snap("metadata", T1)])
        .ok();
    let run = run_with_progress(&store, ["gc", "--cutoff", "0"]);
    run.ok();
    let lines = progress_lines(&run.stderr, "gc");
    let sweep: Vec<Line> = lines
        .iter()
        .filter(|l| l.stage.as_deref() == Some("sweep"))
        .cloned()
        .collect();
    check_progress(&sweep, &run.stderr, Some(65536.0));
}

#[test]
fn quiet_prints_no_progress() {
    let store = Store::new();
    let data = image();
    let mut args = vec!["-q".to_string()];
    args.extend(backup_args(&["drive-scsi0.img:-".to_string()], "100", T1));
    let run = run_slow_stdin(store.cmd(), args, data.clone());
    run.ok();
    assert_eq!(run.json()["size"], data.len() as u64);
    assert_eq!(run.stderr, "", "-q backup printed on stderr");

    let run = run_slow_reader(
        store.cmd(),
        vec![
            "--quiet".into(),
            "restore".into(),
            "vm/100".into(),
            "drive-scsi0.img".into(),
            "-".into(),
        ],
    );
    run.ok();
    assert!(run.stdout == data);
    assert_eq!(run.stderr, "", "-q restore printed on stderr");
}
