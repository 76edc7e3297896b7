//! A profile's paths on this host, before the backup starts: globs expanded (each component by
//! listing its directory), symlinks on the way resolved (the walk does not follow them), missing
//! paths told apart from found ones.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use stowage_format::catalog::Glob;
use stowage_fs::Selection;
use stowage_types::ErrorClass;

use super::{is_glob, Profile};
use crate::exit::fail;

/// What a profile's paths are on this host.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Existing paths, absolute, without symlinks before their last component, in profile order.
    pub found: Vec<PathBuf>,
    /// Optional paths that are not here, each with why ("/x does not exist").
    pub missing: Vec<String>,
}

impl Resolved {
    /// The found paths as a selection relative to `/`.
    pub fn selection(&self) -> Result<Selection> {
        let mut selection = Selection::new();
        for path in &self.found {
            selection
                .add(path.as_os_str().as_bytes())
                .map_err(|e| fail(ErrorClass::Internal, e.to_string()))?;
        }
        Ok(selection)
    }
}

/// Resolves every path of `profile`; a required path that is not here fails (exit 4).
pub fn resolve(profile: &Profile) -> Result<Resolved> {
    let mut out = Resolved::default();
    for path in &profile.paths {
        let found = expand(&path.pattern);
        let why = match &found {
            Ok(list) if !list.is_empty() => None,
            Ok(_) => Some(format!("{} matches nothing", path.pattern)),
            Err(why) => Some(format!("{} {why}", path.pattern)),
        };
        match why {
            Some(why) if path.required => {
                return Err(fail(
                    ErrorClass::Source,
                    format!("required path of profile {}: {why}", profile.name),
                ))
            }
            Some(why) => out.missing.push(why),
            None => {}
        }
        for p in found.unwrap_or_default() {
            if !out.found.contains(&p) {
                out.found.push(p);
            }
        }
    }
    Ok(out)
}

/// Whether directory entry `name` matches the glob `component`: as in a shell, a leading `.` is
/// matched only by a pattern that starts with one.
fn matches(glob: &Glob, component: &str, name: &OsString) -> bool {
    let name = name.as_bytes();
    (!name.starts_with(b".") || component.starts_with('.')) && glob.is_match(name)
}

/// The existing paths `pattern` names. A literal path that is not there is an error saying why
/// ("does not exist", "cannot be read: ..."); a glob may match nothing.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let mut current = vec![PathBuf::from("/")];
    for component in &components {
        if !is_glob(component) {
            for path in &mut current {
                path.push(component);
            }
            continue;
        }
        let glob = Glob::new(component.as_bytes()).map_err(|e| e.to_string())?;
        let mut next = Vec::new();
        for dir in &current {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<OsString> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|name| matches(&glob, component, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| dir.join(name)));
        }
        current = next;
    }
    let literal = !components.iter().any(|c| is_glob(c));
    let mut found = Vec::new();
    for path in current {
        match real_path(&path) {
            Ok(real) => found.push(real),
            Err(why) if literal => return Err(why),
            // Vanished since it was listed, or unreadable: a glob just does not match it.
            Err(_) => {}
        }
    }
    Ok(found)
}

/// `path` with symlinks in its directories resolved (the last component is kept as it is: a
/// symlink is archived as a symlink), if it exists.
fn real_path(path: &Path) -> Result<PathBuf, String> {
    let why = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        _ => format!("cannot be read: {e}"),
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(PathBuf::from("/"));
    };
    let real = std::fs::canonicalize(parent).map_err(why)?.join(name);
    std::fs::symlink_metadata(&real).map_err(why)?;
    Ok(real)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::super::Origin;
    use super::*;
    use crate::exit::{classify, code};

    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("stowage-profile-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap()
    }

    fn profile(required: &[String], optional: &[String]) -> Profile {
        let list = |l: &[String]| {
            l.iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "archive = \"t.pxar\"\nrequired_paths = [{}]\npaths = [{}]\n",
            list(required),
            list(optional)
        );
        Profile::parse("t", Origin::Builtin, &text).unwrap()
    }

    #[test]
    fn globs_are_expanded_and_missing_paths_reported() {
        let tmp = tempdir();
        let base = tmp.path().canonicalize().unwrap();
        let b = base.display();
        for dir in ["etc/cron.d", "etc/cron.daily", "etc/pve"] {
            fs::create_dir_all(base.join(dir)).unwrap();
        }
        for file in ["etc/crontab", "etc/.cronhidden", "etc/hosts"] {
            fs::write(base.join(file), "x").unwrap();
        }
        symlink(base.join("etc"), base.join("link")).unwrap();
        symlink("nowhere", base.join("dangling")).unwrap();
        let p = profile(
            &[format!("{b}/etc/hosts")],
            &[
                format!("{b}/etc/cron*"),
                format!("{b}/etc/vzdump.conf"),
                format!("{b}/nothing*"),
                format!("{b}/e?c/p[uv]e/"),
                // Through a symlink: stored at its real place; a dangling symlink is kept.
                format!("{b}/link/hosts"),
                format!("{b}/dangling"),
            ],
        );
        let r = resolve(&p).unwrap();
        let found: Vec<String> = r
            .found
            .iter()
            .map(|p| p.strip_prefix(&base).unwrap().display().to_string())
            .collect();
        assert_eq!(
            found,
            [
                "etc/hosts",
                "etc/cron.d",
                "etc/cron.daily",
                "etc/crontab",
                "etc/pve",
                "dangling"
            ]
        );
        assert_eq!(
            r.missing,
            [
                format!("{b}/etc/vzdump.conf does not exist"),
                format!("{b}/nothing* matches nothing"),
            ]
        );
        let selection = r.selection().unwrap();
        assert_eq!(selection.len(), 6);
        let hosts = base.join("etc/hosts");
        let hosts = hosts.as_os_str().as_bytes();
        assert_eq!(selection.decide(&hosts[1..]), stowage_fs::Selected::Inside);
    }

    #[test]
    fn a_missing_required_path_fails_with_exit_4() {
        let tmp = tempdir();
        let missing = format!("{}/etc/pve", tmp.path().display());
        let err = resolve(&profile(std::slice::from_ref(&missing), &[])).unwrap_err();
        assert_eq!(code(classify(&err)), 4);
        assert!(err.to_string().contains(&missing), "{err}");
        let glob = format!("{}/x*", tmp.path().display());
        let err = resolve(&profile(&[glob], &[])).unwrap_err();
        assert!(err.to_string().contains("matches nothing"), "{err}");
    }

    #[test]
    fn the_root_selects_everything() {
        let r = resolve(&profile(&["/".into()], &[])).unwrap();
        assert_eq!(r.found, [PathBuf::from("/")]);
        assert!(r.selection().unwrap().is_all());
    }
}
