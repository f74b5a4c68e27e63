//! The library's tracing events, handed to Python's `logging` (logger `zoo_select`). A notebook
//! does not show what a process writes to its stderr, and Python users configure logging, not
//! `RUST_LOG`: warnings reach them through the default handler, info lines when they ask.

use std::io::Write;
use std::sync::Mutex;

use pyo3::prelude::*;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Lines formatted on the pass's threads, waiting for a thread that holds the GIL.
static QUEUE: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

/// Installs the subscriber once per process (a second import keeps the first).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,zoo_select=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Queue)
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// Sends the queued lines to `logging.getLogger("zoo_select")`, each at its level.
pub fn forward(py: Python<'_>) -> PyResult<()> {
    let lines = match QUEUE.lock() {
        Ok(mut queue) => std::mem::take(&mut *queue),
        Err(_) => return Ok(()),
    };
    if lines.is_empty() {
        return Ok(());
    }
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("zoo_select",))?;
    for (level, text) in lines {
        let method = match level {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            _ => "debug",
        };
        logger.call_method1(method, (text,))?;
    }
    Ok(())
}

struct Queue;

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line::new(Level::INFO)
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line::new(*meta.level())
    }
}

/// One event's text; queued whole when the formatter is done with it.
struct Line {
    level: Level,
    text: Vec<u8>,
}

impl Line {
    fn new(level: Level) -> Line {
        Line {
            level,
            text: Vec::new(),
        }
    }
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text).trim_end().to_owned();
        if !text.is_empty() {
            if let Ok(mut queue) = QUEUE.lock() {
                queue.push((self.level, text));
            }
        }
    }
}
