//! Transferability metrics, one file each, all computed exactly from the statistics of the single
//! pass, at its end.
//!
//! A metric says which statistics it needs (so the pipeline allocates only those) and how to
//! finish them into a score, higher meaning "transfers better". Layer metrics (TransRate, LogME,
//! H-scores, GBC, k-NN, SFDA, NCM, CDNV, TransRate's permutation z) score each (model, layer) from its `ClassMoments`; source metrics
//! (NCE, LEEP) score a model from its classifier's predictions (`SourceStats`), the same for all
//! its layers; relative metrics (NCTI) finish each (model, layer) into raw terms and score a row
//! only against all the run's candidate rows (`Relative`). Adding a metric is one file plus one
//! line in `build`.

mod cdnv;
pub mod degenerate;
mod gbc;
mod hscore;
mod hscore_shrink;
pub mod jackknife;
mod knn;
mod leep;
mod logme;
mod metric;
mod nce;
mod ncm;
mod ncti;
mod sfda;
mod spectral;
mod transrate;
mod transrate_z;

pub use cdnv::Cdnv;
pub use gbc::Gbc;
pub use hscore::HScore;
pub use hscore_shrink::ShrinkageHScore;
pub use knn::Knn;
pub use leep::Leep;
pub use logme::LogMe;
pub use nce::Nce;
pub use ncm::Ncm;
pub use ncti::Ncti;
pub use sfda::Sfda;
pub use transrate::{coding_rate, TransRate};
pub use transrate_z::TransRateZ;

use crate::config::Config;

pub(crate) use metric::read_sample;
pub use metric::{Metric, Relative, SampleRows};

/// Every metric `metrics:` accepts, in the order `all` lists them.
pub const KNOWN: &[&str] = &[
    "transrate",
    "logme",
    "hscore",
    "hscore_shrink",
    "nce",
    "leep",
    "gbc",
    "knn",
    "sfda",
    "ncti",
    "ncm",
    "cdnv",
    "transrate_z",
];

/// The metric `name` (one of KNOWN) with its options from the config.
pub fn by_name(name: &str, config: &Config) -> Option<Box<dyn Metric>> {
    let sample = config.sample.max_images;
    Some(match name {
        "transrate" => Box::new(TransRate::new(&config.transrate)),
        "logme" => Box::new(LogMe),
        "hscore" => Box::new(HScore),
        "hscore_shrink" => Box::new(ShrinkageHScore),
        "nce" => Box::new(Nce),
        "leep" => Box::new(Leep),
        "gbc" => Box::new(Gbc),
        "knn" => Box::new(Knn {
            k: config.knn.k,
            max_images: sample,
        }),
        "sfda" => Box::new(Sfda { max_images: sample }),
        "ncti" => Box::new(Ncti { max_images: sample }),
        "ncm" => Box::new(Ncm { max_images: sample }),
        "cdnv" => Box::new(Cdnv),
        "transrate_z" => Box::new(TransRateZ {
            options: config.transrate,
            max_images: sample,
        }),
        _ => return None,
    })
}

/// How the advice's sentences name a score.
pub fn label(name: &str) -> String {
    match name {
        "transrate" => "TransRate".into(),
        "logme" => "LogME".into(),
        "knn" => "k-NN accuracy".into(),
        "ncm" => "nearest-class-mean accuracy".into(),
        "cdnv" => "CDNV".into(),
        "transrate_z" => "TransRate's z against shuffled labels".into(),
        "sfda" => "SFDA".into(),
        "ncti" => "NCTI".into(),
        "gbc" => "GBC".into(),
        "hscore" => "H-score".into(),
        "hscore_shrink" => "shrinkage H-score".into(),
        "nce" => "NCE".into(),
        "leep" => "LEEP".into(),
        other => other.to_owned(),
    }
}

/// The metrics a config asks for, in its order (the first is the primary one); `all` is every
/// metric, TransRate first.
pub fn build(config: &Config) -> Result<Vec<Box<dyn Metric>>, String> {
    let names: Vec<&str> = if config.metrics.iter().any(|m| m == "all") {
        if config.metrics.len() > 1 {
            return Err("`metrics: all` cannot be combined with other names".into());
        }
        KNOWN.to_vec()
    } else {
        config.metrics.iter().map(String::as_str).collect()
    };
    let mut out: Vec<Box<dyn Metric>> = Vec::new();
    for name in names {
        let metric = by_name(name, config).ok_or_else(|| {
            format!(
                "unknown metric `{name}` in `metrics`; known: {}, or `all`",
                KNOWN.join(", ")
            )
        })?;
        if out.iter().any(|m| m.name() == metric.name()) {
            return Err(format!("`metrics` lists `{name}` twice"));
        }
        out.push(metric);
    }
    // Further TransRate configurations, scored from the same statistics in the same pass (their
    // options were checked with the config).
    for (name, options) in &config.transrate_variants {
        if KNOWN.contains(&name.as_str()) || name == "all" {
            return Err(format!(
                "`transrate_variants` cannot use the metric name `{name}`"
            ));
        }
        out.push(Box::new(TransRate::variant(name, options)));
    }
    Ok(out)
}
