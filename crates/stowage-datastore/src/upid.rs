//! PBS task ids (UPIDs), as stored in `verify_state` and `.gc-status`.

use std::fmt;
use std::str::FromStr;

/// A PBS task id: `UPID:<node>:<pid>:<pstart>:<task id>:<starttime>:<type>:<worker id>:<authid>:`
/// with the numbers in (at least) 8 upper-case hex digits and the worker id escaped as a systemd
/// unit name (`/` as `-`, other special bytes as `\xNN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub node: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot.
    pub pstart: u64,
    pub task_id: u64,
    /// Start time of the task, Unix seconds.
    pub starttime: i64,
    pub worker_type: String,
    /// Unescaped.
    pub worker_id: String,
    pub auth_id: String,
}

impl Upid {
    /// A task of this process (host name, pid, process start, task id 0, the user as
    /// `<user>@pam`) of type `worker_type` for `worker_id`, starting now.
    pub fn new(worker_type: &str, worker_id: &str) -> Upid {
        Upid {
            node: node_name(),
            pid: std::process::id(),
            pstart: process_start_ticks(),
            task_id: 0,
            starttime: unix_now(),
            worker_type: worker_type.into(),
            worker_id: worker_id.into(),
            auth_id: auth_id(),
        }
    }

    /// A verify task of this process for `worker_id`, started at `starttime`.
    pub fn verify(worker_id: &str, starttime: i64) -> Upid {
        Upid {
            starttime,
            ..Upid::new("verify", worker_id)
        }
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UPID:{}:{:08X}:{:08X}:{:08X}:{:08X}:{}:{}:{}:",
            self.node,
            self.pid,
            self.pstart,
            self.task_id,
            self.starttime,
            self.worker_type,
            escape_unit(&self.worker_id),
            self.auth_id
        )
    }
}

impl FromStr for Upid {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("not a UPID: '{s}'");
        let body = s
            .strip_prefix("UPID:")
            .and_then(|b| b.strip_suffix(':'))
            .ok_or_else(bad)?;
        let parts: Vec<&str> = body.split(':').collect();
        let [node, pid, pstart, task_id, starttime, wtype, wid, authid] = parts[..] else {
            return Err(bad());
        };
        let hex = |t: &str| {
            (t.len() >= 8 && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u64::from_str_radix(t, 16).ok())
                .flatten()
                .ok_or_else(bad)
        };
        let plain = |t: &str| !t.is_empty() && !t.contains(char::is_whitespace);
        if !plain(node) || !plain(wtype) || !plain(authid) || wid.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Upid {
            node: node.into(),
            pid: u32::try_from(hex(pid)?).map_err(|_| bad())?,
            pstart: hex(pstart)?,
            task_id: hex(task_id)?,
            starttime: i64::try_from(hex(starttime)?).map_err(|_| bad())?,
            worker_type: wtype.into(),
            worker_id: unescape_unit(wid),
            auth_id: authid.into(),
        })
    }
}

/// The start time (Unix seconds) of the task a UPID names; `None` if `upid` is not one.
pub fn upid_start_time(upid: &str) -> Option<i64> {
    upid.parse::<Upid>().ok().map(|u| u.starttime)
}

/// systemd's unit-name escaping as PBS uses it for worker ids (not the path variant).
fn escape_unit(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b == b'/' {
            out.push('-');
        } else if (i == 0 && b == b'.') || !(b == b'_' || b == b'.' || b.is_ascii_alphanumeric()) {
            out.push_str(&format!("\\x{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

fn unescape_unit(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i..i + 4)
            .filter(|e| e.starts_with(b"\\x"))
            .and_then(|e| std::str::from_utf8(&e[2..]).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b'-', None) => {
                out.push(b'/');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host name up to its first dot, as PBS names its node; `localhost` if it is unusable.
fn node_name() -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let node = name.split('.').next().unwrap_or_default();
    let valid = !node.is_empty()
        && node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !node.starts_with('-')
        && !node.ends_with('-');
    if valid {
        node.to_string()
    } else {
        "localhost".to_string()
    }
}

/// Field 22 of `/proc/self/stat`: when this process started, in clock ticks since boot.
fn process_start_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Field 2 (the command name) is in parentheses and may hold spaces: count after it.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(22 - 3))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// `<user>@pam`, as backups record their owner; `root@pam` when the user is unknown.
fn auth_id() -> String {
    match std::env::var("USER") {
        Ok(user)
            if !user.is_empty()
                && !user.contains(|c: char| c == ':' || c == '@' || c.is_whitespace()) =>
        {
            format!("{user}@pam")
        }
        _ => "root@pam".into(),
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_round_trip() {
        let upid = Upid::verify("vm/100/2023-11-14T22:13:20Z", 1_700_000_000);
        let text = upid.to_string();
        assert!(text.starts_with(&format!("UPID:{}:", upid.node)), "{text}");
        assert!(
            text.ends_with(&format!(
                ":00000000:6553F100:verify:vm-100-2023\\x2d11\\x2d14T22\\x3a13\\x3a20Z:{}:",
                upid.auth_id
            )),
            "{text}"
        );
        assert_eq!(text.split(':').count(), 10, "{text}");
        assert_eq!(upid.pid, std::process::id());
        assert!(upid.pstart > 0, "/proc/self/stat field 22");
        assert_eq!(text.parse::<Upid>().unwrap(), upid);
        assert_eq!(upid_start_time(&text), Some(1_700_000_000));
    }

    #[test]
    fn pbs_upids_parse() {
        let gc = "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam:";
        let upid: Upid = gc.parse().unwrap();
        assert_eq!(upid.node, "elsa");
        assert_eq!(upid.pid, 0x4f37);
        assert_eq!(upid.pstart, 0x39e469);
        assert_eq!(upid.starttime, 0x5ca78b83);
        assert_eq!(upid.worker_type, "garbage_collection");
        assert_eq!(upid.worker_id, "");
        assert_eq!(upid.to_string(), gc);
        // pstart may outgrow 8 digits after a long uptime.
        let long = "UPID:pbs:000A1B2C:1234ABCDE:00000002:65000000:verify:store1\\x3avm-100-65000000:u@pbs:";
        let upid: Upid = long.parse().unwrap();
        assert_eq!(upid.pstart, 0x1234abcde);
        assert_eq!(upid.worker_id, "store1:vm/100/65000000");
        assert_eq!(upid.to_string(), long);
        for bad in [
            "",
            "UPID:",
            "UPID:elsa:4F37:0039E469:00000000:5CA78B83:gc::root@pam:",
            "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:gc::root@pam",
            "UPID:elsa:00004F37:0039E469:00000000:5CA78B8Z:gc::root@pam:",
            "UPID::00004F37:0039E469:00000000:5CA78B83:gc::root@pam:",
            "UPID:elsa:00004F37:0039E469:00000000:5CA78B83:gc:x:y:root@pam:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad}");
            assert_eq!(upid_start_time(bad), None);
        }
    }
}
