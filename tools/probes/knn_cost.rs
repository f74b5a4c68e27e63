//! What k-NN's scoring step costs: the leave-one-out accuracy over m sampled rows of D
//! features (the m^2 D similarity work, in tiles), with the memory its rows take. Synthetic
//! features through the library. Not a test: a measurement. Prints one JSON line.
//!
//!     . scripts/env.sh && cargo run --release --example knn_cost M [D] [C]

use std::time::Instant;

use tch::{Device, Kind, Tensor};
use zoo_select::metrics::{Knn, Metric};
use zoo_select::stats::{BatchLabels, ClassMoments};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let m = args.first().copied().unwrap_or(1000);
    let d = args.get(1).copied().unwrap_or(2048);
    let c = args.get(2).copied().unwrap_or(100);
    let metric = Knn {
        k: 10,
        max_images: m,
    };
    tch::manual_seed(0);
    let shift = Tensor::zeros([d as i64], (Kind::Double, Device::Cpu));
    let mut stats = ClassMoments::new(c, &shift, &metric.needs()).expect("allocate");
    let batch = 256;
    let mut done = 0;
    while done < m {
        let rows = batch.min(m - done);
        let labels: Vec<i64> = (done..done + rows).map(|i| (i % c) as i64).collect();
        let means = Tensor::from_slice(&labels)
            .to_kind(Kind::Float)
            .view([-1, 1])
            * 0.05;
        let x = Tensor::randn([rows as i64, d as i64], (Kind::Float, Device::Cpu)) + means;
        let positions: Vec<i64> = (0..rows as i64).collect();
        let ids: Vec<u32> = (done as u32..(done + rows) as u32).collect();
        let b = BatchLabels::new(&labels, Device::Cpu)
            .and_then(|b| b.with_sample(&positions, ids, Device::Cpu))
            .expect("labels");
        stats.update(&x, &b).expect("update");
        done += rows;
    }
    let start = Instant::now();
    let score = metric
        .score_layer(&stats)
        .expect("a layer metric")
        .expect("score");
    println!(
        "{{\"m\": {m}, \"d\": {d}, \"classes\": {c}, \"k\": 10, \"rows_bytes\": {}, \"score_s\": {:.3}, \"knn\": {score}, \"threads\": {}}}",
        stats.host_bytes(),
        start.elapsed().as_secs_f64(),
        tch::get_num_threads()
    );
}
