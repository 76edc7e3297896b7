//! PBS's prune semantics, case by case.

use chrono::{FixedOffset, Utc};
use stowage_format::manifest::MANIFEST_BLOB_NAME;

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
    let (dir, store) = crate::test_store();
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
