//! TransRate from streaming statistics against the NumPy reference (tests/oracles/transrate.py)
//! on the committed feature sets, and the properties of the statistics behind it.

use crate::common;

use std::path::Path;

use tch::{Device, Kind, Tensor};
use zoo_select::metrics::{Metric, TransRate};
use zoo_select::stats::{BatchLabels, ClassMoments, Needs};

struct Set {
    name: String,
    features: Tensor,
    labels: Vec<i64>,
    eps: f64,
    expected: f64,
}

fn sets() -> Vec<Set> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transrate");
    common::npz_files(&dir, 7)
        .into_iter()
        .map(|f| Set {
            features: f.get("features"),
            labels: Vec::<i64>::try_from(f.get("labels")).unwrap(),
            eps: f.get("eps").double_value(&[]),
            expected: f.get("expected").double_value(&[]),
            name: f.name,
        })
        .collect()
}

fn set(name: &str) -> Set {
    sets().into_iter().find(|s| s.name == name).unwrap()
}

fn classes(labels: &[i64]) -> usize {
    *labels.iter().max().unwrap() as usize + 1
}

fn needs() -> Needs {
    Needs {
        class_second: true,
        ..Needs::default()
    }
}

/// Statistics of all of `x` in one batch, about `shift`.
fn accumulate(x: &Tensor, labels: &[i64], shift: &Tensor) -> ClassMoments {
    let mut m = ClassMoments::new(classes(labels), shift, &needs()).unwrap();
    m.update(x, &BatchLabels::new(labels, Device::Cpu).unwrap())
        .unwrap();
    m
}

fn score(eps: f64, stats: &ClassMoments) -> f64 {
    TransRate::plain(eps).score_layer(stats).unwrap().unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn matches_the_numpy_reference() {
    let mut worst: f64 = 0.0;
    for s in sets() {
        // About the first image: near the data, as the pipeline's blank-image probe is.
        let stats = accumulate(&s.features, &s.labels, &s.features.get(0));
        let got = score(s.eps, &stats);
        let err = rel(got, s.expected);
        eprintln!("{}: rel err {err:e}", s.name);
        worst = worst.max(err);
        assert!(
            err <= 1e-9,
            "{}: got {got}, reference {}, rel err {err:e}",
            s.name,
            s.expected
        );
    }
    eprintln!("worst relative error against NumPy: {worst:e}");
}

#[test]
fn the_shift_keeps_the_digits_of_features_far_from_the_origin() {
    // Features near 1000 with spread 1: about zero, S - n mu mu^T cancels six digits.
    let s = set("large_offset");
    let d = s.features.size()[1];
    let near = rel(
        score(
            s.eps,
            &accumulate(&s.features, &s.labels, &s.features.get(0)),
        ),
        s.expected,
    );
    let zero = rel(
        score(
            s.eps,
            &accumulate(
                &s.features,
                &s.labels,
                &Tensor::zeros([d], (Kind::Double, Device::Cpu)),
            ),
        ),
        s.expected,
    );
    eprintln!("large offset: rel err {near:e} about the first image, {zero:e} about zero");
    assert!(near < 1e-12, "{near:e}");
    assert!(zero > 100.0 * near, "{zero:e} vs {near:e}");
}

#[test]
fn f32_features_give_the_same_statistics_as_their_f64_values() {
    let s = set("well_conditioned");
    let x32 = s.features.to_kind(Kind::Float);
    let shift = x32.get(0).to_kind(Kind::Double);
    let a = accumulate(&x32, &s.labels, &shift);
    let b = accumulate(&x32.to_kind(Kind::Double), &s.labels, &shift);
    // Equal to f64 rounding: statistics kept in f32 anywhere would differ by about 1e-7. Not
    // bit for bit: with tests running side by side, the f64 products can split their work
    // differently from one call to the next (seen once in a full `cargo test`).
    let (sa, sb) = (score(s.eps, &a), score(s.eps, &b));
    assert!(rel(sa, sb) < 1e-12, "{sa} against {sb}");
}

#[test]
fn one_image_classes_give_finite_scores() {
    let s = set("singleton_class");
    let stats = accumulate(&s.features, &s.labels, &s.features.get(0));
    assert_eq!(stats.counts()[1], 1);
    assert!(score(s.eps, &stats).is_finite());
}

#[test]
fn classes_without_images_are_left_out_of_the_mean() {
    // Labels 0 and 2 only: class 1 has no rows, so C = 2 as in the reference on the same rows.
    let s = set("well_conditioned");
    let keep: Vec<i64> = (0..s.labels.len() as i64)
        .filter(|&i| s.labels[i as usize] != 1)
        .collect();
    let x = s.features.index_select(0, &Tensor::from_slice(&keep));
    let labels: Vec<i64> = keep.iter().map(|&i| s.labels[i as usize]).collect();
    let relabelled: Vec<i64> = labels.iter().map(|&l| if l == 2 { 1 } else { l }).collect();
    let sparse = accumulate(&x, &labels, &x.get(0));
    let dense = accumulate(&x, &relabelled, &x.get(0));
    assert!(rel(score(s.eps, &sparse), score(s.eps, &dense)) < 1e-12);
}

#[test]
fn stores_merge_only_with_stores_of_the_same_shape() {
    let shift = Tensor::zeros([4], (Kind::Double, Device::Cpu));
    let mut a = ClassMoments::new(3, &shift, &needs()).unwrap();
    let b = ClassMoments::new(
        3,
        &Tensor::zeros([5], (Kind::Double, Device::Cpu)),
        &needs(),
    )
    .unwrap();
    assert!(a.merge(&b).is_err());
    let c = ClassMoments::new(3, &shift, &Needs::default()).unwrap();
    assert!(a.merge(&c).is_err());
    let d = ClassMoments::new(3, &shift.ones_like(), &needs()).unwrap();
    assert!(a.merge(&d).is_ok());
    // On the device, 8 (D + C D + D^2 + C D) bytes with per-class second moments (the total and
    // the diagonals; each class's rows are in host memory until it outgrows a scatter), and
    // 8 (D + C D) without.
    assert_eq!(a.bytes(), 8 * (4 + 3 * 4 + 4 * 4 + 3 * 4));
    assert_eq!(a.host_bytes(), 0);
    assert_eq!(c.bytes(), 8 * (4 + 3 * 4));
}
