//! Creating, listing and removing namespaces (`ns/a/ns/b` below the datastore).

use std::fs;
use std::io;

use stowage_types::{BackupNamespace, MAX_NAMESPACE_DEPTH};

use crate::lock::GroupLock;
use crate::snapshots::visible_names;
use crate::{fsutil, Datastore, DatastoreError};

impl Datastore {
    /// Creates namespace `ns`; its parent must exist.
    pub fn create_namespace(&self, ns: &BackupNamespace) -> Result<(), DatastoreError> {
        let Some(parent) = ns.parent() else {
            return Err(DatastoreError::NamespaceExists(String::new()));
        };
        let parent_dir = self.base().join(parent.relative_path());
        if !parent_dir.is_dir() {
            return Err(DatastoreError::NamespaceNotFound(parent.to_string()));
        }
        let ns_root = parent_dir.join("ns");
        fs::create_dir_all(&ns_root).map_err(DatastoreError::write(&ns_root))?;
        let dir = self.base().join(ns.relative_path());
        match fs::create_dir(&dir) {
            Ok(()) => fsutil::fsync_dir(&ns_root).map_err(DatastoreError::write(&ns_root)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(DatastoreError::NamespaceExists(ns.to_string()))
            }
            Err(e) => Err(DatastoreError::write(&dir)(e)),
        }
    }

    /// `from` and every namespace below it, at most `max_depth` levels down, parents first.
    pub fn list_namespaces(
        &self,
        from: &BackupNamespace,
        max_depth: Option<usize>,
    ) -> Result<Vec<BackupNamespace>, DatastoreError> {
        if !self.base().join(from.relative_path()).is_dir() {
            return Err(DatastoreError::NamespaceNotFound(from.to_string()));
        }
        let limit = max_depth.unwrap_or(MAX_NAMESPACE_DEPTH);
        let mut out = vec![from.clone()];
        let mut i = 0;
        while i < out.len() {
            let ns = out[i].clone();
            i += 1;
            if ns.depth() - from.depth() >= limit {
                continue;
            }
            let dir = self.base().join(ns.relative_path()).join("ns");
            let mut names = visible_names(&dir)?;
            names.sort();
            for name in names {
                if let Ok(child) = ns.child(&name) {
                    out.push(child);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every namespace of the datastore, the root first.
    pub fn all_namespaces(&self) -> Result<Vec<BackupNamespace>, DatastoreError> {
        self.list_namespaces(&BackupNamespace::root(), None)
    }

    /// Removes namespace `ns` and the namespaces below it. Refused while any of them holds a
    /// group, unless `delete_groups`, and then still refused for protected snapshots. The root
    /// cannot be removed.
    pub fn remove_namespace(
        &self,
        ns: &BackupNamespace,
        delete_groups: bool,
    ) -> Result<(), DatastoreError> {
        if ns.is_root() {
            return Err(DatastoreError::NamespaceNotEmpty {
                ns: String::new(),
                detail: "the root namespace cannot be removed".into(),
            });
        }
        let all = self.list_namespaces(ns, None)?;
        // Check everything before removing anything.
        for child in &all {
            let view = self.in_namespace(child)?;
            let groups = view.groups()?;
            if !groups.is_empty() && !delete_groups {
                return Err(DatastoreError::NamespaceNotEmpty {
                    ns: child.to_string(),
                    detail: format!(
                        "it holds {} group(s) such as {}; remove them first or pass --delete-groups",
                        groups.len(),
                        groups[0]
                    ),
                });
            }
            for group in &groups {
                if let Some(p) = view.snapshots(group)?.into_iter().find(|s| s.protected) {
                    return Err(DatastoreError::Protected(format!(
                        "[{child}]:{}",
                        p.snapshot
                    )));
                }
            }
        }
        // Deepest first, so each directory is empty of namespaces when it goes.
        for child in all.iter().rev() {
            let view = self.in_namespace(child)?;
            for group in &view.groups()? {
                view.remove_group(group)?;
            }
            let dir = self.base().join(child.relative_path());
            for sub in ["ns", "vm", "ct", "host"] {
                let path = dir.join(sub);
                match fs::remove_dir(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(DatastoreError::write(&path)(e)),
                }
            }
            fs::remove_dir(&dir).map_err(|e| {
                if e.kind() == io::ErrorKind::DirectoryNotEmpty {
                    DatastoreError::NamespaceNotEmpty {
                        ns: child.to_string(),
                        detail: format!("{} holds files stowage does not know", dir.display()),
                    }
                } else {
                    DatastoreError::write(&dir)(e)
                }
            })?;
        }
        Ok(())
    }

    /// Removes every snapshot of a group and then the group; refused if any snapshot is
    /// protected or a backup of the group runs.
    pub fn remove_group(&self, group: &stowage_types::BackupGroup) -> Result<(), DatastoreError> {
        let dir = self.group_dir(group);
        let _lock = GroupLock::acquire(&dir, &group.to_string())?;
        let snapshots = self.snapshots(group)?;
        if let Some(p) = snapshots.iter().find(|s| s.protected) {
            return Err(DatastoreError::Protected(p.snapshot.to_string()));
        }
        for s in &snapshots {
            self.forget_locked(&s.snapshot)?;
        }
        fs::remove_dir_all(&dir).map_err(DatastoreError::write(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_store as store;

    fn ns(s: &str) -> BackupNamespace {
        s.parse().unwrap()
    }

    #[test]
    fn create_list_remove() {
        let (_d, ds) = store();
        assert!(matches!(
            ds.create_namespace(&ns("a/b")),
            Err(DatastoreError::NamespaceNotFound(_))
        ));
        ds.create_namespace(&ns("a")).unwrap();
        ds.create_namespace(&ns("a/b")).unwrap();
        ds.create_namespace(&ns("c")).unwrap();
        assert!(ds.base().join("ns/a/ns/b").is_dir());
        assert!(matches!(
            ds.create_namespace(&ns("a")),
            Err(DatastoreError::NamespaceExists(_))
        ));
        let all: Vec<String> = ds
            .all_namespaces()
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(all, ["", "a", "a/b", "c"]);
        let one_level = ds.list_namespaces(&ns("a"), Some(0)).unwrap();
        assert_eq!(one_level, vec![ns("a")]);

        let view = ds.in_namespace(&ns("a/b")).unwrap();
        let group: stowage_types::BackupGroup = "vm/1".parse().unwrap();
        let w = view.begin_backup(&group, None, "root@pam").unwrap();
        w.finish(Default::default()).unwrap();
        assert!(ds.base().join("ns/a/ns/b/vm/1").is_dir());
        assert!(ds.groups().unwrap().is_empty());
        assert_eq!(view.groups().unwrap(), vec![group]);

        assert!(matches!(
            ds.remove_namespace(&ns("a"), false),
            Err(DatastoreError::NamespaceNotEmpty { .. })
        ));
        ds.remove_namespace(&ns("a"), true).unwrap();
        assert!(!ds.base().join("ns/a").exists());
        assert!(matches!(
            ds.in_namespace(&ns("a")),
            Err(DatastoreError::NamespaceNotFound(_))
        ));
    }
}
