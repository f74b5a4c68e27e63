//! `zoo_select._native`: the Rust engine called from Python in process. It does what the
//! binary's default command does, config file in, report files out, so a notebook and the CLI
//! give the same scores; everything Pythonic (keywords, models as objects, DataFrames,
//! figures) is in python/zoo_select. The pass runs on its own thread with the GIL released;
//! this thread wakes every tenth of a second to show progress, pass on log lines and notice
//! Ctrl-C, which asks the pass to checkpoint and stop as SIGINT does in the CLI.

mod log;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use zoo_select::pipeline::{self, Progress};
use zoo_select::plan::{Overrides, Plan};
use zoo_select::{report, Error};

/// How far the pass is: read by the waiting thread, written by the pass's threads.
#[derive(Default)]
struct Counter {
    total: AtomicUsize,
    done: AtomicUsize,
}

impl Progress for Counter {
    fn begin(&self, files: usize) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(files, Ordering::Relaxed);
    }
    fn advance(&self, files: usize) {
        self.done.fetch_add(files, Ordering::Relaxed);
    }
}

/// The CLI's default command on `config`: plan, pass, report files; returns their paths.
fn rank_files(
    config: PathBuf,
    no_cache: bool,
    progress: &Counter,
) -> zoo_select::Result<Vec<String>> {
    let plan = Plan::new(
        &config,
        Overrides {
            no_cache,
            ..Overrides::default()
        },
    )?;
    let outcome = pipeline::run(&plan, progress)?;
    let report = report::Report::new(&plan, outcome);
    let files = report::write_all(&report, &plan.output)?;
    Ok(files.iter().map(|p| p.display().to_string()).collect())
}

/// Ranks as `zoo-select --config CONFIG` does and returns the paths of the files written
/// (scores.csv, scores.svg, report.json). `progress(total, done)` is called as images are read.
#[pyfunction]
#[pyo3(signature = (config, *, no_cache=false, progress=None))]
fn rank(
    py: Python<'_>,
    config: PathBuf,
    no_cache: bool,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<Vec<String>> {
    let stop = pipeline::stop_flag();
    stop.store(false, Ordering::SeqCst);
    // As the binary does (src/allocator.rs), for the pass only: its thread then shares the
    // main heap, and this process's other work gets glibc's defaults back afterwards.
    zoo_select::allocator::reuse_freed_memory();
    let counter = Arc::new(Counter::default());
    let worker = {
        let counter = counter.clone();
        std::thread::Builder::new()
            .name("zoo-select-run".into())
            .spawn(move || rank_files(config, no_cache, &counter))
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the pass: {e}")))?
    };
    let mut interrupt: Option<PyErr> = None;
    let mut progress = progress;
    let mut shown = (usize::MAX, usize::MAX);
    loop {
        let finished = worker.is_finished();
        // Whatever goes wrong on this side (a log line, the progress display, Ctrl-C) stops the
        // pass as Ctrl-C would, and is raised once the pass has checkpointed and ended: the
        // pass never runs on unattended.
        let mut failed = |e: PyErr| {
            stop.store(true, Ordering::SeqCst);
            interrupt.get_or_insert(e);
        };
        if let Err(e) = log::forward(py) {
            failed(e);
        }
        let now = (
            counter.total.load(Ordering::Relaxed),
            counter.done.load(Ordering::Relaxed),
        );
        if let (Some(callback), true) = (&progress, now != shown && now.0 > 0) {
            shown = now;
            if let Err(e) = callback.call1(now) {
                progress = None;
                failed(e);
            }
        }
        if finished {
            break;
        }
        py.detach(|| std::thread::sleep(Duration::from_millis(100)));
        if let Err(e) = py.check_signals() {
            failed(e);
        }
    }
    let result = worker.join();
    stop.store(false, Ordering::SeqCst);
    zoo_select::allocator::restore_defaults();
    let _ = log::forward(py);
    match (result, interrupt) {
        // Raised on this side: a KeyboardInterrupt gets the pass's own message (where its
        // checkpoint is); anything else is raised as it was.
        (Ok(Err(e @ Error::Interrupted { .. })), Some(i))
            if i.is_instance_of::<PyKeyboardInterrupt>(py) =>
        {
            Err(PyKeyboardInterrupt::new_err(one_line(&e).replace(
                "run the same command again to resume",
                "call rank again with the same arguments to resume",
            )))
        }
        (_, Some(raised)) => Err(raised),
        (Ok(Ok(files)), None) => Ok(files),
        (Ok(Err(e)), None) => Err(python_error(&e)),
        (Err(panic), None) => Err(PyRuntimeError::new_err(format!(
            "zoo-select stopped on an internal error ({}); please report it",
            panic_text(&panic)
        ))),
    }
}

/// Bad input (the config, a manifest, a layer or device name, the dataset) is a ValueError,
/// an interruption a KeyboardInterrupt, what the run met otherwise a RuntimeError; the text
/// is the CLI's `error:` line.
fn python_error(e: &Error) -> PyErr {
    let text = one_line(e);
    match e {
        Error::Config { .. }
        | Error::Manifest { .. }
        | Error::ManifestMissing { .. }
        | Error::Dataset { .. }
        | Error::TooFewClasses { .. }
        | Error::LayerNotFound { .. }
        | Error::LayerNotTappable { .. }
        | Error::Device { .. }
        | Error::Output { .. } => PyValueError::new_err(text),
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(text),
        _ => PyRuntimeError::new_err(text),
    }
}

/// The error and its causes on one line, each once, as the CLI prints them.
fn one_line(e: &Error) -> String {
    let mut text = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    log::init();
    pipeline::quiet_decoder_panics();
    m.add_function(wrap_pyfunction!(rank, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
