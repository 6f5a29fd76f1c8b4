//! Progress for long commands: a bar on a terminal, plain lines otherwise.
//!
//! Everything goes to stderr, so a command's data on stdout stays clean.
//! When stderr is not a terminal (a pipe, a log file, CI), a line is
//! written at most every two seconds and once at the end, instead of
//! control characters. A [`Progress`] is cheap to clone and may be updated
//! from many tasks.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often plain-line mode reports.
const LINE_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    /// What is counted: "passages", "bytes", "s".
    unit: &'static str,
    /// `Some` on a terminal.
    bar: Option<ProgressBar>,
    plain: Mutex<Plain>,
}

struct Plain {
    pos: u64,
    total: Option<u64>,
    message: String,
    last_line: Instant,
}

impl Progress {
    /// A bar of `total` units, or a spinner when the total is unknown.
    pub fn new(label: &str, total: Option<u64>, unit: &'static str) -> Self {
        Self::with_terminal(label, total, unit, std::io::stderr().is_terminal())
    }

    fn with_terminal(label: &str, total: Option<u64>, unit: &'static str, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let template = match (total, unit) {
                (Some(_), "bytes") => {
                    "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({eta}) {msg}"
                }
                (Some(_), _) => "{prefix} [{bar:30}] {pos}/{len} ({eta}) {msg}",
                (None, _) => "{prefix} {spinner} {pos} {msg}",
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            inner: Arc::new(Inner {
                label: label.to_string(),
                unit,
                bar,
                plain: Mutex::new(Plain {
                    pos: 0,
                    total,
                    message: String::new(),
                    last_line: Instant::now(),
                }),
            }),
        }
    }

    pub fn inc(&self, n: u64) {
        let pos = self.plain().pos + n;
        self.set_position(pos);
    }

    pub fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.inner.bar {
            bar.set_position(pos);
        }
        let mut p = self.plain();
        p.pos = pos;
        self.maybe_line(&mut p, false);
    }

    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.inner.bar {
            bar.set_length(total);
        }
        self.plain().total = Some(total);
    }

    pub fn set_message(&self, message: impl Into<String>) {
        let message = message.into();
        if let Some(bar) = &self.inner.bar {
            bar.set_message(message.clone());
        }
        let mut p = self.plain();
        p.message = message;
        self.maybe_line(&mut p, false);
    }

    /// Ends the display with a summary line, which is always printed.
    pub fn finish(&self, summary: &str) {
        match &self.inner.bar {
            Some(bar) => bar.finish_and_clear(),
            None => {
                let mut p = self.plain();
                self.maybe_line(&mut p, true);
            }
        }
        eprintln!("{}: {summary}", self.inner.label);
    }

    /// Ends the display without a summary, for a command that failed.
    pub fn abandon(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.abandon();
        }
    }

    fn plain(&self) -> std::sync::MutexGuard<'_, Plain> {
        self.inner.plain.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn maybe_line(&self, p: &mut Plain, force: bool) {
        if self.inner.bar.is_some() || (!force && p.last_line.elapsed() < LINE_EVERY) {
            return;
        }
        p.last_line = Instant::now();
        let _ = writeln!(std::io::stderr(), "{}", self.line(p));
    }

    fn line(&self, p: &Plain) -> String {
        let mut line = format!("{}: {}", self.inner.label, p.pos);
        if let Some(total) = p.total {
            let pct = if total == 0 {
                100.0
            } else {
                p.pos as f64 * 100.0 / total as f64
            };
            line.push_str(&format!("/{total} {} ({pct:.0}%)", self.inner.unit));
        } else {
            line.push_str(&format!(" {}", self.inner.unit));
        }
        if !p.message.is_empty() {
            line.push_str(&format!(" {}", p.message));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_position_total_and_message() {
        let p = Progress::with_terminal("export", Some(200), "passages", false);
        p.inc(50);
        p.set_message("to out.csv");
        assert_eq!(
            p.line(&p.plain()),
            "export: 50/200 passages (25%) to out.csv"
        );
        let s = Progress::with_terminal("simulate", None, "reads", false);
        s.set_position(7);
        assert_eq!(s.line(&s.plain()), "simulate: 7 reads");
    }
}
