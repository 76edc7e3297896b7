//! Running one command of a profile: no shell, stdin from `/dev/null`, stdout and stderr into one
//! pipe (so the log keeps their order), killed with its process group at the timeout.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::ProfileCommand;

/// How long the output may still be read after the timeout killed the command's process group
/// (a process that left the group may hold the pipe open for ever: it is given up on).
const GRACE: Duration = Duration::from_secs(1);

/// What running a command gave.
#[derive(Debug)]
pub struct CommandLog {
    /// "exit status 0", "exit status 1", "killed by signal 9", "timed out after 5 s (killed)",
    /// "could not be started: ...".
    pub status: String,
    /// Exited with status 0.
    pub ok: bool,
    /// The log to store: a header line, then the output.
    pub data: Vec<u8>,
    /// Bytes of output the command wrote (those past the size limit are not in `data`).
    pub output_bytes: u64,
    pub duration: Duration,
}

/// The command line for people: each argument as a shell would take it (quoted where needed,
/// control characters escaped; see `output::shell_quoted`).
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| crate::output::shell_quoted(a.as_bytes()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Output read so far.
#[derive(Default)]
struct Captured {
    data: Vec<u8>,
    total: u64,
}

/// Reads `pipe` to its end, keeping the first `limit` bytes.
fn read_all(pipe: File, limit: usize, into: Arc<Mutex<Captured>>) {
    let mut pipe = pipe;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let mut c = into.lock().unwrap_or_else(|e| e.into_inner());
                let keep = n.min(limit.saturating_sub(c.data.len()));
                c.data.extend_from_slice(&buf[..keep]);
                c.total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
}

/// Waits for `child` until `deadline`, then kills its process group; true if it was killed.
fn wait(child: &mut Child, deadline: Instant) -> (std::io::Result<ExitStatus>, bool) {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), false),
            Ok(None) if Instant::now() < deadline => {}
            Ok(None) => {
                kill_group(child);
                return (child.wait(), true);
            }
            Err(e) => {
                kill_group(child);
                let _ = child.wait();
                return (Err(e), false);
            }
        }
        thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({name})"),
            Err(_) => format!("killed by signal {signal}"),
        },
        _ => status.to_string(),
    }
}

/// Runs `cmd`, keeping at most `limit` bytes of its output. Never fails: a command that cannot
/// be started gives a log saying why.
pub fn run_command(cmd: &ProfileCommand, limit: usize) -> CommandLog {
    let started = Instant::now();
    let deadline = started + cmd.timeout;
    let shared = Arc::new(Mutex::new(Captured::default()));
    let (status, ok) = match spawn(cmd) {
        Err(e) => (format!("could not be started: {e}"), false),
        Ok((mut child, pipe)) => {
            let reader = {
                let shared = shared.clone();
                thread::spawn(move || read_all(pipe, limit, shared))
            };
            let (status, timed_out) = wait(&mut child, deadline);
            // Processes the command left behind may still write to the pipe: until the deadline.
            let mut give_up = deadline;
            while !reader.is_finished() {
                let now = Instant::now();
                if now >= give_up {
                    if give_up != deadline {
                        break;
                    }
                    kill_group(&mut child);
                    give_up = now + GRACE;
                }
                thread::sleep(Duration::from_millis(5));
            }
            match status {
                _ if timed_out => (
                    format!("timed out after {} s (killed)", cmd.timeout.as_secs()),
                    false,
                ),
                Ok(status) => (describe(&status), status.success()),
                Err(e) => (format!("could not be waited for: {e}"), false),
            }
        }
    };
    let duration = started.elapsed();
    let captured = std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()));
    let mut header = format!(
        "# {}: {status}, after {:.2} s",
        display_argv(&cmd.argv),
        duration.as_secs_f64()
    );
    if captured.total > captured.data.len() as u64 {
        header.push_str(&format!(
            "; output cut to its first {} of {} bytes",
            captured.data.len(),
            captured.total
        ));
    }
    header.push('\n');
    let mut data = header.into_bytes();
    data.extend_from_slice(&captured.data);
    CommandLog {
        status,
        ok,
        data,
        output_bytes: captured.total,
        duration,
    }
}

/// Starts `cmd` in a process group of its own with stdout and stderr on one new pipe; returns
/// the child and the pipe's read end.
fn spawn(cmd: &ProfileCommand) -> std::io::Result<(Child, File)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let write2 = write.try_clone()?;
    let mut command = Command::new(&cmd.argv[0]);
    command
        .args(&cmd.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .process_group(0);
    let child = command.spawn();
    // Our copies of the write end must be closed, or the pipe never ends.
    drop(command);
    Ok((child?, File::from(read)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_types::ArchiveName;

    fn command(argv: &[&str], timeout_s: u64) -> ProfileCommand {
        ProfileCommand {
            name: "t".into(),
            log: ArchiveName::parse("t.log").unwrap(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            critical: false,
            timeout: Duration::from_secs(timeout_s),
        }
    }

    fn text(log: &CommandLog) -> String {
        String::from_utf8_lossy(&log.data).into_owned()
    }

    #[test]
    fn output_of_both_streams_is_kept_in_order_after_a_header() {
        let log = run_command(
            &command(&["sh", "-c", "echo out; echo err >&2; echo again"], 10),
            1 << 20,
        );
        assert!(log.ok, "{log:?}");
        assert_eq!(log.status, "exit status 0");
        let text = text(&log);
        let (header, output) = text.split_once('\n').unwrap();
        assert!(
            header
                .starts_with("# sh -c 'echo out; echo err >&2; echo again': exit status 0, after "),
            "{header}"
        );
        assert_eq!(output, "out\nerr\nagain\n");
        assert_eq!(log.output_bytes, 14);
    }

    #[test]
    fn failures_are_described() {
        let log = run_command(&command(&["sh", "-c", "echo partial; exit 3"], 10), 1 << 20);
        assert!(!log.ok);
        assert_eq!(log.status, "exit status 3");
        assert!(text(&log).ends_with("\npartial\n"));
        let log = run_command(&command(&["/nonexistent/program"], 10), 1 << 20);
        assert!(!log.ok);
        assert!(log.status.starts_with("could not be started: "), "{log:?}");
        assert!(text(&log).starts_with("# /nonexistent/program: could not be started"));
        let log = run_command(&command(&["sh", "-c", "kill -TERM $$"], 10), 1 << 20);
        assert_eq!(log.status, "killed by signal 15 (SIGTERM)");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let started = Instant::now();
        // The shell's child (sleep) holds the pipe too: it must be killed as well.
        let log = run_command(
            &command(&["sh", "-c", "echo before; sleep 30; echo after"], 1),
            1 << 20,
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!log.ok);
        assert_eq!(log.status, "timed out after 1 s (killed)");
        assert!(text(&log).ends_with("\nbefore\n"), "{}", text(&log));
    }

    #[test]
    fn output_past_the_limit_is_cut_and_counted() {
        let log = run_command(&command(&["sh", "-c", "yes | head -c 100000"], 10), 1000);
        assert!(log.ok);
        assert_eq!(log.output_bytes, 100_000);
        let text = text(&log);
        let (header, output) = text.split_once('\n').unwrap();
        assert!(
            header.ends_with("; output cut to its first 1000 of 100000 bytes"),
            "{header}"
        );
        assert_eq!(output.len(), 1000);
    }

    #[test]
    fn arguments_are_quoted_for_display() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(display_argv(&argv(&["ls", "-l", "/a/b"])), "ls -l /a/b");
        assert_eq!(
            display_argv(&argv(&["echo", "a b", "", "it's", "${x}"])),
            r"echo 'a b' '' 'it'\''s' '${x}'"
        );
    }
}
