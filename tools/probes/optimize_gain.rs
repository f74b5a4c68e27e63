//! What TorchScript's inference optimisation (oneDNN convolutions with packed weights, see
//! src/taps/module.cpp) gains on the CPU per model and input size, against the module as the
//! pass would otherwise run it (BatchNorms folded, channels-last input), and whether
//! zoo-select's rule takes it. tools/perf/optimize writes the table in docs/performance.md.
//!
//!     . scripts/env.sh && cargo run --release --example optimize_gain -- MODEL.pt... [--size N]...
//!
//! Prints one JSON line per (model, size): seconds per batch of 32 for each version (the best
//! of two rounds of 4 batches, after 2 to warm up), or the optimised version's error, and the
//! rule's verdict.

use std::path::PathBuf;
use std::time::Instant;

use tch::{Device, Kind, Tensor};
use zoo_select::taps::{self, TapModule};

fn seconds_per_batch(name: &str, module: &TapModule, x: &Tensor) -> anyhow::Result<f64> {
    for _ in 0..2 {
        module.run(name, x, 0)?;
    }
    let mut best = f64::INFINITY;
    for _ in 0..2 {
        let t = Instant::now();
        for _ in 0..4 {
            module.run(name, x, 0)?;
        }
        best = best.min(t.elapsed().as_secs_f64() / 4.0);
    }
    Ok(best)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = Vec::new();
    let mut models = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => sizes.push(it.next().map_or(Ok(224), |s| s.parse::<i64>())?),
            path => models.push(PathBuf::from(path)),
        }
    }
    if sizes.is_empty() {
        sizes = vec![112, 224];
    }
    zoo_select::taps::run_graphs_unoptimised();
    for path in &models {
        let name = path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        let rewritten = taps::prepare(&name, path, &[])?;
        let base = rewritten.folded.unwrap_or(rewritten.plain);
        let verdict = base.optimized(&name, true, true)?.err();
        let optimized = match base.optimized(&name, true, false)? {
            Ok(m) => m,
            Err(why) => anyhow::bail!("{name}: not optimised even unjudged: {why}"),
        };
        for &size in &sizes {
            // Channels-last, as the pass hands batches over.
            let x = Tensor::f_randn([32, size, size, 3], (Kind::Float, Device::Cpu))?
                .f_permute([0, 3, 1, 2])?;
            let folded_s = seconds_per_batch(&name, &base, &x)?;
            // An optimised graph can fail where the original runs (oneDNN's adaptive pooling
            // needs sizes that divide); zoo-select's probe check then keeps the original.
            let row = match seconds_per_batch(&name, &optimized, &x) {
                Ok(optimized_s) => serde_json::json!({
                    "model": name, "size": size, "folded_s": folded_s,
                    "optimized_s": optimized_s, "speedup": folded_s / optimized_s,
                    "taken": verdict.is_none(), "declined": verdict,
                }),
                Err(e) => serde_json::json!({
                    "model": name, "size": size, "folded_s": folded_s,
                    "error": e.to_string(), "taken": false, "declined": verdict,
                }),
            };
            println!("{row}");
        }
    }
    Ok(())
}
