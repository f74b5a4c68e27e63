//! How long the final scoring step takes for a large layer: D = 2048 features, C = 100 classes
//! (ResNet-50's last stage on CIFAR-100), 50 images per class, for every layer metric. Not a
//! test: a measurement.
//!
//!     . scripts/env.sh && cargo run --release --example scoring_cost [D] [C]

use std::time::Instant;

use tch::{Device, Kind, Tensor};
use zoo_select::metrics::{Gbc, HScore, LogMe, Metric, ShrinkageHScore, TransRate};
use zoo_select::stats::{BatchLabels, ClassMoments, Needs};

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
    let metrics: Vec<Box<dyn Metric>> = vec![
        Box::new(TransRate::plain(1e-4)),
        Box::new(LogMe),
        Box::new(HScore),
        Box::new(ShrinkageHScore),
        Box::new(Gbc),
    ];
    let needs = metrics
        .iter()
        .fold(Needs::default(), |a, m| a.union(m.needs()));
    tch::manual_seed(0);
    let shift = Tensor::zeros([d as i64], (Kind::Double, Device::Cpu));
    let mut stats = ClassMoments::new(c, &shift, &needs).expect("allocate");
    let fill = Instant::now();
    for class in 0..c {
        let x = Tensor::randn([per_class as i64, d as i64], (Kind::Float, Device::Cpu))
            + class as f64 * 0.01;
        let labels = BatchLabels::new(&vec![class as i64; per_class], Device::Cpu).expect("labels");
        stats.update(&x, &labels).expect("update");
    }
    println!(
        "D = {d}, C = {c}, {} threads: statistics {:.2} GiB, filled in {:.1} s",
        tch::get_num_threads(),
        stats.bytes() as f64 / (1u64 << 30) as f64,
        fill.elapsed().as_secs_f64()
    );
    let all = Instant::now();
    for m in &metrics {
        let t = Instant::now();
        let score = m
            .score_layer(&stats)
            .expect("a layer metric")
            .expect("score");
        println!(
            "  {:<14} {score:>12.4}  {:>6.1} s",
            m.name(),
            t.elapsed().as_secs_f64()
        );
    }
    println!("  all five: {:.1} s", all.elapsed().as_secs_f64());
}
