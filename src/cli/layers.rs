//! `zoo-select layers MODEL`: the submodule tree of a TorchScript file with the names `layers:`
//! accepts, how often forward calls each, and which cannot be tapped and why.

use std::path::Path;

use zoo_select::taps;

pub fn run(model: &Path, json: bool) -> anyhow::Result<()> {
    let layers = taps::layers(model)?;
    if json {
        for layer in &layers {
            println!("{}", serde_json::to_string(layer)?);
        }
        return Ok(());
    }
    let width = layers
        .iter()
        .map(|l| l.name.len() + 2 * depth(&l.name))
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<width$}  calls", "name");
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
        println!("{name:<width$}  {:>5}  {note}", layer.calls);
    }
    Ok(())
}

fn depth(name: &str) -> usize {
    name.matches('.').count()
}
