//! Everything that talks to the terminal: clap arguments (args.rs), logging (logging.rs), the
//! progress bar (progress.rs) and the printed ranking (table.rs). The work itself is a library
//! call; this layer only turns arguments into a plan and results into text.

mod args;
mod layers;
mod logging;
mod progress;
mod table;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use args::{Args, Command};
use zoo_select::plan::Plan;
use zoo_select::{pipeline, report};

pub fn main() -> ExitCode {
    zoo_select::allocator::reuse_freed_memory();
    quiet_decoder_panics();
    let args = Args::parse();
    logging::init(args.verbose, args.quiet);
    let result = match &args.command {
        Some(Command::Layers {
            model,
            input_size,
            json,
        }) => layers::run(model, *input_size, *json),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `zoo-select layers m.pt | head` is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            progress::clear();
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let Some(config) = &args.config else {
        args::missing_config();
    };
    let plan = Plan::new(config, args.overrides())?;
    let bar = progress::Bar::new(args.quiet);
    let outcome = pipeline::run(&plan, &bar)?;
    let report = report::Report::new(&plan, outcome);
    let files = report::write_all(&report, &plan.output)
        .with_context(|| format!("writing the results to {}", plan.output.display()))?;
    if !args.quiet {
        table::print(&report, &files)?;
    }
    Ok(())
}

/// A decoder panicking on a malformed image is caught and the file reported as skipped; its
/// panic message must not also spill over the terminal. Every other panic prints as usual.
fn quiet_decoder_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let decoding = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(pipeline::DECODE_THREAD));
        if !decoding {
            default(info);
        }
    }));
}

/// Writes to stdout without panicking when the reader has gone away.
fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
