//! Host profiles: what a host's configuration backup collects (`stowage backup --profile
//! pve-host`). A profile is a TOML file (see `docs/profiles.md`): the paths that go into one
//! file-tree archive, exclude patterns, and commands whose output is stored as `NAME.log` blobs.
//!
//! `--profile NAME` looks for `NAME.toml` in the profile directories (the user's, then
//! `/etc/stowage/profiles`) and then among the profiles built into the binary (the repository's
//! `profiles/*.toml`); `--profile PATH` (with a `/` or ending in `.toml`) loads that file.

mod paths;
mod run;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;
use serde_json::{json, Value};
use stowage_format::catalog::Glob;
use stowage_fs::Excludes;
use stowage_types::{ArchiveKind, ArchiveName, ErrorClass};

use crate::exit::fail;

pub use paths::resolve;
pub use run::{display_argv, run_command, CommandLog};

/// The profiles compiled into the binary: name and file text.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "pbs-host",
        include_str!("../../../../profiles/pbs-host.toml"),
    ),
    (
        "pve-host",
        include_str!("../../../../profiles/pve-host.toml"),
    ),
];

/// Seconds a command may run when its profile gives no `timeout`.
pub const DEFAULT_TIMEOUT_S: u64 = 60;
/// The longest `timeout` a profile may give: a day.
const MAX_TIMEOUT_S: u64 = 24 * 60 * 60;

/// Where a profile was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built-in"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    description: String,
    archive: Option<String>,
    #[serde(default)]
    required_paths: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    commands: Vec<CommandFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandFile {
    name: String,
    argv: Vec<String>,
    #[serde(default)]
    critical: bool,
    timeout: Option<u64>,
}

/// One path (or glob) of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilePath {
    /// Absolute; components may hold `*`, `?` and `[...]`.
    pub pattern: String,
    /// Missing: the backup fails (exit 4) instead of skipping it with a warning.
    pub required: bool,
}

/// One command of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileCommand {
    pub name: String,
    /// `NAME.log`: where its output is stored.
    pub log: ArchiveName,
    pub argv: Vec<String>,
    /// Failing (not starting, non-zero exit, killed, timed out) fails the backup with exit 9.
    pub critical: bool,
    pub timeout: Duration,
}

/// A parsed, validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub origin: Origin,
    /// The file as it was read.
    pub text: String,
    pub description: String,
    /// The file-tree archive the paths go into; `None` only when there are no paths.
    pub archive: Option<ArchiveName>,
    pub paths: Vec<ProfilePath>,
    /// Exclude patterns as for `--exclude` (PBS's meaning, see `stowage_fs::exclude`).
    pub exclude: Vec<String>,
    pub commands: Vec<ProfileCommand>,
}

fn usage(origin: &Origin, message: impl fmt::Display) -> anyhow::Error {
    fail(ErrorClass::Usage, format!("profile {origin}: {message}"))
}

/// Whether a path component is a glob rather than a literal name.
pub(crate) fn is_glob(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

/// Checks one profile path: absolute, no `.`/`..`, globs only within components.
fn check_path(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err("it must be absolute (start with '/')".into());
    }
    if pattern.contains('\0') {
        return Err("it contains a NUL character".into());
    }
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            return Err("'.' and '..' are not allowed".into());
        }
        if component.contains("**") {
            return Err("'**' is not supported: globs match within one path component".into());
        }
        if is_glob(component) {
            Glob::new(component.as_bytes()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// "line N: " for a byte offset into `text`.
fn line_of(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    format!("line {}: ", before.matches('\n').count() + 1)
}

impl Profile {
    /// Parses and validates the text of a profile; every problem is a usage error (exit 2).
    pub fn parse(name: &str, origin: Origin, text: &str) -> Result<Profile> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_of(text, s.start)).unwrap_or_default();
            usage(&origin, format!("{at}{}", e.message().trim_end()))
        })?;
        let bad = |message: String| usage(&origin, message);
        let mut paths = Vec::new();
        for (list, required) in [(&file.required_paths, true), (&file.paths, false)] {
            for pattern in list {
                check_path(pattern).map_err(|why| bad(format!("path '{pattern}': {why}")))?;
                paths.push(ProfilePath {
                    pattern: pattern.clone(),
                    required,
                });
            }
        }
        let archive = match &file.archive {
            Some(archive) => {
                let parsed = ArchiveName::for_backup(archive)
                    .map_err(|e| bad(format!("archive '{archive}': {e}")))?;
                if parsed.kind() != ArchiveKind::Pxar || !archive.ends_with(".pxar") {
                    return Err(bad(format!(
                        "archive '{archive}': name the file-tree archive NAME.pxar"
                    )));
                }
                Some(parsed)
            }
            None if paths.is_empty() => None,
            None => {
                return Err(bad(
                    "it lists paths but no archive (for example archive = \"host.pxar\")".into(),
                ))
            }
        };
        let mut excludes = Excludes::new();
        for pattern in &file.exclude {
            excludes
                .add(pattern.as_bytes())
                .map_err(|e| bad(e.to_string()))?;
        }
        let mut commands: Vec<ProfileCommand> = Vec::new();
        for c in file.commands {
            let name = &c.name;
            let log = ArchiveName::for_backup(&format!("{name}.log"))
                .map_err(|e| bad(format!("command name '{name}': {e}")))?;
            if commands.iter().any(|other| other.name == c.name) {
                return Err(bad(format!("command name '{name}' is given twice")));
            }
            if c.argv.first().is_none_or(|program| program.is_empty()) {
                return Err(bad(format!(
                    "command '{name}': argv must name a program, as in argv = [\"uname\", \"-a\"]"
                )));
            }
            if c.argv.iter().any(|a| a.contains('\0')) {
                return Err(bad(format!(
                    "command '{name}': argv contains a NUL character"
                )));
            }
            let timeout = c.timeout.unwrap_or(DEFAULT_TIMEOUT_S);
            if !(1..=MAX_TIMEOUT_S).contains(&timeout) {
                return Err(bad(format!(
                    "command '{name}': timeout must be 1 to {MAX_TIMEOUT_S} seconds, not {timeout}"
                )));
            }
            commands.push(ProfileCommand {
                name: c.name,
                log,
                argv: c.argv,
                critical: c.critical,
                timeout: Duration::from_secs(timeout),
            });
        }
        Ok(Profile {
            name: name.to_string(),
            origin,
            text: text.to_string(),
            description: file.description,
            archive,
            paths,
            exclude: file.exclude,
            commands,
        })
    }

    /// The profile as JSON (`profile show --output-format json`).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "origin": self.origin.to_string(),
            "description": self.description,
            "archive": self.archive.as_ref().map(ToString::to_string),
            "paths": self.paths.iter().map(|p| json!({"path": p.pattern, "required": p.required})).collect::<Vec<_>>(),
            "exclude": self.exclude,
            "commands": self.commands.iter().map(|c| json!({
                "name": c.name,
                "log": c.log.to_string(),
                "argv": c.argv,
                "critical": c.critical,
                "timeout_s": c.timeout.as_secs(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The directories searched for `NAME.toml`, first match wins: `$XDG_CONFIG_HOME` (or
/// `~/.config`) `/stowage/profiles`, then `/etc/stowage/profiles`.
pub fn dirs() -> Vec<PathBuf> {
    let nonempty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    let mut dirs = Vec::new();
    if let Some(config) = nonempty("XDG_CONFIG_HOME").map(PathBuf::from) {
        dirs.push(config.join("stowage/profiles"));
    } else if let Some(home) = nonempty("HOME").map(PathBuf::from) {
        dirs.push(home.join(".config/stowage/profiles"));
    }
    dirs.push(PathBuf::from("/etc/stowage/profiles"));
    dirs
}

/// A profile name: letters, digits, `_`, `-` and `.`, not starting with `.` or `-`.
fn is_profile_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `--profile` names a file rather than a profile.
fn is_path(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".toml")
}

fn read_file(path: &Path) -> Result<Profile> {
    let origin = Origin::File(path.to_path_buf());
    let text = std::fs::read_to_string(path).map_err(|e| usage(&origin, e))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Profile::parse(&name, origin, &text)
}

/// Loads the profile `--profile` names: a name or a file.
pub fn load(arg: &str) -> Result<Profile> {
    if is_path(arg) {
        return read_file(Path::new(arg));
    }
    if !is_profile_name(arg) {
        return Err(fail(
            ErrorClass::Usage,
            format!("profile name '{arg}': use letters, digits, '_', '-' and '.' (or give a path)"),
        ));
    }
    for dir in dirs() {
        let path = dir.join(format!("{arg}.toml"));
        if path.is_file() {
            return read_file(&path);
        }
    }
    if let Some((name, text)) = BUILTIN.iter().find(|(name, _)| *name == arg) {
        return Profile::parse(name, Origin::Builtin, text);
    }
    let known: Vec<String> = list().into_iter().map(|l| l.name).collect();
    Err(fail(
        ErrorClass::Usage,
        format!(
            "no profile '{arg}' (available: {}; see 'stowage profile list')",
            known.join(", ")
        ),
    ))
}

/// One profile `--profile NAME` can load.
pub struct Listed {
    pub name: String,
    pub origin: Origin,
    /// The description, or why the file is not a valid profile.
    pub description: Result<String, String>,
}

/// Every profile `--profile NAME` can load, by name; a file in a profile directory hides a
/// built-in profile (or a file in a later directory) of the same name.
pub fn list() -> Vec<Listed> {
    let mut out: Vec<Listed> = Vec::new();
    for dir in dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !is_profile_name(name) || out.iter().any(|l| l.name == name) {
                continue;
            }
            out.push(Listed {
                name: name.to_string(),
                description: read_file(&path)
                    .map(|p| p.description)
                    .map_err(|e| crate::exit::one_line(&e)),
                origin: Origin::File(path),
            });
        }
    }
    for (name, text) in BUILTIN {
        if !out.iter().any(|l| l.name == *name) {
            out.push(Listed {
                name: name.to_string(),
                origin: Origin::Builtin,
                description: Profile::parse(name, Origin::Builtin, text)
                    .map(|p| p.description)
                    .map_err(|e| crate::exit::one_line(&e)),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{classify, code};

    fn parse(text: &str) -> Result<Profile> {
        Profile::parse("t", Origin::File("t.toml".into()), text)
    }

    /// Parsing fails with exit code 2 and a message holding `needle`.
    #[track_caller]
    fn refused(text: &str, needle: &str) {
        let err = parse(text).expect_err("the profile should be refused");
        let message = crate::exit::one_line(&err);
        assert_eq!(code(classify(&err)), 2, "{message}");
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        assert!(message.starts_with("profile t.toml: "), "{message}");
    }

    const GOOD: &str = r#"
description = "test host"
archive = "host.pxar"
required_paths = ["/etc/hostname"]
paths = ["/etc/cron*", "/root/.ssh/"]
exclude = ["*.bak", "/etc/pve/.*"]

[[commands]]
name = "uname"
argv = ["uname", "-a"]

[[commands]]
name = "ver.sion_2"
argv = ["pveversion", "-v"]
critical = true
timeout = 5
"#;

    #[test]
    fn a_full_profile_parses() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.description, "test host");
        assert_eq!(p.archive.as_ref().unwrap().stored_name(), "host.pxar.didx");
        let paths: Vec<_> = p
            .paths
            .iter()
            .map(|p| (p.pattern.as_str(), p.required))
            .collect();
        assert_eq!(
            paths,
            [
                ("/etc/hostname", true),
                ("/etc/cron*", false),
                ("/root/.ssh/", false)
            ]
        );
        assert_eq!(p.exclude, ["*.bak", "/etc/pve/.*"]);
        let c = &p.commands;
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].name.as_str(), c[0].critical), ("uname", false));
        assert_eq!(c[0].timeout, Duration::from_secs(DEFAULT_TIMEOUT_S));
        assert_eq!(c[0].log.stored_name(), "uname.log.blob");
        assert_eq!(c[1].log.user_name(), "ver.sion_2.log");
        assert_eq!(
            (c[1].critical, c[1].timeout),
            (true, Duration::from_secs(5))
        );
        assert_eq!(c[1].argv, ["pveversion", "-v"]);
        let json = p.to_json();
        assert_eq!(json["commands"][1]["timeout_s"], 5);
        assert_eq!(json["paths"][0]["required"], true);
    }

    #[test]
    fn a_profile_may_hold_only_commands_or_nothing() {
        let p = parse("[[commands]]\nname = \"x\"\nargv = [\"true\"]\n").unwrap();
        assert!(p.archive.is_none() && p.paths.is_empty());
        let p = parse("").unwrap();
        assert!(p.commands.is_empty());
    }

    #[test]
    fn the_built_in_profiles_are_valid() {
        for (name, text) in BUILTIN {
            let p = Profile::parse(name, Origin::Builtin, text).unwrap();
            assert_eq!(p.archive.unwrap().user_name(), format!("{name}.pxar"));
            assert!(p.paths.iter().any(|p| p.required), "{name}");
            assert!(p.commands.iter().any(|c| c.critical), "{name}");
            assert!(!p.description.is_empty());
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_their_line() {
        refused(
            "archive = \"a.pxar\"\npath = [\"/etc\"]\n",
            "line 2: unknown field `path`",
        );
        refused(
            "[[commands]]\nname = \"x\"\nargv = [\"true\"]\ncritcal = true\n",
            "unknown field `critcal`",
        );
        refused("archive = 5\n", "line 1: invalid type");
        refused("[[commands]]\nname = \"x\"\n", "missing field `argv`");
        refused("archive = \"a.pxar\n", "line 1");
        refused(
            "[[commands]]\nname = \"x\"\nargv = [\"true\"]\ntimeout = -1\n",
            "line 4",
        );
    }

    #[test]
    fn bad_archive_names_are_refused() {
        let with = |archive: &str| format!("archive = \"{archive}\"\npaths = [\"/etc\"]\n");
        refused(&with("host.img"), "name the file-tree archive NAME.pxar");
        refused(
            &with("catalog.pcat1"),
            "reserved for the snapshot's file catalog",
        );
        refused(&with("host.mpxar"), "written by stowage itself");
        refused(&with("host"), "archive 'host'");
        refused(&with("../x.pxar"), "archive '../x.pxar'");
        refused("paths = [\"/etc\"]\n", "no archive");
    }

    #[test]
    fn bad_paths_and_patterns_are_refused() {
        let with = |path: &str| format!("archive = \"a.pxar\"\npaths = [\"{path}\"]\n");
        refused(&with("etc/hosts"), "must be absolute");
        refused(&with("/etc/../root"), "'.' and '..'");
        refused(&with("/etc/**/x"), "'**' is not supported");
        refused(&with("/etc/[ab"), "unclosed '['");
        refused(
            "archive = \"a.pxar\"\nrequired_paths = [\"./x\"]\n",
            "must be absolute",
        );
        refused("exclude = [\"[\"]\n", "invalid exclude pattern");
    }

    #[test]
    fn bad_commands_are_refused() {
        let with = |body: &str| format!("[[commands]]\n{body}\n");
        refused(
            &with("name = \"x\"\nargv = []"),
            "command 'x': argv must name a program",
        );
        refused(
            &with("name = \"x\"\nargv = [\"\"]"),
            "argv must name a program",
        );
        refused(
            &with("name = \"a b\"\nargv = [\"true\"]"),
            "command name 'a b'",
        );
        refused(&with("name = \"\"\nargv = [\"true\"]"), "command name ''");
        refused(
            &with("name = \"x/y\"\nargv = [\"true\"]"),
            "command name 'x/y'",
        );
        refused(
            &with("name = \"x\"\nargv = [\"true\"]\ntimeout = 0"),
            "timeout must be 1 to 86400 seconds, not 0",
        );
        refused(
            "[[commands]]\nname = \"x\"\nargv = [\"true\"]\n[[commands]]\nname = \"x\"\nargv = [\"false\"]\n",
            "command name 'x' is given twice",
        );
    }

    #[test]
    fn names_and_paths_are_told_apart() {
        assert!(is_path("./my.toml") && is_path("my.toml") && is_path("/etc/x"));
        assert!(!is_path("pve-host"));
        let err = load("no-such-profile").unwrap_err();
        assert_eq!(code(classify(&err)), 2);
        assert!(err.to_string().contains("pve-host"), "{err}");
        let err = load("bad name").unwrap_err();
        assert_eq!(code(classify(&err)), 2);
        let err = load("/nonexistent/x.toml").unwrap_err();
        assert_eq!(code(classify(&err)), 2);
    }
}
