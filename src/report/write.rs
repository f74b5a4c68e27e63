//! Writes the run's files. Each file is written to a temporary name in the output folder and
//! renamed into place, and report.json goes last: a reader never sees half a file, and a
//! report.json that exists belongs to a run that finished.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{figure, Report};
use crate::error::{Error, Result};

/// report.json, scores.csv and scores.svg in `dir`; returns their paths.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the output folder", dir, e))?;
    let csv = dir.join("scores.csv");
    write_atomic(&csv, &scores_csv(report)?)?;
    let svg = dir.join("scores.svg");
    write_atomic(&svg, figure::svg(report).as_bytes())?;
    let json = dir.join("report.json");
    let mut text = serde_json::to_vec_pretty(report)
        .map_err(|e| Error::io("cannot encode", &json, e.into()))?;
    text.push(b'\n');
    write_atomic(&json, &text)?;
    Ok(vec![json, csv, svg])
}

/// One row per (model, layer, metric), in the report's order.
pub fn scores_csv(report: &Report) -> Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let csv_err =
        |e: csv::Error| Error::io("cannot encode", "scores.csv", std::io::Error::other(e));
    out.write_record(["model", "layer", "metric", "score", "dim", "n"])
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

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io("cannot write in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io("cannot write", path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("cannot write", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("cannot write", path, e.error))?;
    Ok(())
}
