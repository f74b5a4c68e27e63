//! From the config's model entries (inline, `manifest:`, `zoo:` folder) to concrete model specs:
//! a file, an input geometry, a layout and a list of layer names. Manifests are read and checked
//! here, and layer selectors (`stages`, `all`, stage indices) become names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use super::manifest::Manifest;
use crate::config::{
    Config, InputConfig, InputPatch, LayerItem, LayerSelector, Layout, ModelConfig, ZooConfig,
};
use crate::error::{Error, Result};
use crate::taps::{self, LayerInfo};

/// One model of a run, resolved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    pub manifest: Option<PathBuf>,
    pub input: InputConfig,
    pub layout: Layout,
    pub layers: Vec<String>,
    /// The submodule producing source-task logits, when a manifest names it.
    pub head: Option<String>,
    pub pretrained: Option<bool>,
    /// The model file's sha256 from its manifest, checked against the file when the manifest
    /// was read: the statistics' key reuses it rather than reading the file again.
    pub sha256: Option<String>,
}

/// Every model of a config: `models` in order, then the `zoo` folder's manifests by name.
pub fn resolve(config: &Config, config_path: &Path) -> Result<Vec<ModelSpec>> {
    let mut specs = Vec::new();
    for (i, entry) in config.models.iter().enumerate() {
        specs.push(
            from_entry(entry).map_err(|e| in_config(e, config_path, &format!("models[{i}]")))?,
        );
    }
    if let Some(zoo) = &config.zoo {
        specs.extend(from_folder(zoo, config_path).map_err(|e| in_config(e, config_path, "zoo"))?);
    }
    let mut names = HashSet::new();
    for spec in &specs {
        if !names.insert(spec.name.as_str()) {
            return Err(Error::Config {
                path: config_path.to_owned(),
                message: format!(
                    "two models are named `{}`; rename one with `name:` in `models`, or leave one out with `zoo.exclude`",
                    spec.name
                ),
            });
        }
    }
    Ok(specs)
}

/// Config errors raised below know neither the file nor the entry: add both. A missing
/// manifest also points at the config's opening comment when that gives the export commands.
fn in_config(e: Error, config_path: &Path, at: &str) -> Error {
    match e {
        Error::Config { path, message } if path.as_os_str().is_empty() => Error::Config {
            path: config_path.to_owned(),
            message: format!("{at}: {message}"),
        },
        Error::ManifestMissing { path, hint } if header_exports(config_path) => {
            Error::ManifestMissing {
                path,
                hint: format!(
                    "{hint}; the comment at the top of {} gives the commands that make its zoo",
                    config_path.display()
                ),
            }
        }
        other => other,
    }
}

/// Whether the config's opening comment names scripts/export_zoo.py (configs/cifar100.yaml's
/// lists the exports its zoo needs).
fn header_exports(config_path: &Path) -> bool {
    std::fs::read_to_string(config_path).is_ok_and(|text| {
        text.lines()
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            .any(|l| l.contains("export_zoo.py"))
    })
}

fn from_entry(entry: &ModelConfig) -> Result<ModelSpec> {
    let config_err = |message: String| Error::Config {
        path: PathBuf::new(),
        message,
    };
    if let Some(manifest_path) = &entry.manifest {
        let m = Manifest::load(manifest_path)?;
        let mut spec = from_manifest(m, manifest_path, entry.layers.as_ref())?;
        if let Some(name) = &entry.name {
            spec.name = name.clone();
        }
        if let Some(patch) = &entry.input {
            patch_input(&mut spec, patch)?;
        }
        if let Some(layout) = entry.layout {
            spec.layout = layout;
        }
        return Ok(spec);
    }
    // Config::validate guarantees name, path, input and layers here.
    let (Some(name), Some(path), Some(patch), Some(selector)) =
        (&entry.name, &entry.path, &entry.input, &entry.layers)
    else {
        return Err(config_err(
            "needs `path`, `input` and `layers`, or a `manifest`".into(),
        ));
    };
    let layers = select(selector, name, path, None)?;
    let input = patch
        .over(None)
        .map_err(|m| config_err(format!("input: {m}")))?;
    Ok(ModelSpec {
        name: name.clone(),
        path: path.clone(),
        manifest: None,
        input,
        layout: entry.layout.unwrap_or_default(),
        layers,
        head: None,
        pretrained: None,
        sha256: None,
    })
}

fn from_manifest(
    m: Manifest,
    manifest_path: &Path,
    selector: Option<&LayerSelector>,
) -> Result<ModelSpec> {
    let layers = select(
        selector.unwrap_or(&LayerSelector::Stages),
        &m.name,
        &m.file,
        Some(&m.layers),
    )?;
    Ok(ModelSpec {
        name: m.name,
        path: m.file,
        manifest: Some(manifest_path.to_owned()),
        input: m.input,
        layout: m.layout,
        layers,
        head: m.head,
        pretrained: m.pretrained,
        sha256: Some(m.sha256),
    })
}

fn from_folder(zoo: &ZooConfig, config_path: &Path) -> Result<Vec<ModelSpec>> {
    let config_err = |message: String| Error::Config {
        path: config_path.to_owned(),
        message,
    };
    let include = globs(&zoo.include).map_err(|e| config_err(format!("zoo.include: {e}")))?;
    let exclude = globs(&zoo.exclude).map_err(|e| config_err(format!("zoo.exclude: {e}")))?;
    let entries = std::fs::read_dir(&zoo.dir)
        .map_err(|e| Error::io("cannot list the zoo folder", &zoo.dir, e))?;
    let mut manifests: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Manifests are `<name>.yaml`, as scripts/export_zoo.py writes them.
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    manifests.sort();
    let mut wanted = Vec::new();
    for path in manifests {
        // Filter on the name first: a left-out model is neither hashed nor required to exist.
        let Some(name) = Manifest::peek_name(&path)? else {
            tracing::warn!(
                "ignoring {}: not a model manifest (no `name` and `sha256`)",
                path.display()
            );
            continue;
        };
        if (zoo.include.is_empty() || include.is_match(&name)) && !exclude.is_match(&name) {
            wanted.push(path);
        }
    }
    // Checking each file against its manifest reads it whole: a zoo's files run to gigabytes,
    // so they are read side by side. The first error in listing order is the one reported.
    let specs = wanted
        .par_iter()
        .map(|path| {
            let mut spec = from_manifest(Manifest::load(path)?, path, zoo.layers.as_ref())?;
            if let Some(patch) = &zoo.input {
                patch_input(&mut spec, patch)?;
            }
            Ok(spec)
        })
        .collect::<Vec<Result<ModelSpec>>>()
        .into_iter()
        .collect::<Result<Vec<ModelSpec>>>()?;
    if specs.is_empty() {
        return Err(config_err(format!(
            "zoo: no manifest in {} matches include {:?} and exclude {:?}; export models with scripts/export_zoo.py",
            zoo.dir.display(),
            zoo.include,
            zoo.exclude
        )));
    }
    Ok(specs)
}

/// A config's `input` keys over the manifest's input of `spec`. A resize the config did not
/// write but a new size scaled is said in the log, so a changed geometry is never silent.
fn patch_input(spec: &mut ModelSpec, patch: &InputPatch) -> Result<()> {
    let manifest_input = spec.input;
    spec.input = patch
        .over(Some(&manifest_input))
        .map_err(|m| Error::Config {
            path: PathBuf::new(),
            message: format!("model `{}`: input: {m}", spec.name),
        })?;
    if let Some(what) = patch.scaled_resize(&manifest_input) {
        tracing::info!("model `{}`: {what}", spec.name);
    }
    Ok(())
}

fn globs(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(Glob::new(p)?);
    }
    builder.build()
}

/// Layer names for a selector. `stages` is the manifest's list; stage indices count into it
/// (Python style: -1 is the last); `all` lists the model file's blocks.
pub fn select(
    selector: &LayerSelector,
    model: &str,
    path: &Path,
    stages: Option<&[String]>,
) -> Result<Vec<String>> {
    let need_stages = |what: &str| -> Result<&[String]> {
        stages.ok_or_else(|| Error::Config {
            path: PathBuf::new(),
            message: format!("model `{model}`: {what} needs a manifest that lists the stages; name the layers instead"),
        })
    };
    let mut out: Vec<String> = match selector {
        LayerSelector::Stages => need_stages("`layers: stages`")?.to_vec(),
        LayerSelector::All => {
            let listing = taps::layers(path)?;
            if listing.iter().all(|l| l.calls == 0) {
                return Err(Error::FrozenModel {
                    model: model.to_owned(),
                    path: path.to_owned(),
                });
            }
            let found = blocks(&listing);
            if found.is_empty() {
                return Err(Error::Config {
                    path: PathBuf::new(),
                    message: format!(
                        "model `{model}`: `layers: all` selects nothing: no tappable submodule has \
                         submodules of its own; name the layers instead (`zoo-select layers {}` lists them)",
                        path.display()
                    ),
                });
            }
            found
        }
        LayerSelector::List(items) => {
            let mut names = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    LayerItem::Name(n) => names.push(n.clone()),
                    LayerItem::Stage(i) => {
                        let stages = need_stages(&format!("the stage index {i}"))?;
                        let n = stages.len() as i64;
                        let k = if *i < 0 { n + i } else { *i };
                        if !(0..n).contains(&k) {
                            return Err(Error::Config {
                                path: PathBuf::new(),
                                message: format!(
                                    "model `{model}`: stage index {i} is out of range: it has {n} stages ({})",
                                    stages.join(", ")
                                ),
                            });
                        }
                        names.push(stages[k as usize].clone());
                    }
                }
            }
            names
        }
    };
    let mut seen = HashSet::new();
    out.retain(|n| seen.insert(n.clone()));
    Ok(out)
}

/// What `layers: all` selects: every tappable submodule that has submodules of its own (a
/// residual block, a stage, a Sequential), the usual places to cut a network.
pub fn blocks(listing: &[LayerInfo]) -> Vec<String> {
    listing
        .iter()
        .filter(|l| is_block(l, listing))
        .map(|l| l.name.clone())
        .collect()
}

pub fn is_block(layer: &LayerInfo, listing: &[LayerInfo]) -> bool {
    let prefix = format!("{}.", layer.name);
    layer.calls > 0
        && layer.untappable.is_none()
        && listing.iter().any(|l| l.name.starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, calls: usize) -> LayerInfo {
        LayerInfo {
            name: name.into(),
            calls,
            untappable: (calls == 0).then(|| "not called by forward".into()),
            position: (calls > 0).then_some(0),
            params: 0,
        }
    }

    #[test]
    fn blocks_are_tappable_modules_with_children() {
        let listing = [
            info("stem", 1),
            info("stem.0", 1),
            info("blocks", 0),
            info("blocks.0", 1),
            info("blocks.0.conv", 1),
            info("fc", 1),
        ];
        assert_eq!(blocks(&listing), ["stem", "blocks.0"]);
    }

    #[test]
    fn stage_indices_count_into_the_manifest() {
        let stages: Vec<String> = ["layer1", "layer2", "layer3", "layer4"]
            .map(String::from)
            .into();
        let pick = |items: Vec<LayerItem>| {
            select(
                &LayerSelector::List(items),
                "m",
                Path::new("m.pt"),
                Some(&stages),
            )
        };
        use LayerItem::{Name, Stage};
        assert_eq!(pick(vec![Stage(-1)]).unwrap(), ["layer4"]);
        assert_eq!(
            pick(vec![Stage(-2), Stage(-1)]).unwrap(),
            ["layer3", "layer4"]
        );
        assert_eq!(
            pick(vec![Stage(0), Name("layer4.2.conv3".into())]).unwrap(),
            ["layer1", "layer4.2.conv3"]
        );
        assert_eq!(
            pick(vec![Stage(-1), Name("layer4".into())]).unwrap(),
            ["layer4"]
        );
        let err = pick(vec![Stage(4)]).unwrap_err().to_string();
        assert!(err.ends_with("model `m`: stage index 4 is out of range: it has 4 stages (layer1, layer2, layer3, layer4)"), "{err}");
        let err = select(&LayerSelector::Stages, "m", Path::new("m.pt"), None)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("model `m`: `layers: stages` needs a manifest that lists the stages; name the layers instead"), "{err}");
    }
}
