//! Progress on stderr: a live bar on a terminal, a plain line every 5 s otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{bytes, rate};

/// Reads (done, written) byte counters of a running job.
pub type Probe = Box<dyn Fn() -> (u64, u64) + Send>;

pub struct Reporter {
    stop: Arc<AtomicBool>,
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
    /// Starts reporting `label` of `total` bytes (unknown: `None`). `enabled = false` prints nothing.
    pub fn start(label: String, total: Option<u64>, probe: Probe, enabled: bool) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        if !enabled {
            return Reporter { stop, handle: None };
        }
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            if std::io::stderr().is_terminal() {
                bar_loop(&label, total, &probe, &flag);
            } else {
                plain_loop(&label, total, &probe, &flag);
            }
        });
        Reporter {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn bar_loop(label: &str, total: Option<u64>, probe: &Probe, stop: &AtomicBool) {
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {percent:>3}% {bytes}/{total_bytes} {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_prefix(label.to_string());
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let (done, written) = probe();
        let secs = started.elapsed().as_secs_f64();
        bar.set_position(done);
        bar.set_message(format!(
            "read {} write {}",
            rate(done, secs),
            rate(written, secs)
        ));
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
}

fn plain_loop(label: &str, total: Option<u64>, probe: &Probe, stop: &AtomicBool) {
    let interval = plain_interval();
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        // Sleep in short steps so a finished job is not held up by the interval.
        while last.0.elapsed() < interval {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50).min(interval));
        }
        let (done, written) = probe();
        let now = Instant::now();
        let secs = now.duration_since(last.0).as_secs_f64();
        let of_total = match total {
            Some(t) => format!(
                "{:3.0}% ({} of {})",
                crate::output::percent(done, t),
                bytes(done),
                bytes(t)
            ),
            None => bytes(done),
        };
        eprintln!(
            "{label}: {of_total} in {}s, read: {}, write: {}",
            started.elapsed().as_secs(),
            rate(done - last.1, secs),
            rate(written - last.2, secs)
        );
        last = (now, done, written);
    }
}
