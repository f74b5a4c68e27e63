use std::collections::BTreeMap;

use super::*;

type Row = (
    &'static str,
    &'static str,
    BTreeMap<String, f64>,
    BTreeMap<String, Vec<f64>>,
);

fn scores(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn folds(pairs: &[(&str, &[f64])]) -> BTreeMap<String, Vec<f64>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
        .collect()
}

fn rows(t: &[Row]) -> Vec<LayerScores<'_>> {
    t.iter()
        .map(|(m, l, s, f)| LayerScores {
            model: m,
            layer: l,
            scores: s,
            folds: f,
        })
        .collect()
}

fn ask<'a>(primary: &'a str, rule: &str, cut: &str) -> Ask<'a> {
    Ask {
        primary,
        per_model: false,
        rule: ModelRule::by_name(rule).unwrap(),
        strategy: Strategy::by_name(cut).unwrap(),
        evidence: None,
        images_per_class: 20.0,
    }
}

/// Three models. Raw TransRate prefers the wide `wide` (a random-label network, say); k-NN
/// prefers `a`, with `b` behind by less than twice the standard error of the difference and
/// `wide` beyond it. Inside `a`, ncm peaks at l2, l3 close behind.
fn table() -> Vec<Row> {
    let s = |t, k, n| scores(&[("transrate", t), ("knn", k), ("ncm", n)]);
    vec![
        ("a", "l1", s(1.0, 0.60, 0.50), folds(&[])),
        (
            "a",
            "l2",
            s(2.0, 0.80, 0.70),
            folds(&[("knn", &[0.80, 0.82, 0.78]), ("ncm", &[0.70, 0.72, 0.68])]),
        ),
        (
            "a",
            "l3",
            s(3.0, 0.70, 0.69),
            folds(&[("ncm", &[0.71, 0.69, 0.67])]),
        ),
        (
            "b",
            "m1",
            s(2.5, 0.79, 0.60),
            folds(&[("knn", &[0.83, 0.76, 0.78])]),
        ),
        (
            "wide",
            "w1",
            s(9.0, 0.50, 0.40),
            folds(&[("knn", &[0.50, 0.52, 0.48])]),
        ),
    ]
}

#[test]
fn the_model_by_its_rule_the_cut_by_its_strategy_with_what_is_within_noise() {
    let t = table();
    let (rec, cuts) = recommend(&rows(&t), &ask("transrate", "knn", "ncm"));
    assert_eq!(
        (rec.model.as_deref(), rec.layer.as_deref(), rec.score),
        (Some("a"), Some("l2"), Some(0.80))
    );
    assert_eq!(
        (rec.metric.as_str(), rec.score_layer.as_deref()),
        ("knn", Some("l2"))
    );
    // a - b by fold: 0.80-0.83, 0.82-0.76, 0.78-0.78 = -0.03, 0.06, 0: far noisier than 0.01.
    // a - wide: 0.30 in every fold: no error, told apart.
    assert_eq!(rec.models_within_noise, ["b"]);
    // Fold 0: b (0.83) beats a (0.80); a stays first in folds 1 and 2.
    assert_eq!(rec.stays_first, Some(2.0 / 3.0));
    // l3 has ncm fold scores; l2 - l3 = -0.01, 0.03, 0.01: within noise. l1 has none, and is
    // 0.2 below: beyond ncm's margin of 0.01.
    assert_eq!(rec.alternatives, ["l3"]);
    assert_eq!(
        rec.text,
        "Fine-tune a: keep everything up to l2 and re-train what follows.\n\
         a has the best k-NN accuracy: 0.800 ± 0.023 at l2; l2 has its best nearest-class-mean \
         accuracy: 0.700 ± 0.023.\n\
         a stays first in 67% of the rescorings that leave out one fold of the images.\n\
         By k-NN accuracy, this run cannot tell b apart from a (the differences are within twice \
         their standard error); if you can afford two fine-tuning runs, try a and b.\n\
         l3 is within noise of l2 by nearest-class-mean accuracy; if you can afford two \
         fine-tuning runs, try l2 and l3."
    );
    assert_eq!(cuts["b"].layer, "m1");
    assert_eq!(cuts["wide"].layer, "w1");
}

#[test]
fn the_published_way_picks_the_widest_and_deepest() {
    let t = table();
    let (rec, _) = recommend(&rows(&t), &ask("transrate", "primary", "primary"));
    assert_eq!(
        (rec.model.as_deref(), rec.layer.as_deref()),
        (Some("wide"), Some("w1"))
    );
    let (rec, cuts) = recommend(&rows(&t), &ask("transrate", "knn", "deepest"));
    assert_eq!(
        (rec.model.as_deref(), rec.layer.as_deref()),
        (Some("a"), Some("l3"))
    );
    assert!(cuts["a"].alternatives.is_empty());
}

/// The pair to try is always the pick and the alternative furthest from it in depth (the
/// deeper of two as far), never the two ends of the range without the pick.
#[test]
fn the_layers_to_try_include_the_pick() {
    let f = |v: &[f64]| folds(&[("ncm", v)]);
    let t: Vec<Row> = vec![
        (
            "a",
            "l1",
            scores(&[("knn", 0.5), ("ncm", 0.69)]),
            f(&[0.70, 0.68, 0.69]),
        ),
        (
            "a",
            "l2",
            scores(&[("knn", 0.6), ("ncm", 0.70)]),
            f(&[0.69, 0.71, 0.70]),
        ),
        (
            "a",
            "l3",
            scores(&[("knn", 0.7), ("ncm", 0.69)]),
            f(&[0.71, 0.67, 0.69]),
        ),
        (
            "a",
            "l4",
            scores(&[("knn", 0.6), ("ncm", 0.60)]),
            f(&[0.60, 0.60, 0.60]),
        ),
    ];
    let (rec, _) = recommend(&rows(&t), &ask("transrate", "knn", "ncm"));
    assert_eq!(rec.alternatives, ["l1", "l3"]);
    assert!(
        rec.text.contains(
            "l1 and l3 are within noise of l2 by nearest-class-mean accuracy; if you can afford \
             two fine-tuning runs, try l2 and l3."
        ),
        "{}",
        rec.text
    );
}

#[test]
fn whole_model_metrics_and_missing_scores() {
    let t: Vec<Row> = vec![
        ("a", "l1", scores(&[("leep", -1.0)]), folds(&[])),
        ("a", "l2", scores(&[("leep", -1.0)]), folds(&[])),
        ("b", "m1", scores(&[("leep", -0.5)]), folds(&[])),
    ];
    let mut asked = ask("leep", "primary", "ncm");
    asked.per_model = true;
    let (rec, cuts) = recommend(&rows(&t), &asked);
    assert_eq!((rec.model.as_deref(), rec.layer), (Some("b"), None));
    assert_eq!(
        rec.text,
        "Fine-tune b; leep scores whole models, so choose the cut with a layer metric.\n\
         b has the best LEEP: -0.5000 at m1."
    );
    assert!(cuts.is_empty());
    let (rec, _) = recommend(&rows(&t), &ask("transrate", "knn", "ncm"));
    assert_eq!(
        (rec.model, rec.text.as_str()),
        (None, "No layer has a knn score")
    );
}

#[test]
fn unknown_rules_name_the_known_ones() {
    assert_eq!(
        Strategy::by_name("middle").unwrap_err(),
        "unknown cut strategy `middle` in `recommend`; known: auto, ncm, transrate_z, knn, sfda, \
         logme, subspace, primary, deepest"
    );
    assert_eq!(
        ModelRule::by_name("widest").unwrap_err(),
        "unknown model rule `widest` in `recommend.model`; known: knn, ncm, transrate_z, sfda, \
         logme, primary"
    );
}

fn figures(mean: f64, worst: f64) -> Option<Figures> {
    Some(Figures {
        cases: 7,
        mean: Some(mean),
        worst: Some(worst),
        wtau: Some(0.5),
        within_noise: None,
    })
}

#[test]
fn the_benchmark_is_quoted_for_the_runs_regime() {
    let both = |m, w| Regimes {
        scarce: figures(m, w),
        full: figures(m / 10.0, w / 10.0),
    };
    let e = Evidence {
        benchmark: "graded".into(),
        protocol: "x".into(),
        runs: 100,
        targets: [("scarce".to_owned(), 7), ("full".to_owned(), 6)].into(),
        defaults: Defaults {
            model: [("scarce", "knn"), ("full", "knn")]
                .map(|(r, m)| (r.to_owned(), m.to_owned()))
                .into(),
            model_layer: "best".into(),
            cut: [("scarce", "ncm"), ("full", "transrate_z")]
                .map(|(r, m)| (r.to_owned(), m.to_owned()))
                .into(),
        },
        switch_images_per_class: Some(77.46),
        model_rules: [
            ("knn/best".to_owned(), both(0.11, 0.67)),
            ("most_params".to_owned(), both(8.6, 15.8)),
        ]
        .into(),
        cut_rules: [
            ("ncm".to_owned(), both(0.65, 2.9)),
            ("transrate_z".to_owned(), both(0.5, 2.0)),
            ("deepest".to_owned(), both(0.99, 6.2)),
        ]
        .into(),
        ceiling: Ceiling {
            model: both(0.24, 1.2),
            cut: both(0.6, 2.6),
        },
        selection: Some(Selection {
            model: both(0.29, 1.3),
            cut: both(0.79, 3.3),
        }),
    };
    let t = table();
    let mut asked = ask("transrate", "knn", "ncm");
    asked.evidence = Some(&e);
    let (rec, _) = recommend(&rows(&t), &asked);
    assert!(
        rec.text.ends_with(
            "How sure: on 7 benchmark targets with 20 images a class, choosing the model by k-NN \
         accuracy (held out) lost 0.3 points (worst 1.3) against the best model, the widest network 8.6 \
         points (worst 15.8); cutting by nearest-class-mean accuracy (held out) lost 0.8 points \
         (worst 3.3) against the best cut, the deepest layer 1.0 points (worst 6.2); fine-tuning seeds alone \
         differ by 0.2 (models) and 0.6 (cuts) (docs/benchmark.md)."
        ),
        "{}",
        rec.text
    );
    asked.images_per_class = 500.0;
    let (rec, _) = recommend(&rows(&t), &asked);
    assert_eq!(
        rec.reliability.as_ref().map(|r| r.regime.as_str()),
        Some("full")
    );
    assert!(
        rec.text
            .contains("on 6 benchmark targets with 300 images a class"),
        "{}",
        rec.text
    );
}

/// The shipped rules are the ones the graded benchmark's held-out selection chose in each
/// regime, switching where the binary switches, and have its figures to quote.
#[test]
fn the_defaults_are_the_embedded_evidences() {
    let e = Evidence::embedded().expect("src/recommend/evidence.json parses");
    let auto = Strategy::by_name(DEFAULT_STRATEGY).unwrap();
    for (regime, images) in [("scarce", 20.0), ("full", 300.0)] {
        assert_eq!(
            (
                e.defaults.model.get(regime).map(String::as_str),
                e.defaults.model_layer.as_str(),
                e.defaults.cut.get(regime).map(String::as_str),
            ),
            (
                Some(DEFAULT_MODEL_RULE),
                "best",
                Some(auto.resolve(images).name)
            ),
            "{regime}"
        );
        assert!(e.cut_rules.contains_key(auto.resolve(images).name));
    }
    let switch = e.switch_images_per_class.expect("the switch is recorded");
    assert!((switch - SWITCH).abs() < 1e-3, "{switch} vs {SWITCH}");
    assert!(e
        .model_rules
        .contains_key(&format!("{DEFAULT_MODEL_RULE}/best")));
    assert!(e.model_rules.contains_key("most_params"));
    assert!(e.cut_rules.contains_key("deepest"));
}

/// `auto` follows `ncm` below the switch and `transrate_z` from it on, in the cut, the words
/// and the benchmark figures quoted; the report still names the strategy asked for.
#[test]
fn auto_cuts_by_the_regimes_score() {
    let auto = Strategy::by_name("auto").unwrap();
    assert_eq!(auto.resolve(SWITCH - 0.01).name, "ncm");
    assert_eq!(auto.resolve(SWITCH).name, "transrate_z");
    assert_eq!(Strategy::by_name("knn").unwrap().resolve(1e6).name, "knn");
    // In model a, ncm peaks at l2 and transrate_z at l3.
    let s = |k, n, z| scores(&[("knn", k), ("ncm", n), ("transrate_z", z)]);
    let t: Vec<Row> = vec![
        ("a", "l2", s(0.80, 0.70, 3.0), folds(&[])),
        ("a", "l3", s(0.70, 0.60, 9.0), folds(&[])),
    ];
    let mut asked = ask("transrate", "knn", "auto");
    let (few, _) = recommend(&rows(&t), &asked);
    asked.images_per_class = 300.0;
    let (many, _) = recommend(&rows(&t), &asked);
    assert_eq!(
        [&few, &many].map(|r| (
            r.layer.as_deref(),
            r.cut_metric.as_str(),
            r.strategy.as_str()
        )),
        [
            (Some("l2"), "ncm", "auto"),
            (Some("l3"), "transrate_z", "auto")
        ]
    );
    assert!(
        many.text
            .contains("l3 has its best TransRate's z against shuffled labels: 9"),
        "{}",
        many.text
    );
}
