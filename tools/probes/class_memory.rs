//! What TransRate's per-class statistics cost for many classes and wide layers, kept as rows
//! (a class's feature rows while n_c <= 2D: the default) or as D x D scatters (every class, the
//! form before rows): memory of each kind and the time to fold in the features and to score.
//! Synthetic features through the library; no images. Not a test: a measurement. Prints one
//! JSON line.
//!
//!     . scripts/env.sh && cargo run --release --example class_memory D C N_PER_CLASS [scatters]

use std::time::Instant;

use tch::{Device, Kind, Tensor};
use zoo_select::metrics::{Metric, TransRate};
use zoo_select::stats::{BatchLabels, ClassMoments};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (d, c, per_class) = (num(0, 2048), num(1, 100), num(2, 50));
    let scatters = args.iter().any(|a| a == "scatters");
    let metric = TransRate::plain(1e-4);
    tch::manual_seed(0);
    let shift = Tensor::zeros([d as i64], (Kind::Double, Device::Cpu));
    let mut stats = ClassMoments::new(c, &shift, &metric.needs()).expect("allocate");
    if scatters {
        stats.set_fold_above(0);
    }
    let batch = 64usize;
    let fill = Instant::now();
    for class in 0..c {
        let mut left = per_class;
        while left > 0 {
            let rows = left.min(batch);
            let x = Tensor::randn([rows as i64, d as i64], (Kind::Float, Device::Cpu))
                + class as f64 * 0.01;
            let labels = BatchLabels::new(&vec![class as i64; rows], Device::Cpu).expect("labels");
            stats.update(&x, &labels).expect("update");
            left -= rows;
        }
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let score_start = Instant::now();
    let score = metric
        .score_layer(&stats)
        .expect("a layer metric")
        .expect("score");
    let score_s = score_start.elapsed().as_secs_f64();
    println!(
        "{{\"d\": {d}, \"classes\": {c}, \"per_class\": {per_class}, \"form\": \"{}\", \"device_bytes\": {}, \"host_bytes\": {}, \"fill_s\": {fill_s:.3}, \"score_s\": {score_s:.3}, \"transrate\": {score}, \"threads\": {}}}",
        if scatters { "scatters" } else { "default" },
        stats.bytes(),
        stats.host_bytes(),
        tch::get_num_threads()
    );
}
