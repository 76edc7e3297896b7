//! Progress on stderr when it is not a terminal: plain lines with read and write rates, at the
//! interval STOWAGE_PROGRESS_INTERVAL_MS sets; none with `-q`.

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

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("read:") || l.contains("write:"))
        .collect()
}

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

    let lines = progress_lines(&run.stderr);
    assert!(
        lines.len() >= 3,
        "expected several progress lines, stderr:\n{}",
        run.stderr
    );
    for line in &lines {
        assert!(
            line.starts_with("drive-scsi0.img: ")
                && line.contains(" in ")
                && line.contains("s, read: ")
                && line.contains(", write: "),
            "unexpected progress line: {line:?}"
        );
        assert!(line.contains("/s"), "no rate in {line:?}");
    }
    // Plain text: no terminal control characters.
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "stderr has terminal control characters: {:?}",
        run.stderr
    );
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
    let lines = progress_lines(&run.stderr);
    assert!(
        lines.len() >= 3,
        "expected several progress lines, stderr:\n{}",
        run.stderr
    );
    for line in &lines {
        assert!(
            line.starts_with("restore drive-scsi0.img: ")
                && line.contains('%')
                && line.contains("s, read: ")
                && line.contains(", write: "),
            "unexpected progress line: {line:?}"
        );
    }
    assert!(!run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'));
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
    assert!(
        progress_lines(&run.stderr).is_empty(),
        "progress with -q:\n{}",
        run.stderr
    );
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
    assert!(
        progress_lines(&run.stderr).is_empty(),
        "progress with --quiet:\n{}",
        run.stderr
    );
}
