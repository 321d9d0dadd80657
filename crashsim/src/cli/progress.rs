//! The progress line on stderr: workloads done out of the total (the real work: every workload
//! is explored completely unless a budget cuts it), crash states so far, their rate, and the
//! workload being explored.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Shared {
    states: Arc<AtomicU64>,
    workloads_done: AtomicU64,
    workloads: u64,
    current: Mutex<String>,
    stop: AtomicBool,
    started: Instant,
    /// A terminal: one line rewritten in place. Otherwise (`--progress` into a file or pipe): a
    /// line per second.
    terminal: bool,
}

impl Shared {
    fn line(&self) -> String {
        let done = self.workloads_done.load(Ordering::Relaxed);
        let states = self.states.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let percent = done * 100 / self.workloads.max(1);
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        format!(
            "[{:>3}:{:02}] {done}/{} workloads ({percent}%) · {} states · {:.0}/s · {current}",
            elapsed.as_secs() / 60,
            elapsed.as_secs() % 60,
            self.workloads,
            thousands(states),
            states as f64 / elapsed.as_secs_f64().max(1e-9),
        )
    }

    fn print(&self, last: bool) {
        let line = self.line();
        let mut stderr = std::io::stderr().lock();
        let _ = if self.terminal {
            // Erase the previous line; the final one is erased too, before the report.
            if last {
                write!(stderr, "\r\x1b[2K")
            } else {
                write!(stderr, "\r\x1b[2K{line}")
            }
        } else {
            writeln!(stderr, "progress: {line}")
        };
        let _ = stderr.flush();
    }
}

/// A running progress display (or none).
pub(super) struct Progress {
    shared: Option<Arc<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows progress over `workloads` workloads, counting the states in `states`, when stderr
    /// is a terminal or `forced`; never with `json`.
    pub(super) fn start(
        states: Arc<AtomicU64>,
        workloads: u64,
        json: bool,
        forced: bool,
    ) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        if !forced && (json || !terminal) {
            return Progress {
                shared: None,
                thread: None,
            };
        }
        let shared = Arc::new(Shared {
            states,
            workloads_done: AtomicU64::new(0),
            workloads,
            current: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
            started: Instant::now(),
            terminal,
        });
        let thread = {
            let shared = shared.clone();
            let period = if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            };
            std::thread::spawn(move || {
                let mut last = Instant::now();
                while !shared.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() >= period {
                        shared.print(false);
                        last = Instant::now();
                    }
                }
            })
        };
        Progress {
            shared: Some(shared),
            thread: Some(thread),
        }
    }

    /// `name` is being explored.
    pub(super) fn begin(&self, name: &str) {
        if let Some(shared) = &self.shared {
            *shared
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = name.to_string();
        }
    }

    /// One more workload explored.
    pub(super) fn end(&self) {
        if let Some(shared) = &self.shared {
            shared.workloads_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops the display (a final line when not on a terminal).
    pub(super) fn finish(mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        shared.print(true);
    }
}

/// `n` with thousands separators: 1,234,567.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separates_groups_of_three() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(2_885_332), "2,885,332");
    }
}
