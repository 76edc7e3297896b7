//! Prune: which snapshots of a group to keep, chosen exactly as Proxmox Backup Server chooses
//! them (`pbs-datastore/src/prune.rs`), and removing the others. Also the `.protected` marker,
//! which exempts a snapshot from prune and forget.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use chrono::TimeZone;
use stowage_types::{BackupGroup, SnapshotRef};

use crate::lock::GroupLock;
use crate::{fsutil, Datastore, DatastoreError};

/// How many snapshots (last) or periods (hourly ... yearly) to keep. `None` leaves a rule out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOptions {
    pub keep_last: Option<u64>,
    pub keep_hourly: Option<u64>,
    pub keep_daily: Option<u64>,
    pub keep_weekly: Option<u64>,
    pub keep_monthly: Option<u64>,
    pub keep_yearly: Option<u64>,
}

impl PruneOptions {
    /// Whether any rule keeps anything. If none does, prune keeps every snapshot.
    pub fn keeps_something(&self) -> bool {
        self.rules().any(|(_, count)| count > 0)
    }

    /// The rules that are set, in the order PBS applies them.
    fn rules(&self) -> impl Iterator<Item = (PruneRule, u64)> {
        [
            (PruneRule::Last, self.keep_last),
            (PruneRule::Hourly, self.keep_hourly),
            (PruneRule::Daily, self.keep_daily),
            (PruneRule::Weekly, self.keep_weekly),
            (PruneRule::Monthly, self.keep_monthly),
            (PruneRule::Yearly, self.keep_yearly),
        ]
        .into_iter()
        .filter_map(|(rule, count)| count.map(|c| (rule, c)))
    }
}

/// One keep rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneRule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl PruneRule {
    pub fn as_str(&self) -> &'static str {
        match self {
            PruneRule::Last => "last",
            PruneRule::Hourly => "hourly",
            PruneRule::Daily => "daily",
            PruneRule::Weekly => "weekly",
            PruneRule::Monthly => "monthly",
            PruneRule::Yearly => "yearly",
        }
    }

    /// The strftime format of the rule's period; `None` for `last`, where each snapshot is its
    /// own period.
    fn period_format(self) -> Option<&'static str> {
        match self {
            PruneRule::Last => None,
            PruneRule::Hourly => Some("%Y/%m/%d/%H"),
            PruneRule::Daily => Some("%Y/%m/%d"),
            PruneRule::Weekly => Some("%G/%V"),
            PruneRule::Monthly => Some("%Y/%m"),
            PruneRule::Yearly => Some("%Y"),
        }
    }
}

impl fmt::Display for PruneRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What prune does with one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMark {
    /// Kept by this rule; by no rule when no keep option is set (then everything is kept).
    Keep(Option<PruneRule>),
    Remove,
    /// Protected: always kept, and never counted against a rule.
    Protected,
    /// The newest snapshot of the group is unfinished (a backup crashed or is running): kept.
    KeepPartial,
}

impl PruneMark {
    pub fn keep(&self) -> bool {
        !matches!(self, PruneMark::Remove)
    }

    pub fn protected(&self) -> bool {
        matches!(self, PruneMark::Protected)
    }

    /// The rule that kept the snapshot, if one did.
    pub fn rule(&self) -> Option<PruneRule> {
        match self {
            PruneMark::Keep(rule) => *rule,
            _ => None,
        }
    }

    /// PBS's words: `keep`, `remove`, `protected`, `keep-partial`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PruneMark::Keep(_) => "keep",
            PruneMark::Remove => "remove",
            PruneMark::Protected => "protected",
            PruneMark::KeepPartial => "keep-partial",
        }
    }
}

impl fmt::Display for PruneMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One snapshot of a group as the selection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneCandidate {
    /// Backup time, Unix seconds.
    pub time: i64,
    /// The manifest is in place.
    pub finished: bool,
    pub protected: bool,
}

/// The period of `time` under `rule`, in time zone `tz`.
fn period_key<Tz>(rule: PruneRule, time: i64, tz: &Tz) -> String
where
    Tz: TimeZone,
    Tz::Offset: fmt::Display,
{
    let Some(format) = rule.period_format() else {
        return time.to_string();
    };
    match tz.timestamp_opt(time, 0).single() {
        Some(t) => t.format(format).to_string(),
        // Out of chrono's range (not a valid backup time): its own period.
        None => format!("@{time}"),
    }
}

/// Marks the snapshots of one group, as PBS's `compute_prune_info` does; one mark per input
/// snapshot, in input order. Periods (hour, day, ISO week, month, year) are taken in time zone
/// `tz`: PBS uses the server's local time, so production passes [`chrono::Local`].
///
/// Newest first: the newest snapshot, if unfinished, is `KeepPartial` and every other unfinished
/// one `Remove`. Then each rule in turn (last, hourly, daily, weekly, monthly, yearly) keeps the
/// newest snapshot of each of its `count` newest periods, skipping snapshots already marked,
/// protected ones (which never take a slot) and periods an earlier rule already kept a snapshot
/// in; a second snapshot of a period the rule took is `Remove`. Whatever is left is `Remove`.
/// With no rule set, everything is kept.
pub fn select_prune<Tz>(
    snapshots: &[PruneCandidate],
    options: &PruneOptions,
    tz: &Tz,
) -> Vec<PruneMark>
where
    Tz: TimeZone,
    Tz::Offset: fmt::Display,
{
    let mut order: Vec<usize> = (0..snapshots.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(snapshots[i].time));
    let mut marks: Vec<Option<PruneMark>> = vec![None; snapshots.len()];

    let mut keep_unfinished = true;
    for &i in &order {
        if !snapshots[i].finished {
            marks[i] = Some(if keep_unfinished {
                PruneMark::KeepPartial
            } else {
                PruneMark::Remove
            });
        }
        // Only the very newest snapshot may be kept unfinished.
        keep_unfinished = false;
    }

    for (rule, count) in options.rules() {
        let key = |i: usize| period_key(rule, snapshots[i].time, tz);
        let kept_before: HashSet<String> = order
            .iter()
            .filter(|&&i| matches!(marks[i], Some(PruneMark::Keep(_))))
            .map(|&i| key(i))
            .collect();
        let mut taken: HashSet<String> = HashSet::new();
        for &i in &order {
            if marks[i].is_some() {
                continue;
            }
            if snapshots[i].protected {
                marks[i] = Some(PruneMark::Protected);
                continue;
            }
            let period = key(i);
            if kept_before.contains(&period) {
                continue;
            }
            if taken.contains(&period) {
                marks[i] = Some(PruneMark::Remove);
            } else {
                if taken.len() as u64 >= count {
                    break;
                }
                taken.insert(period);
                marks[i] = Some(PruneMark::Keep(Some(rule)));
            }
        }
    }

    let keep_all = !options.keeps_something();
    marks
        .into_iter()
        .zip(snapshots)
        .map(|(mark, s)| match mark.unwrap_or(PruneMark::Remove) {
            _ if s.protected => PruneMark::Protected,
            PruneMark::Remove if keep_all => PruneMark::Keep(None),
            mark => mark,
        })
        .collect()
}

/// One snapshot of a prune run and what became of it.
#[derive(Debug)]
pub struct PruneItem {
    pub snapshot: SnapshotRef,
    pub mark: PruneMark,
    /// Why removing it failed (only for `Remove` marks of a real run).
    pub error: Option<DatastoreError>,
}

impl Datastore {
    /// Prunes one group: marks each snapshot (see [`select_prune`], periods in local time) and,
    /// unless `dry_run`, removes the `Remove` ones, oldest first, holding the group's lock. A
    /// failed removal is recorded in its item and does not stop the others. Items are newest
    /// first.
    pub fn prune(
        &self,
        group: &BackupGroup,
        options: &PruneOptions,
        dry_run: bool,
    ) -> Result<Vec<PruneItem>, DatastoreError> {
        let group_dir = self.group_dir(group);
        if !group_dir.is_dir() {
            return Err(DatastoreError::GroupNotFound(group.to_string()));
        }
        let removing = !dry_run && options.keeps_something();
        // A dry run only reads: it may run beside a backup (whose snapshot shows keep-partial).
        let _lock = if removing {
            Some(GroupLock::acquire(&group_dir, &group.to_string())?)
        } else {
            None
        };
        let mut infos = self.snapshots(group)?;
        infos.reverse();
        let candidates: Vec<PruneCandidate> = infos
            .iter()
            .map(|s| PruneCandidate {
                time: s.snapshot.time.epoch(),
                finished: s.finished,
                protected: s.protected,
            })
            .collect();
        let marks = select_prune(&candidates, options, &chrono::Local);
        let mut items: Vec<PruneItem> = infos
            .into_iter()
            .zip(marks)
            .map(|(info, mark)| PruneItem {
                snapshot: info.snapshot,
                mark,
                error: None,
            })
            .collect();
        if removing {
            for item in items.iter_mut().rev() {
                if item.mark == PruneMark::Remove {
                    item.error = self.forget_locked(&item.snapshot).err();
                }
            }
        }
        Ok(items)
    }

    /// Protects a snapshot from prune and forget (creates the empty `.protected` marker,
    /// durably), or lifts the protection (removes it). Takes the group's lock, so it waits for
    /// no one: it is refused while a backup, forget or prune of the group runs.
    pub fn set_protected(
        &self,
        snapshot: &SnapshotRef,
        protected: bool,
    ) -> Result<(), DatastoreError> {
        let dir = self.snapshot_dir(snapshot);
        if !dir.is_dir() {
            return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
        }
        let _lock = GroupLock::acquire(
            &self.group_dir(&snapshot.group),
            &snapshot.group.to_string(),
        )?;
        if !dir.is_dir() {
            return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
        }
        let marker = dir.join(crate::snapshots::PROTECTED_MARKER);
        if protected {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&marker)
                .map_err(DatastoreError::write(&marker))?;
            file.sync_all().map_err(DatastoreError::write(&marker))?;
        } else {
            match fs::remove_file(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(DatastoreError::write(&marker)(e)),
            }
        }
        fsutil::fsync_dir(&dir).map_err(DatastoreError::write(&dir))
    }
}

#[cfg(test)]
mod tests;
