//! Writes the run's files. All three are first written in full to temporary names in the output
//! folder, then renamed into place, report.json last: a reader never sees half a file, and the
//! files of an earlier run are replaced only once the new ones are complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::figure;
use super::ranking::Report;
use crate::error::{Error, Result};

/// report.json, scores.csv and scores.svg in `dir`; returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the output folder", dir, e))?;
    let json = dir.join("report.json");
    let mut report_text = serde_json::to_vec_pretty(report)
        .map_err(|e| Error::io("cannot encode", &json, e.into()))?;
    report_text.push(b'\n');
    let files = [
        (dir.join("scores.csv"), scores_csv(report)?),
        (dir.join("scores.svg"), figure::svg(report).into_bytes()),
        (json, report_text),
    ];
    let staged = files
        .iter()
        .map(|(path, bytes)| stage(path, bytes))
        .collect::<Result<Vec<_>>>()?;
    for ((path, _), tmp) in files.iter().zip(staged) {
        tmp.commit(true)
            .map_err(|e| Error::io("cannot write", path, e))?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// One row per (model, layer, metric), in the report's order, with this run's standard error
/// where the advice's scores have one, and whether the model's weights are pre-trained.
pub fn scores_csv(report: &Report) -> Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_err =
        |e: csv::Error| Error::io("cannot encode", "scores.csv", std::io::Error::other(e));
    out.write_record([
        "model",
        "layer",
        "metric",
        "score",
        "dim",
        "n",
        "se",
        "pretrained",
    ])
    .map_err(csv_err)?;
    for row in &report.results {
        for metric in &report.metrics {
            if let Some(score) = row.scores.get(metric) {
                out.write_record([
                    row.model.as_str(),
                    row.layer.as_str(),
                    metric.as_str(),
                    &format!("{score:.17e}"),
                    &row.dim.to_string(),
                    &row.n.to_string(),
                    &row.errors
                        .get(metric)
                        .map_or(String::new(), |e| format!("{e:.17e}")),
                    &row.pretrained.map_or(String::new(), |p| p.to_string()),
                ])
                .map_err(csv_err)?;
            }
        }
    }
    out.into_inner().map_err(|e| {
        Error::io(
            "cannot encode",
            "scores.csv",
            std::io::Error::other(e.to_string()),
        )
    })
}

/// The bytes in a temporary file beside `path`, readable as a normal file would be.
fn stage(path: &Path, bytes: &[u8]) -> Result<crate::atomic_file::Staged> {
    let staged = crate::atomic_file::Staged::new(path, ".zoo-select-").map_err(|e| {
        Error::io(
            "cannot write in",
            path.parent().unwrap_or(Path::new(".")),
            e,
        )
    })?;
    staged
        .file()
        .write_all(bytes)
        .map_err(|e| Error::io("cannot write", path, e))?;
    Ok(staged)
}
