//! TransRate from streaming statistics against the NumPy reference (scripts/reference/transrate.py)
//! on the committed feature sets, and the streaming properties: batch split and merge order do
//! not change a score.

use std::path::Path;

use proptest::prelude::*;
use tch::{Device, Kind, Tensor};
use zoo_select::metrics::{Metric, TransRate};
use zoo_select::stats::{BatchLabels, ClassMoments};

struct Set {
    name: String,
    features: Tensor,
    labels: Vec<i64>,
    eps: f64,
    expected: f64,
}

fn sets() -> Vec<Set> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transrate");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 7, "fixtures missing");
    paths
        .into_iter()
        .map(|p| {
            let arrays = Tensor::read_npz(&p).unwrap();
            let get = |k: &str| {
                arrays
                    .iter()
                    .find(|(n, _)| n == k)
                    .unwrap()
                    .1
                    .shallow_clone()
            };
            Set {
                name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                features: get("features"),
                labels: Vec::<i64>::try_from(get("labels")).unwrap(),
                eps: get("eps").double_value(&[]),
                expected: get("expected").double_value(&[]),
            }
        })
        .collect()
}

fn classes(labels: &[i64]) -> usize {
    *labels.iter().max().unwrap() as usize + 1
}

/// Statistics of `rows` of `x`, fed in batches ending at each of `cuts`.
fn accumulate(
    x: &Tensor,
    labels: &[i64],
    rows: std::ops::Range<usize>,
    cuts: &[usize],
) -> ClassMoments {
    let mut m =
        ClassMoments::new(classes(labels), x.size()[1] as usize, true, Device::Cpu).unwrap();
    let mut start = rows.start;
    let mut ends: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > rows.start && c < rows.end)
        .collect();
    ends.push(rows.end);
    for end in ends {
        if end > start {
            let batch = BatchLabels::new(&labels[start..end], Device::Cpu).unwrap();
            m.update(&x.narrow(0, start as i64, (end - start) as i64), &batch)
                .unwrap();
            start = end;
        }
    }
    m
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn matches_the_numpy_reference() {
    let mut worst: f64 = 0.0;
    for set in sets() {
        let n = set.labels.len();
        let stats = accumulate(&set.features, &set.labels, 0..n, &[]);
        let got = TransRate { eps: set.eps }.score(&stats).unwrap();
        let err = rel(got, set.expected);
        worst = worst.max(err);
        eprintln!("{}: rel err {err:e}", set.name);
        assert!(
            err <= 1e-9,
            "{}: got {got}, reference {}, rel err {err:e}",
            set.name,
            set.expected
        );
    }
    eprintln!("worst relative error against NumPy: {worst:e}");
}

#[test]
fn f32_features_give_the_same_statistics_as_their_f64_values() {
    let set = sets()
        .into_iter()
        .find(|s| s.name == "well_conditioned")
        .unwrap();
    let n = set.labels.len();
    let x32 = set.features.to_kind(Kind::Float);
    let a = accumulate(&x32, &set.labels, 0..n, &[]);
    let b = accumulate(&x32.to_kind(Kind::Double), &set.labels, 0..n, &[]);
    let t = TransRate { eps: set.eps };
    assert_eq!(t.score(&a).unwrap(), t.score(&b).unwrap());
}

#[test]
fn one_image_classes_give_finite_scores() {
    let set = sets()
        .into_iter()
        .find(|s| s.name == "singleton_class")
        .unwrap();
    let stats = accumulate(&set.features, &set.labels, 0..set.labels.len(), &[]);
    assert_eq!(stats.counts()[1], 1);
    assert!(TransRate { eps: set.eps }
        .score(&stats)
        .unwrap()
        .is_finite());
}

#[test]
fn classes_without_images_are_left_out_of_the_mean() {
    // Labels 0 and 2 only: class 1 has no rows, so C = 2 as in the reference on the same rows.
    let set = sets()
        .into_iter()
        .find(|s| s.name == "well_conditioned")
        .unwrap();
    let keep: Vec<usize> = (0..set.labels.len())
        .filter(|&i| set.labels[i] != 1)
        .collect();
    let idx = Tensor::from_slice(&keep.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let x = set.features.index_select(0, &idx);
    let labels: Vec<i64> = keep.iter().map(|&i| set.labels[i]).collect();
    let stats = accumulate(&x, &labels, 0..labels.len(), &[]);
    let relabelled: Vec<i64> = labels.iter().map(|&l| if l == 2 { 1 } else { l }).collect();
    let dense = accumulate(&x, &relabelled, 0..labels.len(), &[]);
    let t = TransRate { eps: set.eps };
    assert!(rel(t.score(&stats).unwrap(), t.score(&dense).unwrap()) < 1e-12);
}

#[test]
fn merging_stores_of_different_shapes_is_an_error() {
    let mut a = ClassMoments::new(3, 4, true, Device::Cpu).unwrap();
    let b = ClassMoments::new(3, 5, true, Device::Cpu).unwrap();
    assert!(a.merge(&b).is_err());
    let c = ClassMoments::new(3, 4, false, Device::Cpu).unwrap();
    assert!(a.merge(&c).is_err());
    assert_eq!(a.bytes(), 8 * (3 * 4 + 3 * 4 * 4 + 4));
    assert_eq!(c.bytes(), 8 * (3 * 4 + 4));
}

fn dataset() -> impl Strategy<Value = (Vec<f64>, Vec<i64>, usize)> {
    (2usize..5, 1usize..6, 8usize..40).prop_flat_map(|(c, d, n)| {
        (
            prop::collection::vec(-3.0f64..3.0, n * d),
            prop::collection::vec(0..c as i64, n).prop_map(move |mut l| {
                // Every class present at least once keeps C fixed across splits.
                for (i, x) in l.iter_mut().take(c).enumerate() {
                    *x = i as i64;
                }
                l
            }),
            Just(d),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn batch_split_and_merge_order_do_not_change_the_score(
        (values, labels, d) in dataset(),
        cuts in prop::collection::vec(0usize..40, 0..6),
        parts in 1usize..4,
        reverse in any::<bool>(),
    ) {
        let n = labels.len();
        let x = Tensor::from_slice(&values).view([n as i64, d as i64]);
        let t = TransRate { eps: 1e-2 };
        let whole = t.score(&accumulate(&x, &labels, 0..n, &[])).unwrap();

        let streamed = t.score(&accumulate(&x, &labels, 0..n, &cuts)).unwrap();
        prop_assert!(rel(streamed, whole) < 1e-9, "streamed {streamed} vs whole {whole}");

        let bounds: Vec<usize> = (0..=parts).map(|k| k * n / parts).collect();
        let mut stores: Vec<ClassMoments> =
            bounds.windows(2).map(|w| accumulate(&x, &labels, w[0]..w[1], &cuts)).collect();
        if reverse {
            stores.reverse();
        }
        let mut merged = stores.remove(0);
        for s in &stores {
            merged += s;
        }
        prop_assert_eq!(merged.total(), n as u64);
        let m = t.score(&merged).unwrap();
        prop_assert!(rel(m, whole) < 1e-9, "merged {m} vs whole {whole}");
    }
}

#[test]
fn merging_with_an_empty_store_changes_nothing() {
    let set = sets()
        .into_iter()
        .find(|s| s.name == "large_offset")
        .unwrap();
    let n = set.labels.len();
    let t = TransRate { eps: set.eps };
    let full = accumulate(&set.features, &set.labels, 0..n, &[]);
    let want = t.score(&full).unwrap();
    let empty = || {
        ClassMoments::new(
            classes(&set.labels),
            set.features.size()[1] as usize,
            true,
            Device::Cpu,
        )
        .unwrap()
    };

    let mut a = empty();
    a += &full;
    assert_eq!(t.score(&a).unwrap(), want);
    let mut b = accumulate(&set.features, &set.labels, 0..n, &[]);
    b += &empty();
    assert_eq!(t.score(&b).unwrap(), want);
    // The mean survives the shift: the data sit near 1000.
    let mean = full.mean().unwrap();
    let reference = set.features.mean_dim(&[0i64][..], false, Kind::Double);
    assert!((mean - reference).abs().max().double_value(&[]) < 1e-9);
}
