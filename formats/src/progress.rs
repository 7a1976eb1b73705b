//! A progress line on standard error for long inputs. It stays silent for the first two seconds
//! and whenever standard error is not a terminal, so scripts and tests never see it.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    total_bytes: usize,
    start: Instant,
    last: Instant,
    drawn: bool,
}

const QUIET_START: Duration = Duration::from_secs(2);
const REDRAW: Duration = Duration::from_millis(200);

impl Progress {
    /// A progress line for an input of `total_bytes`, shown only on a terminal.
    pub fn new(total_bytes: usize) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            total_bytes,
            start: now,
            last: now,
            drawn: false,
        }
    }

    /// A progress line that never shows.
    pub fn hidden() -> Progress {
        Progress {
            enabled: false,
            ..Progress::new(0)
        }
    }

    /// Reports `done_bytes` of the input and `events` so far, in the `phase` named.
    pub fn update(&mut self, phase: &str, done_bytes: usize, events: usize) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now - self.start < QUIET_START || now - self.last < REDRAW {
            return;
        }
        self.last = now;
        self.drawn = true;
        let pct = (done_bytes as f64 / self.total_bytes.max(1) as f64 * 100.0).min(100.0);
        let width = 30;
        let filled = (pct / 100.0 * width as f64) as usize;
        let _ = write!(
            std::io::stderr(),
            "\r{phase:<10} [{}{}] {pct:5.1}%  {events} events  {:.1}s ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            (now - self.start).as_secs_f64()
        );
    }

    /// Clears the line, if one was drawn.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(72));
            self.drawn = false;
        }
    }
}
