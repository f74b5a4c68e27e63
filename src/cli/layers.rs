//! `zoo-select layers MODEL.pt|MANIFEST.yaml`: the submodule tree of a TorchScript model with
//! the names `layers:` accepts, how often forward calls each, its output shape for a probe
//! image, which names `stages` and `all` select, and which cannot be tapped and why.

use std::path::Path;

use zoo_select::zoo::{self, LayerRow, Manifest};

pub fn run(target: &Path, input_size: Option<u32>, json: bool) -> anyhow::Result<()> {
    let is_manifest = target
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml");
    let (name, model, size, stages) = if is_manifest {
        let m = Manifest::load(target)?;
        (
            m.name.clone(),
            m.file.clone(),
            input_size.unwrap_or(m.input.size),
            m.layers.clone(),
        )
    } else {
        let name = target
            .file_stem()
            .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
        (
            name,
            target.to_owned(),
            input_size.unwrap_or(224),
            Vec::new(),
        )
    };
    let rows = zoo::inspect(&name, &model, size, &stages)?;
    let text = if json {
        as_json(&rows)?
    } else {
        as_tree(&rows, size, !stages.is_empty())
    };
    Ok(super::stdout::write_stdout(&text)?)
}

fn as_json(rows: &[LayerRow]) -> anyhow::Result<String> {
    let mut out = String::new();
    for row in rows {
        out += &serde_json::to_string(row)?;
        out.push('\n');
    }
    Ok(out)
}

fn as_tree(rows: &[LayerRow], size: u32, has_stages: bool) -> String {
    let depth = |n: &str| n.matches('.').count();
    let shape = |r: &LayerRow| {
        r.shape
            .as_ref()
            .map(|s| format!("{s:?}"))
            .unwrap_or_default()
    };
    let name_w = rows
        .iter()
        .map(|r| r.name.len() + 2 * depth(&r.name))
        .max()
        .unwrap_or(4)
        .max(4);
    let shape_w = rows
        .iter()
        .map(|r| shape(r).len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<name_w$}  calls  {:<shape_w$}  notes\n", "name", "shape");
    for r in rows {
        let mut notes = Vec::new();
        if r.stage {
            notes.push("stage".to_owned());
        }
        if r.block {
            notes.push("block".to_owned());
        }
        if let Some(why) = &r.untappable {
            notes.push(format!("not tappable: {why}"));
        } else if r.calls > 1 {
            notes.push(format!(
                "`{0}` is the last of {1} calls; `{0}#1`..`{0}#{1}` pick one",
                r.name, r.calls
            ));
        }
        let name = format!("{}{}", "  ".repeat(depth(&r.name)), r.name);
        let line = format!(
            "{name:<name_w$}  {:>5}  {:<shape_w$}  {}",
            r.calls,
            shape(r),
            notes.join("; ")
        );
        out += line.trim_end();
        out.push('\n');
    }
    let stages = if has_stages {
        "`stage`: the manifest's stages (`layers: stages`, indices -1, -2, ...); "
    } else {
        ""
    };
    out += &format!(
        "\nShapes for one blank {size}x{size} image. {stages}`block`: selected by `layers: all`.\n"
    );
    out
}
