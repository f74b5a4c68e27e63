//! The YAML run description, parsed strictly and checked before anything heavy starts.
//!
//! Unknown keys are errors that name the key (a misspelt `max_per_clas` must not be silently
//! ignored), relative paths resolve against the config file's folder so a config and its data can
//! move together, and every value is checked here so later stages can trust it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataset: DatasetConfig,
    pub models: Vec<ModelConfig>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The first is the primary metric: it orders the table and makes the recommendation.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub transrate: TransRateConfig,
    /// Default: `runs/<config file stem>` beside the config file.
    pub output: Option<PathBuf>,
    /// Image decoding threads; default: the number of cores.
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// One sub-folder per class (the torchvision ImageFolder layout).
    pub root: PathBuf,
    /// The first N files of each class in sorted order.
    pub max_per_class: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub path: PathBuf,
    pub input: InputConfig,
    /// Dotted submodule names as in `named_modules()`; `name#k` for the k-th call.
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Side of the square centre crop fed to the model.
    pub size: u32,
    /// The shorter side is resized to this before the crop; default: `size`.
    pub resize: Option<u32>,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransRateConfig {
    #[serde(default = "default_eps")]
    pub eps: f64,
}

impl Default for TransRateConfig {
    fn default() -> Self {
        TransRateConfig { eps: default_eps() }
    }
}

fn default_device() -> String {
    "auto".to_owned()
}
fn default_batch_size() -> usize {
    64
}
fn default_metrics() -> Vec<String> {
    vec!["transrate".to_owned()]
}
fn default_eps() -> f64 {
    1e-4
}

impl InputConfig {
    pub fn resize_or_size(&self) -> u32 {
        self.resize.unwrap_or(self.size)
    }
}

impl Config {
    /// Reads, parses, resolves relative paths and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("cannot read config", path, e))?;
        let mut config = Config::parse(&text).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base, path);
        config.validate().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Parses YAML text; the message names the offending key and its location.
    pub fn parse(text: &str) -> Result<Config, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    fn resolve_paths(&mut self, base: &Path, config_path: &Path) {
        // A canonical base lets leading `..` be resolved by popping real folders, which gives the
        // same file as the OS would and keeps reports free of `configs/../data`.
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
        let join = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                join_relative(&base, p)
            }
        };
        self.dataset.root = join(&self.dataset.root);
        for model in &mut self.models {
            model.path = join(&model.path);
        }
        let output = match &self.output {
            Some(out) => out.clone(),
            None => {
                let stem = config_path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                Path::new("runs").join(stem.unwrap_or_else(|| "run".to_owned()))
            }
        };
        self.output = Some(join(&output));
    }

    /// Checks every value; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.models.is_empty() {
            return Err("`models` is empty: list at least one model".into());
        }
        if self.batch_size == 0 {
            return Err("`batch_size` must be at least 1".into());
        }
        if self.dataset.max_per_class == Some(0) {
            return Err("`dataset.max_per_class` must be at least 1".into());
        }
        if self.workers == Some(0) {
            return Err("`workers` must be at least 1".into());
        }
        if !(self.transrate.eps.is_finite() && self.transrate.eps > 0.0) {
            return Err(format!(
                "`transrate.eps` must be a positive number, got {}",
                self.transrate.eps
            ));
        }
        if self.metrics.is_empty() {
            return Err("`metrics` is empty: list at least one metric".into());
        }
        let mut names = HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            if model.name.trim().is_empty() {
                return Err(format!("{at}.name is empty"));
            }
            if !names.insert(model.name.as_str()) {
                return Err(format!(
                    "{at}.name `{}` is used by another model",
                    model.name
                ));
            }
            check_input(&model.input).map_err(|m| format!("{at}.input ({}): {m}", model.name))?;
            if model.layers.is_empty() {
                return Err(format!(
                    "{at}.layers ({}) is empty: name at least one submodule",
                    model.name
                ));
            }
            let mut seen = HashSet::new();
            for layer in &model.layers {
                if layer.trim().is_empty() {
                    return Err(format!("{at}.layers ({}) has an empty name", model.name));
                }
                if !seen.insert(layer.as_str()) {
                    return Err(format!(
                        "{at}.layers ({}) lists `{layer}` twice",
                        model.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `base` joined with a relative path, leading `..` components popping `base`'s own folders.
fn join_relative(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_owned();
    let mut components = rel.components().peekable();
    while let Some(c) = components.peek() {
        match c {
            std::path::Component::ParentDir if out.parent().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            _ => break,
        }
        components.next();
    }
    out.extend(components);
    out
}

fn check_input(input: &InputConfig) -> Result<(), String> {
    if input.size == 0 || input.size > 8192 {
        return Err(format!(
            "`size` must be between 1 and 8192, got {}",
            input.size
        ));
    }
    if let Some(resize) = input.resize {
        if resize < input.size || resize > 16384 {
            return Err(format!(
                "`resize` ({resize}) must be at least `size` ({}) and at most 16384",
                input.size
            ));
        }
    }
    if input.mean.iter().any(|m| !m.is_finite()) {
        return Err("`mean` must hold three finite numbers".into());
    }
    if input.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err("`std` must hold three positive numbers".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "
dataset: {root: images}
models:
  - name: m
    path: m.pt
    input: {size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
    layers: [a, b]
";

    #[test]
    fn defaults_fill_the_rest() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.device, "auto");
        assert_eq!(c.batch_size, 64);
        assert_eq!(c.metrics, ["transrate"]);
        assert_eq!(c.transrate.eps, 1e-4);
        assert_eq!(c.models[0].input.resize_or_size(), 32);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = MINIMAL.replace(
            "dataset: {root: images}",
            "dataset: {root: images, max_per_clas: 3}",
        );
        let err = Config::parse(&text).unwrap_err();
        assert!(
            err.starts_with(
                "dataset: unknown field `max_per_clas`, expected `root` or `max_per_class`"
            ),
            "{err}"
        );
        let err = Config::parse(&format!("{MINIMAL}\nbatchsize: 3\n")).unwrap_err();
        assert!(err.starts_with("unknown field `batchsize`"), "{err}");
    }

    #[test]
    fn paths_resolve_against_the_config_folder() {
        let mut c = Config::parse(MINIMAL).unwrap();
        c.resolve_paths(Path::new("/cfg"), Path::new("/cfg/exp1.yaml"));
        assert_eq!(c.dataset.root, Path::new("/cfg/images"));
        assert_eq!(c.models[0].path, Path::new("/cfg/m.pt"));
        assert_eq!(c.output.as_deref(), Some(Path::new("/cfg/runs/exp1")));
        assert_eq!(
            join_relative(Path::new("/a/b"), Path::new("../../c/./d")),
            Path::new("/c/./d")
        );
        assert_eq!(
            join_relative(Path::new("/a/b"), Path::new("./x/../y")),
            Path::new("/a/b/x/../y")
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let cases = [
            (
                MINIMAL.replace("layers: [a, b]", "layers: [a, a]"),
                "models[0].layers (m) lists `a` twice",
            ),
            (
                MINIMAL.replace("std: [0.5, 0.5, 0.5]", "std: [0.5, 0.0, 0.5]"),
                "models[0].input (m): `std` must hold three positive numbers",
            ),
            (
                MINIMAL.replace("size: 32,", "size: 32, resize: 16,"),
                "models[0].input (m): `resize` (16) must be at least `size` (32) and at most 16384",
            ),
            (
                format!("{MINIMAL}batch_size: 0\n"),
                "`batch_size` must be at least 1",
            ),
            (
                format!("{MINIMAL}transrate: {{eps: -1}}\n"),
                "`transrate.eps` must be a positive number, got -1",
            ),
        ];
        for (text, want) in cases {
            let c = Config::parse(&text).unwrap();
            assert_eq!(c.validate().unwrap_err(), want);
        }
    }
}
