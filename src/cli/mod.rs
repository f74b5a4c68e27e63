//! Everything that talks to the terminal: clap arguments (args.rs), logging (logging.rs), the
//! progress bar (progress.rs) and the printed ranking (table.rs). The work itself is a library
//! call; this layer only turns arguments into a plan and results into text.

mod args;
mod layers;
mod logging;
mod progress;
mod stdout;
mod table;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use args::{Args, Command, RunArgs};
use stdout::write_stdout;
use zoo_select::plan::Plan;
use zoo_select::{pipeline, report};

pub fn main() -> ExitCode {
    // First, while the process has one thread and before libtorch has called MKL.
    let numerics = zoo_select::numerics::request_reproducible_mkl();
    // ZS_GLIBC_ARENAS keeps glibc's defaults (an arena per thread), as in tools/probes/loader_rate:
    // a measurement switch for what the one heap costs a GPU pass's decoding threads
    // (tools/perf/gpu-pass), not a setting.
    if std::env::var_os("ZS_GLIBC_ARENAS").is_none() {
        zoo_select::allocator::reuse_freed_memory();
    }
    pipeline::quiet_decoder_panics();
    let args = Args::parse();
    logging::init(args.verbose, args.quiet);
    tracing::debug!("MKL arithmetic: {numerics:?}");
    stop_on_signals();
    let result = match &args.command {
        Some(Command::Layers {
            model,
            input_size,
            json,
        }) => layers::run(model, *input_size, *json),
        Some(Command::Pass { run, shard }) => pass(run, *shard, args.quiet),
        Some(Command::Score {
            run,
            files,
            no_image_check,
        }) => score(run, files, !*no_image_check, args.quiet),
        None => self::run(&args.run, args.quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `zoo-select layers m.pt | head` is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            progress::clear();
            // Not eprintln!: after a hang-up the terminal is gone, and the write must not panic.
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
            let interrupted = e
                .downcast_ref::<zoo_select::Error>()
                .is_some_and(|e| matches!(e, zoo_select::Error::Interrupted { .. }));
            ExitCode::from(if interrupted { 130 } else { 1 })
        }
    }
}

/// SIGINT and SIGTERM ask the pass to checkpoint and stop after the batch in flight; a second
/// one ends the process at once (exit 130), for a user who will not wait. SIGHUP (the terminal
/// or SSH session gone) does the same, unless it was ignored when the process started (`nohup`):
/// then the run goes on, as the user asked.
fn stop_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let flag = pipeline::stop_flag();
    let hangup = (!ignored(SIGHUP)).then_some(SIGHUP);
    for signal in [SIGINT, SIGTERM].into_iter().chain(hangup) {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, flag.clone());
        let _ = signal_hook::flag::register(signal, flag.clone());
    }
}

fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: with a null new action, sigaction only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

fn plan(run: &RunArgs, shard: Option<zoo_select::stats_file::Shard>) -> anyhow::Result<Plan> {
    let Some(config) = &run.config else {
        args::missing_config();
    };
    Ok(Plan::new(config, run.overrides(shard))?)
}

fn run(run: &RunArgs, quiet: bool) -> anyhow::Result<()> {
    let plan = plan(run, None)?;
    let bar = progress::Bar::new(quiet);
    let outcome = pipeline::run(&plan, &bar)?;
    report(&plan, outcome, quiet)
}

fn report(plan: &Plan, outcome: pipeline::Outcome, quiet: bool) -> anyhow::Result<()> {
    let report = report::Report::new(plan, outcome);
    let files = report::write_all(&report, &plan.output)
        .with_context(|| format!("writing the results to {}", plan.output.display()))?;
    // -q hides the table, not the answer: a script running quietly still wants it.
    if quiet {
        write_stdout(&format!("{}\n", report.recommendation.text))?;
    } else {
        table::print(&report, &files)?;
    }
    Ok(())
}

fn pass(
    run: &RunArgs,
    shard: Option<zoo_select::stats_file::Shard>,
    quiet: bool,
) -> anyhow::Result<()> {
    let plan = plan(run, shard)?;
    let bar = progress::Bar::new(quiet);
    let gathered = pipeline::gather(&plan, &bar)?;
    let path = pipeline::write_shard(&plan, gathered)?;
    if !quiet {
        let count = shard.map_or(1, |s| s.count);
        write_stdout(&format!(
            "statistics written to {}
when all {count} shard(s) are done: zoo-select score --config {} -o {} {}
",
            path.display(),
            plan.config_path.display(),
            plan.output.display(),
            plan.output
                .join(format!("shard-*-of-{count}.zss"))
                .display()
        ))?;
    }
    Ok(())
}

fn score(
    run: &RunArgs,
    files: &[std::path::PathBuf],
    check_images: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let plan = plan(run, None)?;
    let gathered = pipeline::merge(&plan, files, check_images)?;
    let outcome = pipeline::finish(&plan, gathered, start)?;
    report(&plan, outcome, quiet)
}

/// The error and its causes on one line, each cause once: library errors already name their
/// cause, and printing the chain as well would say it twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
