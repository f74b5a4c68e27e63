//! Every metric from streaming statistics against its plain NumPy reference
//! (tests/oracles/metrics.py) on the committed feature sets, and the streaming properties:
//! any batch split, and any merge order of stores fed disjoint parts, give the same scores, also
//! when the parts were summed about different shifts or went through a statistics file.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use tch::{Device, Kind, Tensor};
use zoo_select::config::{ClassWeight, Normalize, TransRateConfig, TransRateScale};
use zoo_select::error::Error;
use zoo_select::metrics::{
    Cdnv, Gbc, HScore, Knn, Leep, LogMe, Metric, Nce, Ncm, Ncti, Sfda, ShrinkageHScore, TransRate,
    TransRateZ,
};
use zoo_select::stats::{
    BatchLabels, ClassMoments, LayerMeta, LayerStats, ModelStats, Needs, SourceStats,
};
use zoo_select::stats::{RowBudget, Spiller};
use zoo_select::stats_file::{self, FileInfo, ModelEntry, ModelKey, StatsFile};
use zoo_select::zoo::SourceLogits;

/// How the parts of a split are made before they are merged.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    count: usize,
    reverse: bool,
    /// Each part sums about its own first row (as stores made on different devices do).
    own_shifts: bool,
    /// Each part is written to a statistics file and read back.
    via_file: bool,
    /// A class folds its rows into a scatter past this many (None: the default, 2D).
    fold_above: Option<u64>,
    /// After each batch, each part spills its rows to disk while they take more than this many
    /// bytes of memory, as the pass does beyond `memory_budget` (None: never).
    spill_above: Option<u64>,
}

/// Bytes of rows `score` spilled, over all calls (to show a test spilled at all).
static SPILLED: AtomicU64 = AtomicU64::new(0);

fn whole() -> Parts {
    Parts {
        count: 1,
        ..Parts::default()
    }
}

/// `stats` written to a statistics file and read back.
fn roundtrip(stats: ModelStats) -> ModelStats {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.zss");
    let mut file = StatsFile {
        info: FileInfo {
            dataset: stats_file::DatasetId {
                root: "/data".into(),
                classes: vec![],
                fingerprint: "f".into(),
                files: 0,
                covered: "f".into(),
                covered_files: 0,
            },
            shard: None,
            progress: None,
            skipped: vec![],
            device_kind: "cpu".into(),
            pass_s: 0.0,
        },
        models: vec![ModelEntry {
            key: ModelKey {
                name: "m".into(),
                sha256: "0".into(),
                preprocessing: String::new(),
                precision: "f32".into(),
            },
            source_logits: SourceLogits::Unwanted,
            stats,
            file: None,
        }],
    };
    stats_file::write(&path, &mut file).unwrap();
    let mut read = stats_file::read(&path, Device::Cpu).unwrap();
    read.models.remove(0).stats
}

struct Set {
    name: String,
    features: Tensor,
    labels: Vec<i64>,
    logits: Tensor,
    expected: Vec<(String, f64)>,
}

fn sets() -> Vec<Set> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics");
    let files = common::npz_files(&dir, 7);
    assert_eq!(
        files.len(),
        7,
        "fixtures missing: run tests/oracles/make_fixtures.py"
    );
    files
        .into_iter()
        .map(|f| Set {
            features: f.get("features"),
            labels: Vec::<i64>::try_from(f.get("labels")).unwrap(),
            logits: f.get("source_logits"),
            expected: f
                .arrays
                .iter()
                .filter_map(|(k, t)| {
                    k.strip_prefix("expected/")
                        .map(|m| (m.to_owned(), t.double_value(&[])))
                })
                .collect(),
            name: f.name,
        })
        .collect()
}

fn transrate_options(name: &str) -> TransRateConfig {
    let mut o = TransRateConfig::default();
    if let Some(rest) = name.strip_prefix("subspace") {
        o.subspace = Some(3);
        if rest == "_trace" {
            o.scale = TransRateScale::Trace;
        }
        return o;
    }
    let (trace, rank, count, l2) = match name {
        "plain" => (false, false, false, false),
        "trace" => (true, false, false, false),
        "per_rank" => (false, true, false, false),
        "count" => (false, false, true, false),
        "l2" => (false, false, false, true),
        "authors" => (true, true, true, false),
        "all" => (true, true, true, true),
        other => panic!("unknown option set {other}"),
    };
    if trace {
        o.scale = TransRateScale::Trace;
    }
    o.per_rank = rank;
    if count {
        o.class_weight = ClassWeight::Count;
    }
    if l2 {
        o.normalize = Normalize::L2;
    }
    o
}

/// The metric an expected value names.
fn metric(key: &str) -> Box<dyn Metric> {
    match key {
        "logme" => Box::new(LogMe),
        "hscore" => Box::new(HScore),
        "hscore_shrink" => Box::new(ShrinkageHScore),
        "nce" => Box::new(Nce),
        "leep" => Box::new(Leep),
        "gbc" => Box::new(Gbc),
        "sfda" => Box::new(Sfda {
            max_images: 1_000_000,
        }),
        "ncm" => Box::new(Ncm {
            max_images: 1_000_000,
        }),
        "cdnv" => Box::new(Cdnv),
        "transrate_z" => Box::new(TransRateZ {
            options: TransRateConfig::default(),
            max_images: 1_000_000,
        }),
        other if other.starts_with("ncti") => Box::new(Ncti {
            max_images: 1_000_000,
        }),
        other if other.starts_with("knn/k") => Box::new(Knn {
            k: other["knn/k".len()..].parse().unwrap(),
            max_images: 1_000_000,
        }),
        other => Box::new(TransRate::new(&transrate_options(
            other.strip_prefix("transrate/").unwrap(),
        ))),
    }
}

fn classes(labels: &[i64]) -> usize {
    *labels.iter().max().unwrap() as usize + 1
}

/// What takes each batch: its features, source logits, labels for the stores, and labels.
type Sink<'a> = dyn FnMut(&Tensor, &Tensor, &BatchLabels, &[i64]) + 'a;

/// The value `key` names on the set (a score, or NCTI's term `ncti/<term>`), fed in batches
/// ending at `cuts`, split into `parts.count` stores merged in order (see `Parts`).
fn score(key: &str, s: &Set, cuts: &[usize], parts: Parts) -> f64 {
    let m = metric(key);
    let m = m.as_ref();
    let Parts {
        count: parts,
        reverse,
        own_shifts,
        via_file,
        fold_above,
        spill_above,
    } = parts;
    let spill_dir = tempfile::tempdir().unwrap();
    let n = s.labels.len();
    let bounds: Vec<usize> = (0..=parts).map(|k| k * n / parts).collect();
    let needs = m.needs();
    let feed = |range: std::ops::Range<usize>, f: &mut Sink| {
        let mut start = range.start;
        let mut ends: Vec<usize> = cuts
            .iter()
            .copied()
            .filter(|&c| c > range.start && c < range.end)
            .collect();
        ends.push(range.end);
        for end in ends {
            if end > start {
                let labels = &s.labels[start..end];
                // Every row is in the sample (k-NN), under its position in the set.
                let positions: Vec<i64> = (0..(end - start) as i64).collect();
                let ids: Vec<u32> = (start as u32..end as u32).collect();
                let batch = BatchLabels::new(labels, Device::Cpu)
                    .unwrap()
                    .with_sample(&positions, ids, Device::Cpu)
                    .unwrap();
                let (a, len) = (start as i64, (end - start) as i64);
                f(
                    &s.features.narrow(0, a, len),
                    &s.logits.narrow(0, a, len),
                    &batch,
                    labels,
                );
                start = end;
            }
        }
    };
    if needs.source() {
        let mut stores: Vec<SourceStats> = bounds
            .windows(2)
            .map(|w| {
                let mut st = SourceStats::new(
                    classes(&s.labels),
                    s.logits.size()[1] as usize,
                    &needs,
                    Device::Cpu,
                )
                .unwrap();
                feed(w[0]..w[1], &mut |_, logits, batch, labels| {
                    st.update(logits, batch, labels).unwrap()
                });
                if via_file {
                    let stats = ModelStats {
                        layers: vec![],
                        source: Some(st),
                    };
                    return roundtrip(stats).source.unwrap();
                }
                st
            })
            .collect();
        if reverse {
            stores.reverse();
        }
        let mut merged = stores.remove(0);
        for other in &mut stores {
            merged.merge(other).unwrap();
        }
        return m.score_source(&mut merged).unwrap().unwrap();
    }
    let t = m.transform();
    let mut stores: Vec<ClassMoments> = bounds
        .windows(2)
        .map(|w| {
            let row = if own_shifts { w[0] as i64 } else { 0 };
            let shift = t.apply(&s.features.get(row)).unwrap();
            let mut st = ClassMoments::new(classes(&s.labels), &shift, &needs).unwrap();
            if let Some(rows) = fold_above {
                st.set_fold_above(rows);
            }
            let mut spiller = Spiller::new(RowBudget {
                per_part: spill_above,
                dir: spill_dir.path().to_owned(),
            });
            feed(w[0]..w[1], &mut |x, _, batch, _| {
                st.update(&t.apply(x).unwrap(), batch).unwrap();
                spiller.spill_over([&mut st]).unwrap();
            });
            SPILLED.fetch_add(spiller.written, Ordering::Relaxed);
            if via_file {
                let stats = ModelStats {
                    layers: vec![LayerStats {
                        meta: LayerMeta {
                            name: "l".into(),
                            dim: st.dim(),
                            params_after: None,
                        },
                        stores: vec![(t, st)],
                    }],
                    source: None,
                };
                return roundtrip(stats).layers.remove(0).stores.remove(0).1;
            }
            st
        })
        .collect();
    if reverse {
        stores.reverse();
    }
    let mut merged = stores.remove(0);
    for other in &stores {
        merged += other;
    }
    assert_eq!(merged.total(), n as u64);
    let value = match (m.relative(), key.split_once('/')) {
        (Some(r), Some((_, term))) => {
            let i = r.term_names().iter().position(|t| *t == term).unwrap();
            r.terms(&merged).unwrap()[i]
        }
        _ => m.score_layer(&merged).unwrap().unwrap(),
    };
    drop((merged, stores));
    let left: Vec<_> = std::fs::read_dir(spill_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "spill files left behind: {left:?}");
    value
}

/// The keys `score` computes on one set: all but NCTI's score, which needs every set.
fn per_set(s: &Set) -> impl Iterator<Item = &(String, f64)> {
    s.expected.iter().filter(|(k, _)| k != "ncti")
}

/// Relative difference, with an absolute floor for values that are differences of near-equal
/// terms (TransRate of near-constant features is about 0).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-3)
}

#[test]
fn every_metric_matches_its_numpy_reference() {
    let mut worst: Vec<(String, f64)> = Vec::new();
    for s in sets() {
        for (key, want) in per_set(&s) {
            let got = score(key, &s, &[], whole());
            if key.starts_with("knn/") || key == "ncm" {
                // An accuracy: a count of images classified right, equal or wrong.
                assert_eq!(got, *want, "{} {key}", s.name);
            }
            let err = (got - want).abs() / want.abs().max(1e-3);
            match worst.iter_mut().find(|(k, _)| k == key) {
                Some((_, w)) => *w = w.max(err),
                None => worst.push((key.clone(), err)),
            }
            assert!(
                close(got, *want, 1e-6),
                "{} {key}: got {got}, reference {want}, rel err {err:e}",
                s.name
            );
        }
    }
    for (key, err) in worst {
        eprintln!("{key}: worst relative error {err:e}");
    }
}

#[test]
fn every_metric_streams_in_batches_and_merges() {
    // Fixed splits of every set; the property test below draws random ones.
    for s in sets() {
        for (key, _) in per_set(&s) {
            let whole = score(key, &s, &[], whole());
            let n = s.labels.len();
            let parts = Parts {
                count: 3,
                reverse: true,
                own_shifts: true,
                via_file: true,
                fold_above: Some(5),
                spill_above: None,
            };
            let split = score(key, &s, &[1, n / 3, n / 2 + 1], parts);
            assert!(
                close(split, whole, 1e-9),
                "{} {key}: split {split} vs whole {whole}",
                s.name
            );
        }
    }
}

#[test]
fn stores_without_per_class_second_moments_are_smaller() {
    let shift = Tensor::zeros([10], (Kind::Double, Device::Cpu));
    let layer_needs = |metrics: &[&dyn Metric]| {
        metrics
            .iter()
            .fold(Needs::default(), |a, m| a.union(m.needs()))
    };
    // LogME and the H-scores: one (D, D) matrix, O(D^2 + C D).
    let light = ClassMoments::new(
        5,
        &shift,
        &layer_needs(&[&LogMe, &HScore, &ShrinkageHScore, &Gbc]),
    )
    .unwrap();
    assert_eq!(light.bytes(), 8 * (10 + 5 * 10 + 10 * 10 + 5 * 10 + 1 + 10));
    // TransRate adds each class's rows, in host memory, until a class has more than 2D of
    // them; then that class alone keeps a (D, D) scatter on the device instead.
    let all = layer_needs(&[
        &TransRate::plain(1e-4),
        &LogMe,
        &HScore,
        &ShrinkageHScore,
        &Gbc,
    ]);
    let mut heavy = ClassMoments::new(5, &shift, &all).unwrap();
    assert_eq!(heavy.bytes(), light.bytes());
    let feed = |store: &mut ClassMoments, label: i64, rows: i64| {
        let x = Tensor::randn([rows, 10], (Kind::Float, Device::Cpu));
        let labels = vec![label; rows as usize];
        store
            .update(&x, &BatchLabels::new(&labels, Device::Cpu).unwrap())
            .unwrap();
    };
    feed(&mut heavy, 0, 20);
    feed(&mut heavy, 1, 3);
    assert_eq!(heavy.bytes(), light.bytes());
    assert_eq!(heavy.host_bytes(), (20 + 3) * 10 * 4);
    feed(&mut heavy, 0, 1);
    assert_eq!(heavy.bytes(), light.bytes() + 8 * 10 * 10);
    assert_eq!(heavy.host_bytes(), 3 * 10 * 4);
}

#[test]
fn transrate_from_rows_equals_transrate_from_scatters() {
    // Every class as rows (its Gram matrix), every class as a scatter (the form before rows),
    // and classes switching form mid-stream, on every committed set and TransRate option.
    let mut worst: f64 = 0.0;
    for s in sets() {
        for (key, _) in s
            .expected
            .iter()
            .filter(|(k, _)| k.starts_with("transrate"))
        {
            let at = |fold_above| {
                let parts = Parts {
                    fold_above: Some(fold_above),
                    ..whole()
                };
                score(key, &s, &[3, 17, 40], parts)
            };
            let scatters = at(0);
            for fold_above in [u64::MAX, 2, 7] {
                let rows = at(fold_above);
                worst = worst.max((rows - scatters).abs() / scatters.abs().max(1e-3));
                assert!(
                    close(rows, scatters, 1e-9),
                    "{} {key} folding past {fold_above}: {rows} vs {scatters}",
                    s.name
                );
            }
        }
    }
    eprintln!("transrate rows vs scatters: worst relative difference {worst:e}");
}

/// A store that keeps every row of `x` in its sample.
fn sampled(x: &Tensor, labels: &[i64]) -> ClassMoments {
    let needs = Ncti { max_images: 1000 }.needs();
    let mut st = ClassMoments::new(classes(labels), &x.get(0), &needs).unwrap();
    let positions: Vec<i64> = (0..labels.len() as i64).collect();
    let batch = BatchLabels::new(labels, Device::Cpu)
        .unwrap()
        .with_sample(&positions, (0..labels.len() as u32).collect(), Device::Cpu)
        .unwrap();
    st.update(x, &batch).unwrap();
    st
}

#[test]
fn ncti_over_the_sets_as_candidates_matches_its_numpy_reference() {
    // NCTI scores a row only against the other candidates: here the seven sets are the zoo.
    // Five sets have a variance sum above 23.03 (sklearn's `svd` discriminant), two below
    // (well_conditioned, two_image_classes: the `eigen` one with shrinkage).
    let ncti = Ncti {
        max_images: 1_000_000,
    };
    let r = ncti.relative().unwrap();
    let sets = sets();
    let terms: Vec<Vec<f64>> = sets
        .iter()
        .map(|s| r.terms(&sampled(&s.features, &s.labels)).unwrap())
        .collect();
    let scores = r.combine(&terms).unwrap();
    let mut worst: f64 = 0.0;
    for (s, got) in sets.iter().zip(scores) {
        let want = s.expected.iter().find(|(k, _)| k == "ncti").unwrap().1;
        let err = (got - want).abs() / want.abs().max(1e-3);
        worst = worst.max(err);
        assert!(
            close(got, want, 1e-6),
            "{} ncti: got {got}, reference {want}, rel err {err:e}",
            s.name
        );
    }
    eprintln!("ncti (combined over the 7 sets): worst relative error {worst:e}");
}

#[test]
fn ncti_combination_is_min_max_over_the_candidates() {
    let ncti = Ncti { max_images: 10 };
    let r = ncti.relative().unwrap();
    // (seli, ncc, vc): ncc' + seli' - vc', each term scaled to [0, 1] over the rows.
    let rows = vec![
        vec![1.0, 0.5, 3.0],
        vec![3.0, 1.0, 2.0],
        vec![2.0, 0.75, 2.5],
    ];
    assert_eq!(r.combine(&rows).unwrap(), vec![-1.0, 2.0, 0.5]);
    // A term equal on every row contributes 0 (the authors' code divides 0 by 0).
    let rows = vec![vec![1.0, 0.5, 3.0], vec![1.0, 0.9, 3.0]];
    assert_eq!(r.combine(&rows).unwrap(), vec![0.0, 1.0]);
    assert_eq!(r.combine(&[vec![5.0, 0.1, 1.0]]).unwrap(), vec![0.0]);
    assert!(r.combine(&[]).unwrap().is_empty());
    assert!(matches!(r.combine(&[vec![1.0]]), Err(Error::Metric { .. })));
}

#[test]
fn ncti_of_degenerate_samples_is_a_degenerate_row() {
    let ncti = Ncti { max_images: 1000 };
    let r = ncti.relative().unwrap();
    // The message, and whether the failure is numerical (features that barely vary) rather
    // than too few images or classes.
    let failure = |x: &Tensor, labels: &[i64]| match r.terms(&sampled(x, labels)) {
        Err(Error::Degenerate {
            metric,
            message,
            numerical,
        }) => {
            assert_eq!(metric, "ncti");
            (message, numerical)
        }
        Err(other) => panic!("not a degenerate row: {other}"),
        Ok(t) => panic!("scored {t:?}"),
    };
    let message = |x: &Tensor, labels: &[i64]| {
        let (message, numerical) = failure(x, labels);
        assert!(!numerical, "{message}");
        message
    };
    let x = Tensor::randn([6, 4], (Kind::Double, Device::Cpu));
    // One class in the sample (the other classes of the listing have no row in it).
    assert_eq!(
        message(&x, &[2, 2, 2, 2, 2, 2]),
        "1 class(es) in the sample; NCTI's discriminant needs at least 2"
    );
    // No more images than classes: no within-class variation to fit.
    assert_eq!(
        message(&x.narrow(0, 0, 2), &[0, 1]),
        "2 sampled image(s) in 2 classes; NCTI needs more images than classes"
    );
    assert_eq!(
        message(&x.narrow(0, 0, 3), &[0, 1, 2]),
        "3 sampled image(s) in 3 classes; NCTI needs more images than classes"
    );
    // Identical rows: no direction at all, in either branch.
    let flat = Tensor::ones([6, 4], (Kind::Double, Device::Cpu));
    let (m, numerical) = failure(&flat, &[0, 0, 0, 1, 1, 1]);
    assert!(numerical && !m.is_empty(), "{m}");
    let (m, numerical) = failure(&flat.f_mul_scalar(1e6).unwrap(), &[0, 0, 0, 1, 1, 1]);
    assert!(numerical && !m.is_empty(), "{m}");
    // Classes absent from the sample are left out, as SFDA leaves them out: labels 3 and 7
    // score as 0 and 1.
    let y = [3, 3, 3, 7, 7, 7];
    let renumbered = [0, 0, 0, 1, 1, 1];
    let x = Tensor::randn([6, 4], (Kind::Double, Device::Cpu));
    assert_eq!(
        r.terms(&sampled(&x, &y)).unwrap(),
        r.terms(&sampled(&x, &renumbered)).unwrap()
    );
}

#[test]
fn transrate_with_rows_spilled_equals_transrate_in_memory() {
    // Budgets from nothing (every row goes to disk after its batch) to a few rows' worth, with
    // classes folding mid-stream (some of their rows on disk), parts merged and written to a
    // statistics file: the rows read back are the rows written.
    let before = SPILLED.load(Ordering::Relaxed);
    let mut worst: f64 = 0.0;
    for s in sets() {
        for (key, _) in s
            .expected
            .iter()
            .filter(|(k, _)| k.starts_with("transrate"))
        {
            for (spill_above, fold_above, count, via_file) in [
                (0, None, 1, false),
                (300, Some(7), 2, false),
                (1000, None, 3, true),
                (0, Some(2), 2, true),
            ] {
                let parts = Parts {
                    count,
                    via_file,
                    fold_above,
                    spill_above: Some(spill_above),
                    ..whole()
                };
                let memory = score(
                    key,
                    &s,
                    &[3, 17, 40],
                    Parts {
                        spill_above: None,
                        ..parts
                    },
                );
                let spilled = score(key, &s, &[3, 17, 40], parts);
                worst = worst.max((spilled - memory).abs() / memory.abs().max(1e-3));
                assert!(
                    close(spilled, memory, 1e-12),
                    "{} {key} spilling above {spill_above} B: {spilled} vs {memory}",
                    s.name
                );
            }
        }
    }
    assert!(
        SPILLED.load(Ordering::Relaxed) > before,
        "nothing was spilled"
    );
    eprintln!("transrate spilled vs in memory: worst relative difference {worst:e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn batch_split_and_merge_order_do_not_change_any_score(
        set_index in 0usize..7,
        cuts in prop::collection::vec(1usize..120, 0..5),
        count in 1usize..4,
        reverse in any::<bool>(),
        own_shifts in any::<bool>(),
        via_file in any::<bool>(),
        fold_above in prop::option::of(0u64..40),
    ) {
        let s = sets().swap_remove(set_index);
        let parts = Parts { count, reverse, own_shifts, via_file, fold_above, spill_above: None };
        for (key, _) in per_set(&s) {
            let whole = score(key, &s, &[], whole());
            let split = score(key, &s, &cuts, parts);
            prop_assert!(close(split, whole, 1e-9), "{} {}: split {} vs whole {}", s.name, key, split, whole);
        }
    }

    #[test]
    fn transrate_spilling_rows_at_random_budgets_and_splits_is_exact(
        set_index in 0usize..7,
        cuts in prop::collection::vec(1usize..120, 0..5),
        count in 1usize..4,
        reverse in any::<bool>(),
        own_shifts in any::<bool>(),
        via_file in any::<bool>(),
        fold_above in prop::option::of(0u64..40),
        spill_above in 0u64..4000,
    ) {
        let s = sets().swap_remove(set_index);
        let parts = Parts { count, reverse, own_shifts, via_file, fold_above, spill_above: Some(spill_above) };
        let memory = Parts { spill_above: None, ..parts };
        for (key, _) in per_set(&s).filter(|(k, _)| k.starts_with("transrate")) {
            let kept = score(key, &s, &cuts, memory);
            let spilled = score(key, &s, &cuts, parts);
            prop_assert!(close(spilled, kept, 1e-12), "{} {}: spilled {} vs in memory {}", s.name, key, spilled, kept);
        }
    }
}
