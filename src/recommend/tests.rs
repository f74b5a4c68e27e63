use std::collections::BTreeMap;

use super::*;

fn scores(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn strategy(name: &str) -> &'static Strategy {
    Strategy::by_name(name).unwrap()
}

/// Two models; transrate grows with depth, logme peaks in the middle of `a`.
fn table() -> Vec<(&'static str, &'static str, BTreeMap<String, f64>)> {
    vec![
        ("a", "l1", scores(&[("transrate", 1.0), ("logme", -0.30)])),
        ("a", "l2", scores(&[("transrate", 2.0), ("logme", 0.10)])),
        ("a", "l3", scores(&[("transrate", 3.0), ("logme", 0.09)])),
        ("a", "l4", scores(&[("transrate", 4.0), ("logme", -0.20)])),
        ("b", "m1", scores(&[("transrate", 0.5), ("logme", 0.20)])),
        ("b", "m2", scores(&[("transrate", 3.5), ("logme", -0.10)])),
    ]
}

fn rows<'a>(t: &'a [(&'static str, &'static str, BTreeMap<String, f64>)]) -> Vec<LayerScores<'a>> {
    t.iter()
        .map(|(m, l, s)| LayerScores {
            model: m,
            layer: l,
            scores: s,
        })
        .collect()
}

#[test]
fn the_model_by_the_primary_metric_the_cut_by_the_strategy() {
    let t = table();
    let (rec, cuts) = recommend(&rows(&t), "transrate", false, strategy("logme"), None);
    assert_eq!(
        (rec.model.as_deref(), rec.layer.as_deref(), rec.score),
        (Some("a"), Some("l2"), Some(4.0))
    );
    assert_eq!(
        (rec.strategy.as_str(), rec.cut_metric.as_str()),
        ("logme", "logme")
    );
    // l3 is 0.01 below l2: within logme's margin of 0.02; l1 and l4 are not.
    assert_eq!(rec.alternatives, ["l3"]);
    assert_eq!(
        rec.text,
        "Fine-tune a (transrate 4.0000): keep everything up to l2 and re-train what follows.\n\
         l2 and l3 are within noise of each other by LogME: the scores cannot separate them; \
         if you can afford two fine-tuning runs, try l2 and l3."
    );
    assert_eq!(
        cuts["b"],
        Cut {
            layer: "m1".into(),
            score: 0.20,
            alternatives: vec![],
        }
    );
}

#[test]
fn the_primary_strategy_keeps_the_published_behaviour() {
    let t = table();
    let (rec, cuts) = recommend(&rows(&t), "transrate", false, strategy("primary"), None);
    assert_eq!(
        (rec.model.as_deref(), rec.layer.as_deref()),
        (Some("a"), Some("l4"))
    );
    // Alternatives: the layers within the strategy's margin of l4's 4.0.
    let margin = strategy("primary").margin;
    let within: Vec<&str> = [("l1", 1.0), ("l2", 2.0), ("l3", 3.0)]
        .into_iter()
        .filter(|(_, s)| 4.0 - s <= margin)
        .map(|(l, _)| l)
        .collect();
    assert_eq!(rec.alternatives, within);
    assert!(rec.text.starts_with(
        "Fine-tune a (transrate 4.0000): keep everything up to l4 and re-train what follows"
    ));
    assert_eq!(cuts["b"].layer, "m2");
}

#[test]
fn the_range_within_noise_is_named_by_its_ends_in_layer_order() {
    let t = vec![
        ("a", "l1", scores(&[("logme", 0.0)])),
        ("a", "l2", scores(&[("logme", 0.50)])),
        ("a", "l3", scores(&[("logme", 0.51)])),
        ("a", "l4", scores(&[("logme", 0.495)])),
    ];
    let (rec, _) = recommend(&rows(&t), "logme", false, strategy("logme"), None);
    assert_eq!(rec.layer.as_deref(), Some("l3"));
    assert_eq!(rec.alternatives, ["l2", "l4"]);
    assert!(
        rec.text.ends_with(
            "l2, l3 and l4 are within noise of each other by LogME: the scores cannot separate them; \
             if you can afford two fine-tuning runs, try l2 and l4."
        ),
        "{}",
        rec.text
    );
}

#[test]
fn evidence_is_stated_as_the_benchmarks() {
    let t = table();
    let e = StrategyEvidence {
        targets: 5,
        regret_points: 1.234,
        weighted_tau: 0.31,
        ceiling_weighted_tau: 0.45,
        alternatives_cover: 0.8,
        middle_weighted_tau: 0.2,
        middle_regret_points: 1.0,
    };
    let (rec, _) = recommend(&rows(&t), "transrate", false, strategy("primary"), Some(&e));
    assert_eq!(rec.reliability.as_ref(), Some(&e));
    assert!(rec.text.ends_with(
        "How sure: on 5 held-out benchmark targets the `primary` cut lost 1.2 accuracy points on \
         average against the best cut (weighted tau 0.31 over cuts; fine-tuning seeds agree with \
         each other at 0.45), and the cut or an alternative was within seed noise of the best in \
         80% of cases (docs/benchmark.md)."
    ));
    let weaker = StrategyEvidence {
        middle_weighted_tau: 0.37,
        ..e
    };
    let (rec, _) = recommend(
        &rows(&t),
        "transrate",
        false,
        strategy("primary"),
        Some(&weaker),
    );
    assert!(rec.text.ends_with(
        "There the middle of the candidate layers did better (1.0 points lost, tau 0.37): treat \
         the cut as a hint and compare it with a mid-depth one."
    ));
}

#[test]
fn whole_model_metrics_and_missing_scores() {
    let t = vec![
        ("a", "l1", scores(&[("leep", -1.0)])),
        ("a", "l2", scores(&[("leep", -1.0)])),
        ("b", "m1", scores(&[("leep", -0.5)])),
    ];
    let (rec, cuts) = recommend(&rows(&t), "leep", true, strategy("logme"), None);
    assert_eq!((rec.model.as_deref(), rec.layer), (Some("b"), None));
    assert_eq!(
        rec.text,
        "Fine-tune b (leep -0.5000); leep scores whole models, so choose the cut with a layer metric"
    );
    assert!(cuts.is_empty());
    let (rec, _) = recommend(&rows(&t), "transrate", false, strategy("primary"), None);
    assert_eq!(
        (rec.model, rec.text.as_str()),
        (None, "No layer has a transrate score")
    );
}

#[test]
fn unknown_strategies_name_the_known_ones() {
    assert_eq!(
        Strategy::by_name("deepest").unwrap_err(),
        "unknown strategy `deepest` in `recommend`; known: primary, logme, subspace"
    );
    assert!(Strategy::by_name(DEFAULT_STRATEGY).is_ok());
}

#[test]
fn the_embedded_evidence_parses_and_covers_the_strategies() {
    let e = Evidence::embedded().expect("src/recommend/evidence.json parses");
    for name in e.strategies.keys() {
        assert!(
            Strategy::by_name(name).is_ok(),
            "evidence for unknown strategy {name}"
        );
    }
}
