//! `zoo-select layers MODEL`: the submodule tree of a TorchScript file with the names `layers:`
//! accepts, how often forward calls each, and which cannot be tapped and why.

use std::path::Path;

use zoo_select::taps;

pub fn run(model: &Path, json: bool) -> anyhow::Result<()> {
    let layers = taps::layers(model)?;
    let mut out = String::new();
    if json {
        for layer in &layers {
            out += &serde_json::to_string(layer)?;
            out.push('\n');
        }
        return Ok(super::write_stdout(&out)?);
    }
    let width = layers
        .iter()
        .map(|l| l.name.len() + 2 * depth(&l.name))
        .max()
        .unwrap_or(4)
        .max(4);
    out += &format!("{:<width$}  calls\n", "name");
    for layer in &layers {
        let indent = "  ".repeat(depth(&layer.name));
        let name = format!("{indent}{}", layer.name);
        let note = match (&layer.untappable, layer.calls) {
            (Some(why), _) => format!("not tappable: {why}"),
            (None, n) if n > 1 => format!(
                "`{0}` is the last call; `{0}#1`..`{0}#{n}` each call",
                layer.name
            ),
            _ => String::new(),
        };
        out += format!("{name:<width$}  {:>5}  {note}", layer.calls).trim_end();
        out.push('\n');
    }
    Ok(super::write_stdout(&out)?)
}

fn depth(name: &str) -> usize {
    name.matches('.').count()
}
