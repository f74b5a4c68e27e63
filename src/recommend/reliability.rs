//! How far the benchmark says this run's advice can be trusted: the figures of the rules the run
//! used, in the regime (few or many images a class) closest to the run's, beside the seed
//! ceiling and the baselines that read no feature, in one plain line.

use serde::Serialize;

use super::evidence::{regime_for, Evidence, Figures};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reliability {
    pub benchmark: String,
    /// `scarce` or `full`: the benchmark regime closest to this run's images a class.
    pub regime: String,
    pub targets: usize,
    pub runs: usize,
    /// Accuracy points lost against the best model, the model rule's and the seed ceiling's;
    /// for a default rule, those of the held-out procedure that chose it.
    pub model: Option<Figures>,
    pub model_held_out: bool,
    pub model_ceiling: Option<Figures>,
    /// The same for the widest network (the most parameters): a choice that reads no feature.
    pub most_params: Option<Figures>,
    /// Accuracy points lost against the best cut of each pre-trained network (held out, for
    /// the default strategy).
    pub cut: Option<Figures>,
    pub cut_held_out: bool,
    pub cut_ceiling: Option<Figures>,
    pub deepest: Option<Figures>,
    pub middle: Option<Figures>,
}

impl Reliability {
    /// The figures of model rule `model_key` (`knn/best`) and cut rule `cut_key` for a run with
    /// this many images a class.
    pub fn of(e: &Evidence, model_key: &str, cut_key: &str, images_per_class: f64) -> Reliability {
        let regime = regime_for(images_per_class);
        let pick = |map: &std::collections::BTreeMap<String, super::evidence::Regimes>,
                    key: &str| {
            map.get(key).and_then(|r| r.get(regime)).cloned()
        };
        let default_model = e
            .defaults
            .model
            .get(regime)
            .is_some_and(|m| model_key == format!("{m}/{}", e.defaults.model_layer));
        let default_cut = e.defaults.cut.get(regime).is_some_and(|c| c == cut_key);
        let held =
            |default: bool, which: fn(&super::evidence::Selection) -> &super::evidence::Regimes| {
                e.selection
                    .as_ref()
                    .filter(|_| default)
                    .and_then(|s| which(s).get(regime).cloned())
            };
        let model_held = held(default_model, |s| &s.model);
        let cut_held = held(default_cut, |s| &s.cut);
        Reliability {
            benchmark: e.benchmark.clone(),
            regime: regime.to_owned(),
            targets: e.targets.get(regime).copied().unwrap_or(0),
            runs: e.runs,
            model_held_out: model_held.is_some(),
            model: model_held.or_else(|| pick(&e.model_rules, model_key)),
            model_ceiling: e.ceiling.model.get(regime).cloned(),
            most_params: pick(&e.model_rules, "most_params"),
            cut_held_out: cut_held.is_some(),
            cut: cut_held.or_else(|| pick(&e.cut_rules, cut_key)),
            cut_ceiling: e.ceiling.cut.get(regime).cloned(),
            deepest: pick(&e.cut_rules, "deepest"),
            middle: pick(&e.cut_rules, "middle"),
        }
    }

    /// One line a user can act on; None when the benchmark has no figures for these rules.
    pub fn statement(&self, model_label: &str, cut_label: &str) -> Option<String> {
        let lost = |f: &Option<Figures>| -> Option<String> {
            let f = f.as_ref()?;
            Some(format!("{:.1} points (worst {:.1})", f.mean?, f.worst?))
        };
        let images = if self.regime == "scarce" { 20 } else { 300 };
        let mut parts = Vec::new();
        if let Some(m) = lost(&self.model) {
            let how = if self.model_held_out {
                " (held out)"
            } else {
                ""
            };
            let mut s =
                format!("choosing the model by {model_label}{how} lost {m} against the best model");
            if let Some(w) = lost(&self.most_params) {
                s += &format!(", the widest network {w}");
            }
            parts.push(s);
        }
        if let Some(c) = lost(&self.cut) {
            let how = if self.cut_held_out { " (held out)" } else { "" };
            let mut s = format!("cutting by {cut_label}{how} lost {c} against the best cut");
            if let Some(d) = lost(&self.deepest) {
                s += &format!(", the deepest layer {d}");
            }
            parts.push(s);
        }
        if parts.is_empty() {
            return None;
        }
        let ceiling = match (&self.model_ceiling, &self.cut_ceiling) {
            (Some(m), Some(c)) => match (m.mean, c.mean) {
                (Some(m), Some(c)) => {
                    format!("; fine-tuning seeds alone differ by {m:.1} (models) and {c:.1} (cuts)")
                }
                _ => String::new(),
            },
            _ => String::new(),
        };
        Some(format!(
            "How sure: on {} benchmark targets with {images} images a class, {}{ceiling} (docs/benchmark.md)",
            self.targets,
            parts.join("; ")
        ))
    }
}
