//! The indicatif progress bar (images/s, ETA) on a terminal; nothing when stderr is not one or
//! with -q. One bar at a time, held globally so log lines can be printed around it.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zoo_select::pipeline::Progress;

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

pub struct Bar {
    quiet: bool,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        Bar { quiet }
    }
}

impl Progress for Bar {
    fn begin(&self, files: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images {per_sec:.0} ETA {eta}",
        );
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar);
        }
    }

    fn advance(&self, files: usize) {
        if let Ok(active) = ACTIVE.lock() {
            if let Some(bar) = active.as_ref() {
                bar.inc(files as u64);
            }
        }
    }

    fn finish(&self) {
        clear();
    }
}

/// Removes the bar, if any.
pub fn clear() {
    if let Ok(mut active) = ACTIVE.lock() {
        if let Some(bar) = active.take() {
            bar.finish_and_clear();
        }
    }
}

/// Runs `f` (a write to stderr) with the bar hidden.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}
