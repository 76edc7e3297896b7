use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::{is_safe_id, NameError};

/// `vm`, `ct` or `host`. The derived order (ct < host < vm) is the listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackupType {
    Ct,
    Host,
    Vm,
}

impl BackupType {
    pub const ALL: [BackupType; 3] = [BackupType::Ct, BackupType::Host, BackupType::Vm];

    pub fn as_str(&self) -> &'static str {
        match self {
            BackupType::Ct => "ct",
            BackupType::Host => "host",
            BackupType::Vm => "vm",
        }
    }
}

impl FromStr for BackupType {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vm" => Ok(BackupType::Vm),
            "ct" => Ok(BackupType::Ct),
            "host" => Ok(BackupType::Host),
            _ => Err(NameError::BackupType(s.to_string())),
        }
    }
}

impl serde::Serialize for BackupType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for BackupType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backup group: type and id, `vm/100`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupGroup {
    pub ty: BackupType,
    id: String,
}

impl BackupGroup {
    pub fn new(ty: BackupType, id: &str) -> Result<Self, NameError> {
        if !is_safe_id(id) || id.len() > 255 {
            return Err(NameError::BackupId(id.to_string()));
        }
        Ok(BackupGroup {
            ty,
            id: id.to_string(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl FromStr for BackupGroup {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ty, id) = s
            .split_once('/')
            .ok_or_else(|| NameError::Group(s.to_string()))?;
        BackupGroup::new(ty.parse()?, id)
    }
}

impl fmt::Display for BackupGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ty, self.id)
    }
}

/// A backup time: Unix seconds, shown as UTC RFC 3339 (`2026-11-22T10:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackupTime(i64);

/// 9999-12-31T23:59:59Z, the last time a four-digit year can show.
const MAX_EPOCH: i64 = 253_402_300_799;

impl BackupTime {
    pub fn from_epoch(epoch: i64) -> Result<Self, NameError> {
        if !(1..=MAX_EPOCH).contains(&epoch) {
            return Err(NameError::BackupTimeRange(epoch.to_string()));
        }
        Ok(BackupTime(epoch))
    }

    pub fn now() -> Self {
        BackupTime(Utc::now().timestamp().max(1))
    }

    pub fn epoch(&self) -> i64 {
        self.0
    }

    pub fn to_rfc3339(&self) -> String {
        DateTime::<Utc>::from_timestamp(self.0, 0)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    }
}

impl FromStr for BackupTime {
    type Err = NameError;

    /// Only the canonical form is accepted, so a parsed time prints back as the same name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NameError::BackupTime(s.to_string());
        let b = s.as_bytes();
        let shape_ok = b.len() == 20
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(bad());
        }
        let t = NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%dT%H:%M:%S").map_err(|_| bad())?;
        BackupTime::from_epoch(t.and_utc().timestamp())
            .map_err(|_| NameError::BackupTimeRange(s.to_string()))
    }
}

impl fmt::Display for BackupTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// One snapshot: `vm/100/2026-11-22T10:00:00Z`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotRef {
    pub group: BackupGroup,
    pub time: BackupTime,
}

impl SnapshotRef {
    pub fn new(group: BackupGroup, time: BackupTime) -> Self {
        SnapshotRef { group, time }
    }
}

impl FromStr for SnapshotRef {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NameError::Snapshot(s.to_string());
        let (group, time) = s.rsplit_once('/').ok_or_else(bad)?;
        let group: BackupGroup = group.parse().map_err(|_| bad())?;
        Ok(SnapshotRef {
            group,
            time: time.parse()?,
        })
    }
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trip() {
        let t: BackupTime = "2020-06-26T13:56:05Z".parse().unwrap();
        assert_eq!(t.epoch(), 1_593_179_765);
        assert_eq!(t.to_string(), "2020-06-26T13:56:05Z");
        for bad in [
            "2020-06-26T13:56:05",
            "2020-06-26 13:56:05Z",
            "2020-13-26T13:56:05Z",
            "2020-06-26T13:56:05+01:00",
            "1970-01-01T00:00:00Z",
            "",
        ] {
            assert!(bad.parse::<BackupTime>().is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshot_and_group_parse() {
        let s: SnapshotRef = "host/elsa/2020-06-26T13:56:05Z".parse().unwrap();
        assert_eq!(s.group.ty, BackupType::Host);
        assert_eq!(s.group.id(), "elsa");
        assert_eq!(s.to_string(), "host/elsa/2020-06-26T13:56:05Z");
        assert!("vm/../2020-06-26T13:56:05Z".parse::<SnapshotRef>().is_err());
        assert!("vm/100".parse::<SnapshotRef>().is_err());
        assert!("disk/1".parse::<BackupGroup>().is_err());
        assert!("vm/".parse::<BackupGroup>().is_err());
        assert!("vm/a/b".parse::<BackupGroup>().is_err());
        assert!(BackupType::Ct < BackupType::Host && BackupType::Host < BackupType::Vm);
    }
}
