//! Progress on stderr: a live bar on a terminal, a plain line every 5 s otherwise, and, once a
//! job that printed lines has finished, a last line with its final count.
//!
//! A plain line reads `LABEL[ (STAGE)]: PCT% (DONE of TOTAL) in Ns, RATE[, written RATE]`, or
//! `LABEL: DONE in Ns, RATE` while the total is unknown. Totals that are estimates never show
//! more than 99% before the job ends; the last line shows the count it ended at.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{bytes, rate};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Things with this name (plural): `chunk directories`, `snapshots`.
    Items(&'static str),
}

/// One reading of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The phase of a job that has several (`mark`, `sweep`).
    pub stage: Option<&'static str>,
    pub done: u64,
    pub total: Option<u64>,
    pub unit: Unit,
    /// A second byte count and what it counts (`written` to the store by a backup, `checked`
    /// by verify, `copied` by sync), shown with its rate.
    pub extra: Option<(&'static str, u64)>,
}

impl Sample {
    /// `done` bytes of `total`.
    pub fn bytes(done: u64, total: Option<u64>) -> Sample {
        Sample {
            stage: None,
            done,
            total,
            unit: Unit::Bytes,
            extra: None,
        }
    }

    /// `done` things of `total`.
    pub fn items(done: u64, total: Option<u64>, name: &'static str) -> Sample {
        Sample {
            unit: Unit::Items(name),
            ..Sample::bytes(done, total)
        }
    }

    pub fn stage(self, stage: &'static str) -> Sample {
        Sample {
            stage: Some(stage),
            ..self
        }
    }

    /// With a second byte count: `what` (`written`, `checked`, `copied`) `n` bytes so far.
    pub fn with(self, what: &'static str, n: u64) -> Sample {
        Sample {
            extra: Some((what, n)),
            ..self
        }
    }

    fn extra_bytes(&self) -> u64 {
        self.extra.map_or(0, |(_, n)| n)
    }

    fn amount(&self, n: u64) -> String {
        match self.unit {
            Unit::Bytes => bytes(n),
            Unit::Items(_) => n.to_string(),
        }
    }

    /// The plain line's text after `LABEL: `; `last` for the line of a finished job.
    fn describe(&self, elapsed: Duration, since_last: (u64, u64, f64), last: bool) -> String {
        let secs = elapsed.as_secs_f64();
        let counted = match (self.total, self.unit) {
            (Some(total), unit) => {
                let total = if last { self.done } else { total.max(1) };
                let mut pct = crate::output::percent(self.done, total);
                if !last {
                    pct = pct.min(99.0);
                }
                let of = match unit {
                    Unit::Bytes => format!("{} of {}", bytes(self.done), bytes(total)),
                    Unit::Items(name) => format!("{} of {total} {name}", self.done),
                };
                format!("{pct:3.0}% ({of})")
            }
            (None, Unit::Items(name)) => format!("{} {name}", self.done),
            (None, Unit::Bytes) => self.amount(self.done),
        };
        let mut line = format!("{counted} in {}s", elapsed.as_secs());
        // Averages over the whole job on the last line, over the interval otherwise.
        let (done_before, extra_before, interval) = since_last;
        let (d, x, t) = match last {
            true => (self.done, self.extra_bytes(), secs),
            false => (
                self.done.saturating_sub(done_before),
                self.extra_bytes().saturating_sub(extra_before),
                interval,
            ),
        };
        if self.unit == Unit::Bytes {
            line.push_str(&format!(", {}", rate(d, t)));
        }
        match (self.extra, self.unit) {
            (Some((what, _)), Unit::Bytes) => line.push_str(&format!(", {what} {}", rate(x, t))),
            (Some((what, n)), Unit::Items(_)) => {
                line.push_str(&format!(", {what} {} ({})", bytes(n), rate(x, t)))
            }
            (None, _) => {}
        }
        line
    }
}

/// Reads a running job's progress.
pub type Probe = Box<dyn Fn() -> Sample + Send>;

pub struct Reporter {
    stop: Arc<AtomicBool>,
    /// Set when the job succeeded: the reporter prints its last line.
    succeeded: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// Interval of the plain progress lines; `STOWAGE_PROGRESS_INTERVAL_MS` overrides it for tests.
fn plain_interval() -> Duration {
    std::env::var("STOWAGE_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(5))
}

impl Reporter {
    /// Starts reporting `label`; `enabled = false` prints nothing.
    pub fn start(label: String, probe: Probe, enabled: bool) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        let succeeded = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Reporter {
                stop,
                succeeded,
                handle: None,
            };
        }
        let (flag, ok) = (stop.clone(), succeeded.clone());
        let handle = std::thread::spawn(move || {
            if std::io::stderr().is_terminal() {
                bar_loop(&label, &probe, &flag);
            } else {
                plain_loop(&label, &probe, &flag, &ok);
            }
        });
        Reporter {
            stop,
            succeeded,
            handle: Some(handle),
        }
    }

    /// The job succeeded: stop, with a last line if lines were printed.
    pub fn finish(mut self) {
        self.succeeded.store(true, Ordering::Relaxed);
        self.end();
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Dropped without [`Reporter::finish`]: the job failed; its error says the rest.
impl Drop for Reporter {
    fn drop(&mut self) {
        self.end();
    }
}

fn bar_loop(label: &str, probe: &Probe, stop: &AtomicBool) {
    let first = probe();
    let bar = match first.total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template("{prefix} {bar:30} {percent:>3}% {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix} {spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_prefix(label.to_string());
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let s = probe();
        if let Some(t) = s.total {
            bar.set_length(t.max(s.done));
        }
        bar.set_position(s.done);
        let stage = s.stage.map(|st| format!("{st}: ")).unwrap_or_default();
        // Rates averaged over the whole job so far; the share against the total as it stands.
        let text = s.describe(
            started.elapsed(),
            (0, 0, started.elapsed().as_secs_f64()),
            false,
        );
        bar.set_message(format!("{stage}{text}"));
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
}

fn plain_loop(label: &str, probe: &Probe, stop: &AtomicBool, succeeded: &AtomicBool) {
    let interval = plain_interval();
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut printed = false;
    let line = |s: &Sample, text: String| match s.stage {
        Some(stage) => eprintln!("{label} ({stage}): {text}"),
        None => eprintln!("{label}: {text}"),
    };
    loop {
        // Sleep in short steps so a finished job is not held up by the interval.
        while last.0.elapsed() < interval {
            if stop.load(Ordering::Relaxed) {
                if printed && succeeded.load(Ordering::Relaxed) {
                    let s = probe();
                    line(&s, s.describe(started.elapsed(), (0, 0, 0.0), true));
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        let s = probe();
        let now = Instant::now();
        let since = (last.1, last.2, now.duration_since(last.0).as_secs_f64());
        line(&s, s.describe(started.elapsed(), since, false));
        printed = true;
        last = (now, s.done, s.extra_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_share_counts_and_rates() {
        let s = Sample::bytes(512 << 20, Some(1 << 30)).with("written", 256 << 20);
        let text = s.describe(Duration::from_secs(2), (0, 0, 2.0), false);
        assert_eq!(
            text,
            " 50% (512 MiB of 1 GiB) in 2s, 256 MiB/s, written 128 MiB/s"
        );
        // An estimate that fell short shows at most 99% while running, the real count at the end.
        let over = Sample::bytes(3 << 20, Some(2 << 20));
        assert!(over
            .describe(Duration::from_secs(1), (0, 0, 1.0), false)
            .starts_with(" 99% (3 MiB of 2 MiB)"));
        assert!(over
            .describe(Duration::from_secs(1), (0, 0, 1.0), true)
            .starts_with("100% (3 MiB of 3 MiB)"));
        let items = Sample::items(3, Some(12), "snapshots").stage("copy");
        assert_eq!(
            items.describe(Duration::from_secs(4), (0, 0, 4.0), false),
            " 25% (3 of 12 snapshots) in 4s"
        );
        assert_eq!(
            Sample::items(7, None, "index files").describe(Duration::ZERO, (0, 0, 0.0), false),
            "7 index files in 0s"
        );
        let verify = Sample::items(1, Some(4), "snapshots").with("checked", 3 << 30);
        assert_eq!(
            verify.describe(Duration::from_secs(3), (0, 1 << 30, 2.0), false),
            " 25% (1 of 4 snapshots) in 3s, checked 3 GiB (1 GiB/s)"
        );
    }
}
