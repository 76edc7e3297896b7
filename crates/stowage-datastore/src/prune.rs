//! Prune: which snapshots of a group to keep, chosen exactly as Proxmox Backup Server chooses
//! them (`pbs-datastore/src/prune.rs`), and removing the others. Also the `.protected` marker,
//! which exempts a snapshot from prune and forget.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use chrono::TimeZone;
use stowage_format::manifest::MANIFEST_BLOB_NAME;
use stowage_types::{BackupGroup, SnapshotRef};

use crate::lock::GroupLock;
use crate::{fsutil, Datastore, DatastoreError};

/// The name of the empty marker file that protects a snapshot.
const PROTECTED_MARKER: &str = ".protected";

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

    /// Removes a snapshot, finished or not; the caller holds the group's lock. Refused for
    /// protected snapshots.
    pub(crate) fn forget_locked(&self, snapshot: &SnapshotRef) -> Result<(), DatastoreError> {
        let dir = self.snapshot_dir(snapshot);
        if !dir.is_dir() {
            return Err(DatastoreError::SnapshotNotFound(snapshot.to_string()));
        }
        if dir.join(PROTECTED_MARKER).exists() {
            return Err(DatastoreError::Protected(snapshot.to_string()));
        }
        // Remove the manifest first: from then on the snapshot is unfinished, never half-listed.
        let manifest = dir.join(MANIFEST_BLOB_NAME);
        match fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(DatastoreError::write(&manifest)(e)),
        }
        fs::remove_dir_all(&dir).map_err(DatastoreError::write(&dir))
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
        let marker = dir.join(PROTECTED_MARKER);
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
mod tests {
    use chrono::{FixedOffset, Utc};

    use super::PruneMark::{KeepPartial, Protected, Remove};
    use super::PruneRule::{Daily, Hourly, Last, Monthly, Weekly, Yearly};
    use super::*;

    /// Unix seconds of a UTC date and time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp()
    }

    fn done(time: i64) -> PruneCandidate {
        PruneCandidate {
            time,
            finished: true,
            protected: false,
        }
    }

    fn protected(time: i64) -> PruneCandidate {
        PruneCandidate {
            protected: true,
            ..done(time)
        }
    }

    fn unfinished(time: i64) -> PruneCandidate {
        PruneCandidate {
            finished: false,
            ..done(time)
        }
    }

    #[allow(non_snake_case)]
    fn Keep(rule: PruneRule) -> PruneMark {
        PruneMark::Keep(Some(rule))
    }

    /// Runs the selection in UTC on `list` (newest first, as written in the tests) and in the
    /// reverse order, and checks both give `expected`.
    #[track_caller]
    fn check(list: &[PruneCandidate], options: PruneOptions, expected: &[PruneMark]) {
        assert_eq!(select_prune(list, &options, &Utc), expected);
        let reversed: Vec<PruneCandidate> = list.iter().rev().copied().collect();
        let mut expected_reversed = expected.to_vec();
        expected_reversed.reverse();
        assert_eq!(
            select_prune(&reversed, &options, &Utc),
            expected_reversed,
            "oldest-first input"
        );
    }

    #[test]
    fn keep_last_only() {
        let list: Vec<_> = (0..5).rev().map(|i| done(at(2020, 1, 1, 10, i))).collect();
        let options = PruneOptions {
            keep_last: Some(3),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[Keep(Last), Keep(Last), Keep(Last), Remove, Remove],
        );
        let options = PruneOptions {
            keep_last: Some(10),
            ..Default::default()
        };
        check(&list, options, &[Keep(Last); 5]);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let list = [
            done(at(2020, 1, 3, 10, 0)),
            done(at(2020, 1, 2, 20, 0)),
            done(at(2020, 1, 2, 9, 0)),
            done(at(2020, 1, 1, 18, 0)),
            done(at(2020, 1, 1, 12, 0)),
            done(at(2020, 1, 1, 8, 0)),
        ];
        let options = PruneOptions {
            keep_daily: Some(2),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[Keep(Daily), Keep(Daily), Remove, Remove, Remove, Remove],
        );
        let options = PruneOptions {
            keep_daily: Some(3),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[
                Keep(Daily),
                Keep(Daily),
                Remove,
                Keep(Daily),
                Remove,
                Remove,
            ],
        );
    }

    #[test]
    fn hourly_keeps_the_newest_of_each_hour() {
        let list = [
            done(at(2020, 1, 1, 11, 30)),
            done(at(2020, 1, 1, 11, 0)),
            done(at(2020, 1, 1, 10, 59)),
            done(at(2020, 1, 1, 10, 1)),
            done(at(2019, 12, 31, 10, 30)),
        ];
        let options = PruneOptions {
            keep_hourly: Some(3),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[Keep(Hourly), Remove, Keep(Hourly), Remove, Keep(Hourly)],
        );
    }

    #[test]
    fn weekly_uses_the_iso_week_year() {
        // 2020-12-28 (Mon) to 2021-01-03 (Sun) are all ISO week 2020/53; 2021-01-04 starts
        // 2021/01; 2020-12-27 (Sun) is 2020/52.
        let list = [
            done(at(2021, 1, 4, 12, 0)),
            done(at(2021, 1, 3, 12, 0)),
            done(at(2021, 1, 1, 12, 0)),
            done(at(2020, 12, 31, 12, 0)),
            done(at(2020, 12, 28, 12, 0)),
            done(at(2020, 12, 27, 12, 0)),
        ];
        let options = PruneOptions {
            keep_weekly: Some(3),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[
                Keep(Weekly),
                Keep(Weekly),
                Remove,
                Remove,
                Remove,
                Keep(Weekly),
            ],
        );
        let options = PruneOptions {
            keep_weekly: Some(2),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[Keep(Weekly), Keep(Weekly), Remove, Remove, Remove, Remove],
        );
    }

    #[test]
    fn monthly_and_yearly() {
        let list = [
            done(at(2021, 1, 20, 0, 0)),
            done(at(2021, 1, 5, 0, 0)),
            done(at(2020, 7, 10, 0, 0)),
            done(at(2020, 3, 20, 0, 0)),
            done(at(2020, 3, 1, 0, 0)),
            done(at(2019, 12, 15, 0, 0)),
            done(at(2019, 6, 1, 0, 0)),
        ];
        let monthly = PruneOptions {
            keep_monthly: Some(3),
            ..Default::default()
        };
        check(
            &list,
            monthly,
            &[
                Keep(Monthly),
                Remove,
                Keep(Monthly),
                Keep(Monthly),
                Remove,
                Remove,
                Remove,
            ],
        );
        let yearly = PruneOptions {
            keep_yearly: Some(2),
            ..Default::default()
        };
        check(
            &list,
            yearly,
            &[
                Keep(Yearly),
                Remove,
                Keep(Yearly),
                Remove,
                Remove,
                Remove,
                Remove,
            ],
        );
        // Yearly skips 2021 and 2020, which monthly already kept a snapshot in, and keeps two
        // more years; a second 2019 snapshot is then removed.
        let both = PruneOptions {
            keep_monthly: Some(2),
            keep_yearly: Some(2),
            ..Default::default()
        };
        check(
            &list,
            both,
            &[
                Keep(Monthly),
                Remove,
                Keep(Monthly),
                Remove,
                Remove,
                Keep(Yearly),
                Remove,
            ],
        );
    }

    #[test]
    fn later_rules_skip_periods_kept_by_earlier_ones() {
        let list = [
            done(at(2020, 1, 3, 10, 0)),
            done(at(2020, 1, 3, 8, 0)),
            done(at(2020, 1, 2, 20, 0)),
            done(at(2020, 1, 2, 9, 0)),
            done(at(2020, 1, 1, 12, 0)),
            done(at(2019, 12, 31, 12, 0)),
        ];
        // keep-last takes 01-03 10:00; daily then skips the rest of 01-03 (left unmarked, so
        // removed) and keeps two further days.
        let options = PruneOptions {
            keep_last: Some(1),
            keep_daily: Some(2),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[Keep(Last), Remove, Keep(Daily), Remove, Keep(Daily), Remove],
        );
        // An earlier rule's `Remove` is final: weekly keeps 04-02 and removes 03-30 (same ISO
        // week 2021/13), so monthly cannot take 03-30 for March and keeps 03-10 instead.
        let list = [
            done(at(2021, 4, 2, 12, 0)),
            done(at(2021, 3, 30, 12, 0)),
            done(at(2021, 3, 10, 12, 0)),
            done(at(2021, 2, 10, 12, 0)),
        ];
        let options = PruneOptions {
            keep_weekly: Some(1),
            keep_monthly: Some(2),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[Keep(Weekly), Remove, Keep(Monthly), Keep(Monthly)],
        );
        // All six rules at once.
        let list = [
            done(at(2021, 3, 1, 12, 30)),
            done(at(2021, 3, 1, 12, 10)),
            done(at(2021, 3, 1, 11, 0)),
            done(at(2021, 2, 27, 11, 0)),
            done(at(2021, 2, 20, 11, 0)),
            done(at(2021, 1, 10, 11, 0)),
            done(at(2020, 5, 10, 11, 0)),
            done(at(2019, 5, 10, 11, 0)),
        ];
        let options = PruneOptions {
            keep_last: Some(1),
            keep_hourly: Some(1),
            keep_daily: Some(1),
            keep_weekly: Some(1),
            keep_monthly: Some(1),
            keep_yearly: Some(1),
        };
        check(
            &list,
            options,
            &[
                Keep(Last),
                Remove,
                Keep(Hourly),
                Keep(Daily),
                Keep(Weekly),
                Keep(Monthly),
                Keep(Yearly),
                Remove,
            ],
        );
    }

    #[test]
    fn protected_snapshots_take_no_slot() {
        let list = [
            protected(at(2020, 1, 1, 10, 5)),
            done(at(2020, 1, 1, 10, 4)),
            protected(at(2020, 1, 1, 10, 3)),
            done(at(2020, 1, 1, 10, 2)),
            done(at(2020, 1, 1, 10, 1)),
            protected(at(2020, 1, 1, 10, 0)),
        ];
        let options = PruneOptions {
            keep_last: Some(2),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[
                Protected,
                Keep(Last),
                Protected,
                Keep(Last),
                Remove,
                Protected,
            ],
        );
        // A protected snapshot does not take its day either.
        let list = [
            protected(at(2020, 1, 2, 20, 0)),
            done(at(2020, 1, 2, 9, 0)),
            done(at(2020, 1, 1, 9, 0)),
        ];
        let options = PruneOptions {
            keep_daily: Some(1),
            ..Default::default()
        };
        check(&list, options, &[Protected, Keep(Daily), Remove]);
        // Protected even when no rule runs, and when unfinished.
        let list = [protected(at(2020, 1, 2, 0, 0)), done(at(2020, 1, 1, 0, 0))];
        let options = PruneOptions {
            keep_last: Some(0),
            ..Default::default()
        };
        check(&list, options, &[Protected, PruneMark::Keep(None)]);
        let list = [
            PruneCandidate {
                protected: true,
                ..unfinished(at(2020, 1, 3, 0, 0))
            },
            done(at(2020, 1, 2, 0, 0)),
        ];
        let options = PruneOptions {
            keep_last: Some(1),
            ..Default::default()
        };
        check(&list, options, &[Protected, Keep(Last)]);
    }

    #[test]
    fn unfinished_snapshots() {
        // The newest, unfinished: kept partial; an older unfinished one: removed. Neither takes a
        // keep-last slot.
        let list = [
            unfinished(at(2020, 1, 1, 10, 5)),
            done(at(2020, 1, 1, 10, 4)),
            unfinished(at(2020, 1, 1, 10, 3)),
            done(at(2020, 1, 1, 10, 2)),
            done(at(2020, 1, 1, 10, 1)),
        ];
        let options = PruneOptions {
            keep_last: Some(2),
            ..Default::default()
        };
        check(
            &list,
            options,
            &[KeepPartial, Keep(Last), Remove, Keep(Last), Remove],
        );
        // Two unfinished at the top: only the newest is kept.
        let list = [
            unfinished(at(2020, 1, 1, 10, 5)),
            unfinished(at(2020, 1, 1, 10, 4)),
            done(at(2020, 1, 1, 10, 3)),
        ];
        check(&list, options, &[KeepPartial, Remove, Keep(Last)]);
        // A finished snapshot newer than every unfinished one: all unfinished are removed.
        let list = [
            done(at(2020, 1, 1, 10, 5)),
            unfinished(at(2020, 1, 1, 10, 4)),
            done(at(2020, 1, 1, 10, 3)),
        ];
        check(&list, options, &[Keep(Last), Remove, Keep(Last)]);
    }

    #[test]
    fn no_rule_keeps_everything() {
        let list = [
            unfinished(at(2020, 1, 1, 10, 5)),
            done(at(2020, 1, 1, 10, 4)),
            unfinished(at(2020, 1, 1, 10, 3)),
            protected(at(2020, 1, 1, 10, 2)),
            done(at(2020, 1, 1, 10, 1)),
        ];
        let options = PruneOptions::default();
        assert!(!options.keeps_something());
        check(
            &list,
            options,
            &[
                KeepPartial,
                PruneMark::Keep(None),
                PruneMark::Keep(None),
                Protected,
                PruneMark::Keep(None),
            ],
        );
        assert!(select_prune(&[], &options, &Utc).is_empty());
    }

    #[test]
    fn periods_follow_the_time_zone() {
        // 13:00 and 15:00 UTC on 2020-06-01 are one day in UTC, but 23:00 on 06-01 and 01:00 on
        // 06-02 at UTC+10.
        let list = [done(at(2020, 6, 1, 15, 0)), done(at(2020, 6, 1, 13, 0))];
        let options = PruneOptions {
            keep_daily: Some(2),
            ..Default::default()
        };
        assert_eq!(select_prune(&list, &options, &Utc), [Keep(Daily), Remove]);
        let plus10 = FixedOffset::east_opt(10 * 3600).unwrap();
        assert_eq!(
            select_prune(&list, &options, &plus10),
            [Keep(Daily), Keep(Daily)]
        );
        // And the other way round: two UTC days, one day at UTC-5.
        let list = [done(at(2020, 6, 2, 1, 0)), done(at(2020, 6, 1, 23, 0))];
        assert_eq!(
            select_prune(&list, &options, &Utc),
            [Keep(Daily), Keep(Daily)]
        );
        let minus5 = FixedOffset::west_opt(5 * 3600).unwrap();
        assert_eq!(
            select_prune(&list, &options, &minus5),
            [Keep(Daily), Remove]
        );
    }

    /// A datastore in a temporary directory (tmpfs when there is one) with hand-made snapshot
    /// directories of `vm/100`: finished ones get a (fake) manifest file.
    fn store_with(snapshots: &[(i64, bool)]) -> (tempfile::TempDir, Datastore, BackupGroup) {
        let dir = tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let store = Datastore::create(&dir.path().join("store")).unwrap();
        let group = BackupGroup::new(stowage_types::BackupType::Vm, "100").unwrap();
        for &(time, finished) in snapshots {
            let snap = snap_ref(&group, time);
            let path = store.snapshot_dir(&snap);
            fs::create_dir_all(&path).unwrap();
            fs::write(path.join("drive-scsi0.img.fidx"), b"x").unwrap();
            if finished {
                fs::write(path.join(MANIFEST_BLOB_NAME), b"x").unwrap();
            }
        }
        (dir, store, group)
    }

    fn snap_ref(group: &BackupGroup, time: i64) -> SnapshotRef {
        SnapshotRef::new(
            group.clone(),
            stowage_types::BackupTime::from_epoch(time).unwrap(),
        )
    }

    #[test]
    fn prune_removes_marked_snapshots_and_respects_protection() {
        let t = |i: i64| 1_700_000_000 + i * 100;
        let (_dir, store, group) = store_with(&[
            (t(0), true),
            (t(1), true),
            (t(2), false),
            (t(3), true),
            (t(4), true),
        ]);
        store.set_protected(&snap_ref(&group, t(0)), true).unwrap();
        assert!(store
            .snapshot_dir(&snap_ref(&group, t(0)))
            .join(".protected")
            .is_file());
        let options = PruneOptions {
            keep_last: Some(2),
            ..Default::default()
        };

        let marks = |items: &[PruneItem]| -> Vec<(i64, PruneMark)> {
            items
                .iter()
                .map(|i| (i.snapshot.time.epoch(), i.mark))
                .collect()
        };
        let expected = vec![
            (t(4), Keep(Last)),
            (t(3), Keep(Last)),
            (t(2), Remove),
            (t(1), Remove),
            (t(0), Protected),
        ];
        let dry = store.prune(&group, &options, true).unwrap();
        assert_eq!(marks(&dry), expected);
        assert_eq!(store.snapshots(&group).unwrap().len(), 5);

        let real = store.prune(&group, &options, false).unwrap();
        assert_eq!(marks(&real), expected);
        assert!(real.iter().all(|i| i.error.is_none()));
        let left: Vec<i64> = store
            .snapshots(&group)
            .unwrap()
            .iter()
            .map(|s| s.snapshot.time.epoch())
            .collect();
        assert_eq!(left, vec![t(0), t(3), t(4)]);

        // The protected one refuses forget until unprotected.
        let oldest = snap_ref(&group, t(0));
        assert!(matches!(
            store.forget(&oldest),
            Err(DatastoreError::Protected(_))
        ));
        store.set_protected(&oldest, false).unwrap();
        store.set_protected(&oldest, false).unwrap();
        store.forget(&oldest).unwrap();
        assert!(!store.snapshot_dir(&oldest).exists());

        // No rule: nothing is removed.
        let all = store
            .prune(&group, &PruneOptions::default(), false)
            .unwrap();
        assert_eq!(
            marks(&all),
            vec![(t(4), PruneMark::Keep(None)), (t(3), PruneMark::Keep(None))]
        );
        assert_eq!(store.snapshots(&group).unwrap().len(), 2);

        // Unknown snapshots and groups.
        assert!(matches!(
            store.set_protected(&snap_ref(&group, t(9)), true),
            Err(DatastoreError::SnapshotNotFound(_))
        ));
        let other = BackupGroup::new(stowage_types::BackupType::Ct, "7").unwrap();
        assert!(matches!(
            store.prune(&other, &options, false),
            Err(DatastoreError::GroupNotFound(_))
        ));
    }

    #[test]
    fn forget_removes_unfinished_snapshots() {
        let t = 1_700_000_000;
        let (_dir, store, group) = store_with(&[(t, false)]);
        let snap = snap_ref(&group, t);
        store.forget(&snap).unwrap();
        assert!(!store.snapshot_dir(&snap).exists());
        assert!(matches!(
            store.forget(&snap),
            Err(DatastoreError::SnapshotNotFound(_))
        ));
    }
}
