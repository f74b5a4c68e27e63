//! How long the final scoring step takes for a large layer: D = 2048 features, C = 100 classes
//! (ResNet-50's last stage on CIFAR-100), 50 images per class. Not a test: a measurement.
//!
//!     . scripts/env.sh && cargo run --release --example scoring_cost [D] [C]

use std::time::Instant;

use tch::{Device, Kind, Tensor};
use zoo_select::metrics::{Metric, TransRate};
use zoo_select::stats::{BatchLabels, ClassMoments};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (d, c) = (
        args.first().copied().unwrap_or(2048),
        args.get(1).copied().unwrap_or(100),
    );
    let per_class = 50;
    tch::manual_seed(0);
    let mut stats = ClassMoments::new(c, d, true, Device::Cpu).expect("allocate");
    let fill = Instant::now();
    for class in 0..c {
        let x = Tensor::randn([per_class as i64, d as i64], (Kind::Float, Device::Cpu))
            + class as f64 * 0.01;
        let labels = BatchLabels::new(&vec![class as i64; per_class], Device::Cpu).expect("labels");
        stats.update(&x, &labels).expect("update");
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let t = Instant::now();
    let score = TransRate { eps: 1e-4 }.score(&stats).expect("score");
    println!(
        "D = {d}, C = {c}: statistics {:.2} GiB, filled in {fill_s:.1} s; TransRate {score:.3} scored in {:.1} s ({} threads)",
        stats.bytes() as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64(),
        tch::get_num_threads()
    );
}
