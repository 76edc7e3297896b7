//! Host profiles, through the real binary: `backup --profile FILE` with a profile that selects
//! paths of a temporary tree (missing optional paths reported, commands' output stored as
//! `.log` blobs, a critical failure ending with exit 9 and no snapshot), `profile list|show`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{run_cmd, Run, Store, T1, T1_NAME};

/// A tree to back up, below the store's temporary directory (on /dev/shm).
struct Host {
    store: Store,
    /// The tree's root, without symlinks (as the archive records it).
    src: PathBuf,
}

impl Host {
    fn new() -> Host {
        let store = Store::new();
        fs::create_dir(store.work.join("src")).unwrap();
        let src = store.work.join("src").canonicalize().unwrap();
        for dir in ["etc/cron.d", "etc/cron.daily", "root/.ssh"] {
            fs::create_dir_all(src.join(dir)).unwrap();
        }
        for (file, text) in [
            ("etc/hosts", "127.0.0.1 localhost\n"),
            ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            ("etc/crontab", "# crontab\n"),
            ("etc/cron.d/job", "* * * * * root true\n"),
            ("etc/cron.d/job.bak", "old\n"),
            ("etc/cron.daily/logrotate", "#!/bin/sh\n"),
            ("root/.ssh/authorized_keys", "ssh-ed25519 AAAA test\n"),
            ("root/secret", "not selected\n"),
        ] {
            fs::write(src.join(file), text).unwrap();
        }
        Host { store, src }
    }

    fn path(&self, rel: &str) -> String {
        self.src.join(rel).display().to_string()
    }

    /// Writes a profile file into the work directory; returns its path.
    fn profile(&self, name: &str, text: &str) -> PathBuf {
        self.store.write_file(name, text.as_bytes())
    }

    /// The usual profile: two required/optional path kinds, a glob, a missing path, an
    /// exclude, and the given commands.
    fn standard_profile(&self, commands: &str) -> PathBuf {
        let text = format!(
            r#"
description = "test host"
archive = "host-cfg.pxar"
required_paths = ["{hosts}"]
paths = ["{cron}", "{vzdump}", "{ssh}/"]
exclude = ["*.bak"]
{commands}
"#,
            hosts = self.path("etc/hosts"),
            cron = self.path("etc/cron*"),
            vzdump = self.path("etc/vzdump.conf"),
            ssh = self.path("root/.ssh"),
        );
        self.profile("host.toml", &text)
    }

    fn backup(&self, profile: &Path, extra: &[&str]) -> Run {
        let mut args = vec![
            "--output-format".to_string(),
            "json".into(),
            "backup".into(),
            "--profile".into(),
            profile.display().to_string(),
            "--backup-time".into(),
            T1.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.store.run(args)
    }

    /// The paths of the snapshot's catalog, from `catalog --output-format json`.
    fn catalog(&self, snapshot: &str) -> BTreeSet<String> {
        let run = self
            .store
            .run(["--output-format", "json", "catalog", snapshot]);
        run.ok();
        run.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["path"].as_str().unwrap().to_string())
            .collect()
    }

    /// `restore SNAPSHOT NAME -`: an archive's bytes on stdout.
    fn restore_stdout(&self, snapshot: &str, archive: &str) -> String {
        let run = self.store.run(["restore", snapshot, archive, "-"]);
        run.ok();
        run.stdout_text()
    }
}

const COMMANDS: &str = r#"
[[commands]]
name = "echo"
argv = ["echo", "hello", "from a profile"]
critical = true

[[commands]]
name = "false"
argv = ["false"]

[[commands]]
name = "missing-binary"
argv = ["/nonexistent/stowage-test-program", "--flag"]
timeout = 5
"#;

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn a_profile_backup_collects_its_paths_into_one_archive_and_commands_into_logs() {
    let host = Host::new();
    let profile = host.standard_profile(COMMANDS);
    let run = host.backup(&profile, &[]);
    run.ok();

    // Reported, not fatal: the missing optional path and the failing non-critical commands.
    let vzdump = host.path("etc/vzdump.conf");
    assert!(
        run.stderr
            .contains(&format!("warning: {vzdump} does not exist, skipped\n")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "warning: command false (false) failed: exit status 1; its output is stored in false.log"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("warning: command missing-binary (/nonexistent/stowage-test-program --flag) failed: could not be started: "),
        "{}",
        run.stderr
    );

    // The group defaults to host/<host name>.
    let report = run.json();
    let snapshot = format!("host/{}/{T1_NAME}", host_name());
    assert_eq!(report["snapshot"], snapshot.as_str());
    let profile_report = &report["profile"];
    assert_eq!(profile_report["name"], "host");
    assert_eq!(profile_report["archive"], "host-cfg.pxar");
    assert_eq!(
        profile_report["missing"][0],
        format!("{vzdump} does not exist")
    );
    assert_eq!(
        profile_report["failed_commands"],
        serde_json::json!(["false", "missing-binary"])
    );
    let blobs: Vec<&str> = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["archive"].as_str().unwrap())
        .collect();
    assert_eq!(blobs, ["echo.log", "false.log", "missing-binary.log"]);
    assert_eq!(report["archives"][0]["archive"], "host-cfg.pxar");
    assert_eq!(report["archives"][0]["tree"]["files"], 5);
    assert_eq!(report["archives"][0]["tree"]["excluded"], 1);

    // The archive holds the selected paths at their places below /, the directories on the way
    // to them, and nothing else.
    let mut expected = BTreeSet::new();
    let mut prefix = "host-cfg.pxar.didx".to_string();
    expected.insert(prefix.clone());
    for component in host.src.components().skip(1) {
        prefix = format!("{prefix}/{}", component.as_os_str().to_string_lossy());
        expected.insert(prefix.clone());
    }
    for rel in [
        "etc",
        "etc/hosts",
        "etc/crontab",
        "etc/cron.d",
        "etc/cron.d/job",
        "etc/cron.daily",
        "etc/cron.daily/logrotate",
        "root",
        "root/.ssh",
        "root/.ssh/authorized_keys",
    ] {
        expected.insert(format!("{prefix}/{rel}"));
    }
    assert_eq!(host.catalog(&snapshot), expected);

    let cat = host
        .store
        .run(["cat", &snapshot, "host-cfg.pxar", &host.path("etc/hosts")]);
    cat.ok();
    assert_eq!(cat.stdout_text(), "127.0.0.1 localhost\n");
    let keys = host.path("root/.ssh/authorized_keys");
    let cat = host.store.run(["cat", &snapshot, "host-cfg.pxar", &keys]);
    assert_eq!(cat.ok().stdout_text(), "ssh-ed25519 AAAA test\n");
    let not_selected = host.path("etc/passwd");
    host.store
        .run(["cat", &snapshot, "host-cfg.pxar", &not_selected])
        .expect_code(6);

    // Each command's output, after a header line with its exit status.
    let echo = host.restore_stdout(&snapshot, "echo.log");
    let (header, output) = echo.split_once('\n').unwrap();
    assert!(
        header.starts_with("# echo hello 'from a profile': exit status 0, after "),
        "{header}"
    );
    assert_eq!(output, "hello from a profile\n");
    let failed = host.restore_stdout(&snapshot, "false.log");
    assert!(
        failed.starts_with("# false: exit status 1, after "),
        "{failed}"
    );
    let missing = host.restore_stdout(&snapshot, "missing-binary.log");
    assert!(
        missing.starts_with("# /nonexistent/stowage-test-program --flag: could not be started: "),
        "{missing}"
    );

    // The snapshot is whole.
    host.store.run(["verify", &snapshot]).ok();
}

#[test]
fn a_failing_critical_command_fails_the_backup_with_exit_9_and_leaves_no_snapshot() {
    let host = Host::new();
    let text = format!(
        r#"
archive = "host-cfg.pxar"
paths = ["{hosts}"]

[[commands]]
name = "echo"
argv = ["echo", "fine"]

[[commands]]
name = "check"
argv = ["sh", "-c", "echo not a PVE host >&2; exit 2"]
critical = true

[[commands]]
name = "never-run"
argv = ["sh", "-c", "touch {marker}"]
"#,
        hosts = host.path("etc/hosts"),
        marker = host.path("marker"),
    );
    let profile = host.profile("critical.toml", &text);
    let run = host.backup(&profile, &["--backup-id", "cfg"]);
    run.expect_code(9);
    let line = run.single_error_line();
    assert!(
        line.contains("critical command check of profile critical"),
        "{line}"
    );
    assert!(line.contains("exit status 2"), "{line}");
    assert!(line.contains("no snapshot was made"), "{line}");
    // Commands after the failed one are not run, and nothing was stored.
    assert!(!host.src.join("marker").exists());
    assert!(host.store.snapshot_names(None).is_empty());
    assert!(!host.store.path.join("host").exists());
    assert!(host.store.chunk_digests().is_empty());

    // A timeout counts as a failure too.
    let text = format!(
        "archive = \"a.pxar\"\npaths = [\"{}\"]\n[[commands]]\nname = \"slow\"\nargv = [\"sleep\", \"30\"]\ncritical = true\ntimeout = 1\n",
        host.path("etc/hosts")
    );
    let profile = host.profile("slow.toml", &text);
    let run = host.backup(&profile, &["--backup-id", "cfg"]);
    run.expect_code(9);
    assert!(
        run.single_error_line().contains("timed out after 1 s"),
        "{}",
        run.stderr
    );
    assert!(host.store.snapshot_names(None).is_empty());
}

#[test]
fn a_profile_combines_with_other_specs_and_the_group_options() {
    let host = Host::new();
    let profile =
        host.standard_profile("[[commands]]\nname = \"uname\"\nargv = [\"uname\", \"-s\"]\n");
    let conf = host.store.write_file("extra.conf", b"x: 1\n");
    let spec = common::conf_spec("extra", &conf);
    let tree = format!("tree.pxar:{}", host.path("root"));
    // With --one-file-system, each selected path keeps to its own file system, not to that of
    // / (the tree is on /dev/shm, a mount of its own).
    let run = host.backup(
        &profile,
        &[
            &spec,
            &tree,
            "--backup-type",
            "ct",
            "--backup-id",
            "105",
            "--one-file-system",
        ],
    );
    run.ok();
    let snapshot = format!("ct/105/{T1_NAME}");
    assert_eq!(run.json()["snapshot"], snapshot.as_str());
    let files = host
        .store
        .run(["--output-format", "json", "files", &snapshot]);
    let files = files.ok().json();
    let names: BTreeSet<String> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap().to_string())
        .collect();
    for name in [
        "extra.conf.blob",
        "tree.pxar.didx",
        "host-cfg.pxar.didx",
        "uname.log.blob",
        "catalog.pcat1.didx",
    ] {
        assert!(names.contains(name), "{name} not in {names:?}");
    }
    assert_eq!(host.restore_stdout(&snapshot, "extra.conf"), "x: 1\n");
    // The ordinary tree keeps everything; the profile's tree only what it selects.
    let catalog = host.catalog(&snapshot);
    assert!(catalog.contains("tree.pxar.didx/secret"));
    let keys = format!(
        "host-cfg.pxar.didx{}",
        host.path("root/.ssh/authorized_keys")
    );
    assert!(catalog.contains(&keys), "{catalog:?}");
    assert!(catalog.iter().any(|p| p.ends_with("/etc/cron.d/job")));
    assert!(!catalog.iter().any(|p| p.ends_with("/root/secret")));

    // Two archives of one name are refused before anything runs.
    let log = host.store.write_file("uname.log", b"x\n");
    let clash = format!("uname.log:{}", log.display());
    let run = host.backup(&profile, &[&clash]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("two archives named uname.log"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_profiles_are_refused_before_the_backup_starts() {
    let host = Host::new();
    let cases: &[(&str, &str)] = &[
        (
            "archive = \"a.pxar\"\npath = [\"/etc\"]\n",
            "line 2: unknown field `path`",
        ),
        (
            "archive = \"a.img\"\npaths = [\"/etc\"]\n",
            "name the file-tree archive NAME.pxar",
        ),
        (
            "[[commands]]\nname = \"x\"\nargv = []\n",
            "argv must name a program",
        ),
        (
            "paths = [\"etc\"]\narchive = \"a.pxar\"\n",
            "must be absolute",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let profile = host.profile(&format!("bad{i}.toml"), text);
        let run = host.backup(&profile, &[]);
        run.expect_code(2);
        let line = run.single_error_line();
        assert!(line.contains(needle), "{line:?} lacks {needle:?}");
        assert!(line.contains(&format!("bad{i}.toml")), "{line}");
    }
    host.backup(Path::new("no-such-profile"), &[])
        .expect_code(2);
    host.backup(Path::new("/nonexistent/p.toml"), &[])
        .expect_code(2);

    // A missing required path is a source error.
    let text = format!(
        "archive = \"a.pxar\"\nrequired_paths = [\"{}\"]\n",
        host.path("etc/pve")
    );
    let run = host.backup(&host.profile("req.toml", &text), &[]);
    run.expect_code(4);
    assert!(
        run.single_error_line()
            .contains(&format!("{} does not exist", host.path("etc/pve"))),
        "{}",
        run.stderr
    );
    assert!(host.store.snapshot_names(None).is_empty());
}

#[test]
fn profiles_are_listed_shown_and_found_by_name() {
    let host = Host::new();
    let dir = host.store.work.join("config");
    fs::create_dir_all(dir.join("stowage/profiles")).unwrap();
    let mine = format!(
        "description = \"mine\"\narchive = \"mine.pxar\"\npaths = [\"{}\"]\n",
        host.path("etc/hosts")
    );
    fs::write(dir.join("stowage/profiles/mine.toml"), &mine).unwrap();
    fs::write(
        dir.join("stowage/profiles/pve-host.toml"),
        "description = \"my pve\"\n",
    )
    .unwrap();
    fs::write(dir.join("stowage/profiles/broken.toml"), "nonsense = 1\n").unwrap();
    let with_config = |args: &[&str]| {
        let mut cmd = host.store.cmd();
        cmd.env("XDG_CONFIG_HOME", &dir);
        run_cmd(cmd, args, None)
    };

    let list = with_config(&["--output-format", "json", "profile", "list"]);
    let rows = list.ok().json();
    let rows: Vec<&Value> = rows.as_array().unwrap().iter().collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["broken", "mine", "pbs-host", "pve-host"]);
    assert!(rows[0]["error"].as_str().unwrap().contains("unknown field"));
    assert_eq!(rows[1]["description"], "mine");
    assert_eq!(rows[2]["origin"], "built-in");
    // A file of the same name replaces the built-in profile.
    assert_eq!(rows[3]["description"], "my pve");
    assert!(rows[3]["origin"]
        .as_str()
        .unwrap()
        .ends_with("/pve-host.toml"));

    // Without profile directories: the built-in ones.
    let list = with_config(&["profile", "list"]);
    assert!(list
        .ok()
        .stdout_text()
        .contains("pbs-host  built-in  Proxmox Backup Server host"));
    let mut cmd = host.store.cmd();
    cmd.env("XDG_CONFIG_HOME", host.store.work.join("none"));
    let text = run_cmd(cmd, ["profile", "list"], None).ok().stdout_text();
    assert!(text.starts_with("pbs-host  built-in  "), "{text}");
    assert!(
        text.contains("\npve-host  built-in  Proxmox VE node"),
        "{text}"
    );

    // `show` prints the file itself, to copy; JSON the parsed profile.
    let shipped = include_str!("../../../profiles/pbs-host.toml");
    let show = with_config(&["profile", "show", "pbs-host"]);
    assert_eq!(show.ok().stdout_text(), shipped);
    let show = with_config(&["--output-format", "json", "profile", "show", "mine"]);
    let json = show.ok().json();
    assert_eq!(json["archive"], "mine.pxar");
    assert_eq!(json["paths"][0]["path"], host.path("etc/hosts"));
    with_config(&["profile", "show", "nope"]).expect_code(2);

    // `--profile NAME` finds a user's profile.
    let backup = with_config(&[
        "--output-format",
        "json",
        "backup",
        "--profile",
        "mine",
        "--backup-id",
        "mine",
        "--backup-time",
        &T1.to_string(),
    ]);
    let report = backup.ok().json();
    assert_eq!(report["profile"]["name"], "mine");
    let snapshot = format!("host/mine/{T1_NAME}");
    let cat = host
        .store
        .run(["cat", &snapshot, "mine.pxar", &host.path("etc/hosts")]);
    assert_eq!(cat.ok().stdout_text(), "127.0.0.1 localhost\n");
}
