//! The ranking as text on stdout: every (model, layer) by the score that chose the model, best
//! first, random-weight models marked, then the recommendation and each model's cut.

use std::path::PathBuf;

use zoo_select::report::Report;

pub fn print(report: &Report, files: &[PathBuf]) -> std::io::Result<()> {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    super::stdout::write_stdout(&format!("{}\nWrote {}\n", render(report), names.join(", ")))
}

pub fn render(report: &Report) -> String {
    let rows = report.ranked();
    let name = |r: &zoo_select::report::ResultRow| match r.pretrained {
        Some(false) => format!("{} (random)", r.model),
        _ => r.model.clone(),
    };
    let model_w = rows.iter().map(|r| name(r).len()).max().unwrap_or(5).max(5);
    let layer_w = rows.iter().map(|r| r.layer.len()).max().unwrap_or(5).max(5);
    let ds = &report.dataset;
    let st = &report.statistics;
    let source = if !st.shards.is_empty() {
        format!("{} shard file(s) merged", st.shards.len())
    } else if st.computed.is_empty() {
        "every statistic from the cache".to_owned()
    } else {
        let mut s = format!(
            "device {}; pass {:.1} s ({:.0} images/s)",
            report.device, report.timing.pass_s, report.timing.images_per_s
        );
        if !st.reused.is_empty() {
            s += &format!(
                "; {} of {} layers from the cache",
                st.reused.len(),
                st.reused.len() + st.computed.len()
            );
        }
        if st.resumed_files > 0 {
            s += &format!("; resumed after {} files", st.resumed_files);
        }
        s
    };
    let mut out = format!(
        "{} images, {} classes, {} skipped; {source}; statistics {:.1} MiB\n\n",
        ds.images,
        ds.classes.len(),
        ds.skipped.len(),
        report.memory.accumulator_bytes as f64 / (1024.0 * 1024.0)
    );
    out += &format!(
        "{:>4}  {:<model_w$}  {:<layer_w$}  {:>6}",
        "rank", "model", "layer", "dim"
    );
    for m in &report.metrics {
        out += &format!("  {m:>12}");
    }
    out.push('\n');
    for (i, row) in rows.iter().enumerate() {
        out += &format!(
            "{:>4}  {:<model_w$}  {:<layer_w$}  {:>6}",
            i + 1,
            name(row),
            row.layer,
            row.dim
        );
        for m in &report.metrics {
            match row.scores.get(m) {
                Some(s) => out += &format!("  {s:>12.4}"),
                None => out += &format!("  {:>12}", "-"),
            }
        }
        out.push('\n');
    }
    out += &format!("\n{}\n", report.recommendation.text);
    if report.layer_cuts.len() > 1 {
        out += &format!(
            "Cut per model (by {}, strategy `{}`):\n",
            report.recommendation.cut_metric, report.recommendation.strategy
        );
        for (model, cut) in &report.layer_cuts {
            out += &format!(
                "  {model:<model_w$}  {:<layer_w$}  {:.4}",
                cut.layer, cut.score
            );
            if !cut.alternatives.is_empty() {
                out += &format!("  (within noise: {})", cut.alternatives.join(", "));
            }
            out.push('\n');
        }
    }
    out
}
