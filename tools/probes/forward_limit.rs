//! The forward-pass limit of a zoo: every model's own forward (no taps, no statistics; folded,
//! converted to the config's precision and optimised as zoo-select does) on images already
//! decoded, fitted and stacked into batches in (pinned, on a GPU) host memory, batch after batch.
//! zoo-select cannot be faster than this; tools/bench and tools/gpu-check compare.
//!
//!     . scripts/env.sh && cargo run --release --example forward_limit -- CONFIG [--channels-last]
//!
//! Prints one JSON line: images, seconds, images_per_s, per model.

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};
use zoo_select::dataset::{self, Geometry};
use zoo_select::plan::{Overrides, Plan};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = PathBuf::from(
        args.first()
            .ok_or_else(|| anyhow::anyhow!("usage: forward_limit CONFIG [--channels-last]"))?,
    );
    let channels_last = args.iter().any(|a| a == "--channels-last");
    // The same allocator settings as the binary: the limit is the best the forward can do.
    zoo_select::allocator::reuse_freed_memory();
    let plan = Plan::new(&config, Overrides::default())?;
    zoo_select::taps::run_graphs_unoptimised();
    let folder = dataset::scan(&plan.config.dataset.root, plan.config.dataset.max_per_class)?;
    let batch = plan.config.batch_size;
    let device = plan.device;

    // Decode and fit every image for every geometry, untimed: resident u8 pixels.
    let geometries = Geometry::distinct(plan.models.iter().map(|m| &m.input));
    let decoded: Vec<Vec<Vec<u8>>> = folder
        .items
        .par_iter()
        .filter_map(|item| dataset::load(&item.path, &geometries).ok())
        .collect();
    let n = decoded.len();

    let mut per_model = Vec::new();
    let start = Instant::now();
    for spec in &plan.models {
        let g = Geometry::of(&spec.input);
        let gi = geometries.iter().position(|x| *x == g).unwrap_or(0);
        let module = zoo_select::zoo::inference_module(spec, device, plan.config.precision)?;
        let kind = plan.config.precision.kind();
        let mean = Tensor::from_slice(&spec.input.mean.map(|x| x as f32))
            .view([1, 3, 1, 1])
            .to_device(device);
        let std = Tensor::from_slice(&spec.input.std.map(|x| x as f32))
            .view([1, 3, 1, 1])
            .to_device(device);
        let s = g.size as i64;
        let batches: Vec<Tensor> = decoded
            .chunks(batch)
            .map(|chunk| {
                let bytes: Vec<u8> = chunk
                    .iter()
                    .flat_map(|img| img[gi].iter().copied())
                    .collect();
                let t = Tensor::from_slice(&bytes).view([chunk.len() as i64, s, s, 3]);
                match device {
                    Device::Cuda(_) => t.pin_memory(device),
                    _ => t,
                }
            })
            .collect();
        let t = Instant::now();
        for host in &batches {
            let x = host
                .to_device_(device, Kind::Uint8, true, false)
                .permute([0, 3, 1, 2]);
            let x = if channels_last { x } else { x.contiguous() };
            let x = (((x.to_kind(Kind::Float) / 255.0) - &mean) / &std).to_kind(kind);
            let _out = module.run(&spec.name, &x, 0)?;
        }
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
        per_model
            .push(serde_json::json!({"model": spec.name, "seconds": t.elapsed().as_secs_f64()}));
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"images": n, "seconds": seconds, "images_per_s": n as f64 / seconds, "models": per_model})
    );
    Ok(())
}
