//! zoo-select as a library: rank a zoo from a config file, as the binary does, and print the
//! recommendation and the best rows. Nothing is written to the output folder (the binary's
//! report.json, scores.csv and scores.svg come from `zoo_select::report::write_all`); the
//! statistics cache is used as usual.
//!
//!     ./scripts/demo                  # once: sets up, makes the demo data and zoo
//!     . scripts/env.sh && cargo run --release --example rank -- configs/demo.yaml [ROWS]

use std::error::Error;
use std::path::PathBuf;

use zoo_select::pipeline::{self, Silent};
use zoo_select::plan::{Overrides, Plan};
use zoo_select::report::Report;

fn main() -> Result<(), Box<dyn Error>> {
    // First, before any libtorch work and while the process has one thread.
    zoo_select::numerics::request_reproducible_mkl();

    let mut args = std::env::args().skip(1);
    let config = PathBuf::from(args.next().ok_or("usage: rank CONFIG.yaml [ROWS]")?);
    let top: usize = args.next().map_or(Ok(5), |n| n.parse())?;

    // Overrides are what the command line's flags would set (device, batch size, ...).
    let plan = Plan::new(&config, Overrides::default())?;
    let outcome = pipeline::run(&plan, &Silent)?;
    let report = Report::new(&plan, outcome);

    println!("{}\n", report.recommendation.text);
    let metric = report.primary_metric();
    println!("{:<28} {:<16} {:>12}", "model", "layer", metric);
    for row in report.ranked().into_iter().take(top) {
        let score = row
            .scores
            .get(metric)
            .map_or("-".into(), |s| format!("{s:.4}"));
        println!("{:<28} {:<16} {:>12}", row.model, row.layer, score);
    }
    Ok(())
}
