//! Shared helpers for the `stowage` integration tests: running the binary against a datastore,
//! creating datastores in a temporary directory (under /dev/shm when there is one), and
//! generating deterministic image files.

#![allow(dead_code)]

pub mod fault;
pub mod suite;
pub mod tree;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::Digest as _;

/// Chunk size of every image backup.
pub const CHUNK: usize = 4 * 1024 * 1024;
/// SHA-256 of 4 MiB of zeros: the name of the all-zero chunk.
pub const ZERO_DIGEST: &str = "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8";

/// A few fixed backup times (Unix seconds) and the snapshot time names they give.
pub const T1: i64 = 1_700_000_000;
pub const T1_NAME: &str = "2023-11-14T22:13:20Z";
pub const T2: i64 = 1_700_000_100;
pub const T3: i64 = 1_700_000_200;
pub const T4: i64 = 1_700_000_300;

/// The snapshot time name of `epoch`, computed without a date library.
pub fn time_name(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `vm/<id>/<time name of epoch>`.
pub fn snap(id: &str, epoch: i64) -> String {
    format!("vm/{id}/{}", time_name(epoch))
}

/// A temporary directory, in /dev/shm when it exists (creating a datastore makes 65536
/// directories, which is slow on a disk).
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("stowage-test-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("stowage-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// The binary, with an environment that cannot reach a real datastore by accident: no
/// repository variables, and a HOME where the default datastore cannot be created.
pub fn stowage() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    cmd.env_remove("STOWAGE_REPOSITORY")
        .env_remove("PBS_REPOSITORY")
        .env_remove("STOWAGE_PROGRESS_INTERVAL_MS")
        .env("HOME", "/nonexistent/stowage-test-home")
        .env("XDG_DATA_HOME", "/nonexistent/stowage-test-home/data")
        .stdin(Stdio::null());
    cmd
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    pub fn from_output(args: Vec<String>, out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args,
        }
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn describe(&self) -> String {
        let stdout = if self.stdout.len() > 4000 {
            format!("<{} bytes>", self.stdout.len())
        } else {
            self.stdout_text()
        };
        format!(
            "stowage {:?}\nexit code: {}\nstdout: {}\nstderr: {}",
            self.args, self.code, stdout, self.stderr
        )
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.expect_code(0)
    }

    /// Stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    /// Asserts that stderr is exactly one line, starting with "error:"; returns that line.
    #[track_caller]
    pub fn single_error_line(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stderr should be one error line\n{}",
            self.describe()
        );
        assert!(
            lines[0].starts_with("error: "),
            "stderr should start with 'error: '\n{}",
            self.describe()
        );
        assert!(
            self.stderr.ends_with('\n') && !self.stderr.ends_with("\n\n"),
            "stderr should be one terminated line\n{}",
            self.describe()
        );
        lines[0].to_string()
    }
}

/// Runs the binary with `args` (no stdin) and waits for it.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_cmd(stowage(), args, None)
}

/// Runs `cmd` with `args` (no stdin), killing it and failing the test if it takes longer than
/// `deadline` (a hang).
#[track_caller]
pub fn run_cmd_timed<I, S>(mut cmd: Command, args: I, deadline: Duration) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args = piped_args(&mut cmd, args);
    let child = cmd.spawn().expect("spawn stowage");
    let out = wait_child(child, deadline, &format!("stowage {args:?}"));
    Run::from_output(args, out)
}

/// Adds `args` to `cmd` with stdout and stderr piped; the arguments as text, for messages.
fn piped_args<I, S>(cmd: &mut Command, args: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    cmd.args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    args
}

/// Runs `cmd` with `args`, feeding `input` on stdin when given.
pub fn run_cmd<I, S>(mut cmd: Command, args: I, input: Option<&[u8]>) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args = piped_args(&mut cmd, args);
    let Some(input) = input else {
        let out = cmd.output().expect("run stowage");
        return Run::from_output(args, out);
    };
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn stowage");
    let mut stdin = child.stdin.take().expect("stdin pipe");
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        // The child may exit early (an error); a broken pipe is then expected.
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for stowage");
    feeder.join().expect("stdin feeder");
    Run::from_output(args, out)
}

/// A datastore in its own temporary directory, with a work directory beside it for images.
pub struct Store {
    _tmp: Option<tempfile::TempDir>,
    pub path: PathBuf,
    pub work: PathBuf,
}

impl Store {
    /// Creates a datastore with `stowage datastore create`.
    pub fn new() -> Store {
        let tmp = tempdir();
        let mut store = Store::at(tmp.path().join("store"));
        store._tmp = Some(tmp);
        store
    }

    /// Creates a datastore at `path` (whose parent exists and outlives the store), with a work
    /// directory beside it.
    pub fn at(path: PathBuf) -> Store {
        let work = path.with_extension("work");
        fs::create_dir(&work).unwrap();
        let created = run(["datastore".as_ref(), "create".as_ref(), path.as_os_str()]);
        created.ok();
        assert!(path.join(".chunks/0000").is_dir());
        assert!(path.join(".chunks/ffff").is_dir());
        assert!(path.join(".lock").is_file());
        Store {
            _tmp: None,
            path,
            work,
        }
    }

    /// Runs the binary with `args`, killing it and failing the test if it takes longer than
    /// `deadline` (a hang).
    #[track_caller]
    pub fn run_timed<I, S>(&self, args: I, deadline: Duration) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd_timed(self.cmd(), args, deadline)
    }

    /// The binary with `--repository <store>` already given.
    pub fn cmd(&self) -> Command {
        let mut cmd = stowage();
        cmd.arg("--repository").arg(&self.path);
        cmd
    }

    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd(), args, None)
    }

    pub fn run_stdin<I, S>(&self, args: I, input: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_cmd(self.cmd(), args, Some(input))
    }

    /// A path in the work directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Writes `data` to a file in the work directory and returns its path.
    pub fn write_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.file(name);
        fs::write(&path, data).unwrap();
        path
    }

    /// `backup <specs> --backup-type vm --backup-id <id> --backup-time <epoch>` with JSON output;
    /// asserts success and returns the report.
    #[track_caller]
    pub fn backup(&self, specs: &[String], id: &str, epoch: i64) -> Value {
        let run = self.run(backup_args(specs, id, epoch));
        run.ok();
        let report = run.json();
        assert_eq!(report["snapshot"], snap(id, epoch));
        report
    }

    /// Backs up one image file `drive-scsi0.img` from `data`; returns the report.
    #[track_caller]
    pub fn backup_image(&self, data: &[u8], id: &str, epoch: i64) -> Value {
        let path = self.write_file(&format!("src-{id}-{epoch}.img"), data);
        self.backup(&[img_spec("drive-scsi0", &path)], id, epoch)
    }

    /// Restores `archive` of `snapshot` to a new file in the work directory; returns its bytes.
    #[track_caller]
    pub fn restore_bytes(&self, snapshot: &str, archive: &str) -> Vec<u8> {
        let target = self.file(&format!("restored-{}", unique()));
        self.run([
            "restore".as_ref(),
            snapshot.as_ref(),
            archive.as_ref(),
            target.as_os_str(),
        ])
        .ok();
        let data = fs::read(&target).unwrap();
        fs::remove_file(&target).unwrap();
        data
    }

    pub fn chunk_dir(&self) -> PathBuf {
        self.path.join(".chunks")
    }

    pub fn chunk_path(&self, digest: &str) -> PathBuf {
        self.chunk_dir().join(&digest[..4]).join(digest)
    }

    /// Every file under `.chunks`, whatever its name (relative paths).
    pub fn all_chunk_dir_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.chunk_dir()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type().unwrap().is_dir() {
                out.push(name);
                continue;
            }
            for file in fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap();
                out.push(format!("{name}/{}", file.file_name().to_string_lossy()));
            }
        }
        out.sort();
        out
    }

    /// Digests of the chunk files: files named by 64 hex digits in the directory named by their
    /// first four (temporary files of an interrupted write are left out).
    pub fn chunk_digests(&self) -> BTreeSet<String> {
        self.all_chunk_dir_files()
            .into_iter()
            .filter_map(|rel| {
                let (dir, name) = rel.split_once('/')?;
                (is_digest(name) && name.starts_with(dir)).then(|| name.to_string())
            })
            .collect()
    }

    pub fn chunk_count(&self) -> usize {
        self.chunk_digests().len()
    }

    pub fn snapshot_dir(&self, snapshot: &str) -> PathBuf {
        self.path.join(snapshot)
    }

    /// The `snapshot` fields of `snapshots --output-format json` (all groups, or one).
    #[track_caller]
    pub fn snapshot_names(&self, group: Option<&str>) -> Vec<String> {
        let mut args = vec!["--output-format", "json", "snapshots"];
        args.extend(group);
        let run = self.run(args);
        run.ok();
        run.json()
            .as_array()
            .expect("snapshots prints an array")
            .iter()
            .map(|row| row["snapshot"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Arguments of a JSON backup of `specs` into `vm/<id>` at `epoch`.
pub fn backup_args(specs: &[String], id: &str, epoch: i64) -> Vec<String> {
    let mut args = vec![
        "--output-format".to_string(),
        "json".into(),
        "backup".into(),
    ];
    args.extend(specs.iter().cloned());
    args.extend([
        "--backup-type".into(),
        "vm".into(),
        "--backup-id".into(),
        id.into(),
        "--backup-time".into(),
        epoch.to_string(),
    ]);
    args
}

/// `NAME.img:PATH`.
pub fn img_spec(name: &str, path: &Path) -> String {
    format!("{name}.img:{}", path.display())
}

/// `NAME.conf:PATH`.
pub fn conf_spec(name: &str, path: &Path) -> String {
    format!("{name}.conf:{}", path.display())
}

/// A number unique within this process, for file names.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn is_digest(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Digests of the 4 MiB chunks of an image, in order (the last one may be shorter).
pub fn image_digests(data: &[u8]) -> Vec<String> {
    data.chunks(CHUNK).map(sha256_hex).collect()
}

/// A tiny xorshift64* generator: deterministic pseudo-random data.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut parts = buf.chunks_exact_mut(8);
        for part in &mut parts {
            part.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = parts.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }
}

/// What one 4 MiB chunk of a generated image holds.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    /// All zeros.
    Zero,
    /// A repeating byte pattern (compresses well), different for each seed.
    Pattern(u8),
    /// Pseudo-random bytes (does not compress), different for each seed.
    Random(u64),
}

/// `n` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    XorShift::new(seed).fill(&mut buf);
    buf
}

/// An image of 4 MiB `parts` followed by a pseudo-random tail of `tail` bytes.
pub fn make_image(parts: &[Part], tail: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(parts.len() * CHUNK + tail);
    for part in parts {
        match *part {
            Part::Zero => data.resize(data.len() + CHUNK, 0),
            Part::Pattern(seed) => data.extend((0..CHUNK).map(|i| {
                let x = (i as u32)
                    .wrapping_mul(7)
                    .wrapping_add(u32::from(seed) * 13);
                (x % 251) as u8 | 1
            })),
            Part::Random(seed) => data.extend(random_bytes(seed, CHUNK)),
        }
    }
    data.extend(random_bytes(0xdead_beef ^ parts.len() as u64, tail));
    data
}

/// The standard test image: random, zero, pattern, zero chunks and a short random tail:
/// 16 MiB + 1000 bytes, half of it zeros.
pub fn standard_image() -> Vec<u8> {
    make_image(
        &[Part::Random(1), Part::Zero, Part::Pattern(3), Part::Zero],
        1000,
    )
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child with a timeout; kills it and panics when it does not end in time.
pub fn wait_child(mut child: Child, timeout: Duration, what: &str) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("poll child").is_some() {
            return child.wait_with_output().expect("collect child output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output();
            panic!("{what} did not finish within {timeout:?}: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Names of the entries of a directory, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tmpfs of `size` (for example "4m") mounted at a new directory `name` below `dir`, unmounted
/// when dropped. `None` where mounting is not allowed (not root): the caller skips its test.
pub struct SmallTmpfs {
    pub path: PathBuf,
}

impl SmallTmpfs {
    pub fn mount(dir: &Path, name: &str, size: &str) -> Option<SmallTmpfs> {
        let path = dir.join(name);
        fs::create_dir(&path).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (not root?)");
            return None;
        }
        Some(SmallTmpfs { path })
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
