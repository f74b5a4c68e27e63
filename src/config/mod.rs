//! The YAML run description, parsed strictly and checked before anything heavy starts.
//!
//! Unknown keys are errors that name the key (a misspelt `max_per_clas` must not be silently
//! ignored), relative paths resolve against the config file's folder so a config and its data can
//! move together, and every value is checked here so later stages can trust it. What needs the
//! files themselves (manifests, layer selectors) is resolved later, in `zoo::spec`.

mod model;

pub use model::{
    preprocessing_in_words, InputConfig, InputPatch, Interpolation, LayerItem, LayerSelector,
    Layout, ModelConfig, ZooConfig,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataset: DatasetConfig,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Every manifest in a folder, besides `models`.
    #[serde(default, deserialize_with = "model::zoo_shorthand")]
    pub zoo: Option<ZooConfig>,
    /// `auto`, `cpu`, `cuda` or `cuda:N`; a list (`[cuda:0, cuda:1]`) runs one part of the
    /// images on each, in one invocation, and adds their statistics up.
    #[serde(default = "default_device", deserialize_with = "one_or_many")]
    pub device: Vec<String>,
    /// Folder of reusable statistics (src/stats_file); default: `<output>/stats`.
    pub cache: Option<PathBuf>,
    /// Seconds of pass between checkpoints of the statistics (a killed run resumes from the
    /// last one); 0 checkpoints after every batch.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The first is the primary metric: it orders the table and makes the recommendation.
    /// `all` (alone, as a string or a list item) is every metric.
    #[serde(default = "default_metrics", deserialize_with = "one_or_many")]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub transrate: TransRateConfig,
    /// More TransRate configurations by name, scored from the same pass (eps grids, the
    /// normalisations); each unspecified option takes its published default.
    #[serde(default)]
    pub transrate_variants: std::collections::BTreeMap<String, TransRateConfig>,
    /// k-NN's options.
    #[serde(default)]
    pub knn: KnnConfig,
    /// The image sample whose feature rows the sample-level metrics (k-NN, SFDA, NCTI) read.
    #[serde(default)]
    pub sample: SampleConfig,
    /// Default: `runs/<config file stem>` beside the config file.
    pub output: Option<PathBuf>,
    /// Image decoding threads; default: the number of cores.
    pub workers: Option<usize>,
    /// libtorch's threads; default: the cores, less those other processes keep busy while the
    /// models load, and one during a pass on GPUs only (src/threading.rs).
    pub threads: Option<usize>,
    /// GiB of memory the statistics may take (host memory, and device memory on a CPU run);
    /// default: 80 % of the memory available when the run starts. Checked before the pass.
    pub memory_budget: Option<f64>,
    /// How the advice chooses: `recommend: <cut strategy>`, or `recommend: {model: <rule>,
    /// cut: <strategy>}` (src/recommend/model_rule.rs, strategy.rs); defaults: the rules the
    /// graded benchmark's held-out evidence chose.
    #[serde(default)]
    pub recommend: RecommendConfig,
    /// Folds of the sampled images for this run's own standard errors of the advice's scores
    /// (src/metrics/jackknife.rs); 0 turns them off.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// The precision the models run in; statistics are f64 whatever it is. `bf16` and `fp16`
    /// are faster on hardware made for them and change the scores (docs/performance.md).
    #[serde(default)]
    pub precision: Precision,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// One sub-folder per class (the torchvision ImageFolder layout).
    pub root: PathBuf,
    /// The first N files of each class in sorted order.
    pub max_per_class: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    Fp16,
}

impl Precision {
    pub fn kind(self) -> tch::Kind {
        match self {
            Precision::F32 => tch::Kind::Float,
            Precision::Bf16 => tch::Kind::BFloat16,
            Precision::Fp16 => tch::Kind::Half,
        }
    }
}

/// k-NN's options (`metrics: [knn]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KnnConfig {
    /// Neighbours that vote.
    #[serde(default = "default_knn_k")]
    pub k: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        KnnConfig { k: default_knn_k() }
    }
}

/// The sample of images whose rows the sample-level metrics keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// The most images whose feature rows are kept (a class-stratified sample of them): the
    /// m D rows of every (model, layer) and k-NN's m^2 D similarity work.
    #[serde(default = "default_sample_max_images")]
    pub max_images: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            max_images: default_sample_max_images(),
        }
    }
}

fn default_knn_k() -> usize {
    10
}
fn default_sample_max_images() -> usize {
    10_000
}

/// TransRate's options; the defaults are the published formula.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransRateConfig {
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// `trace`: divide the centred features by their root mean squared norm first.
    #[serde(default)]
    pub scale: TransRateScale,
    /// Divide both coding rates by the numerical rank of the centred features.
    #[serde(default)]
    pub per_rank: bool,
    /// `count`: weight each class's coding rate by n_c / n instead of 1 / C.
    #[serde(default)]
    pub class_weight: ClassWeight,
    /// `l2`: put each feature vector on the unit sphere before accumulation.
    #[serde(default)]
    pub normalize: Normalize,
    /// k: compare the coding rates in the top-k principal directions of the centred features
    /// (of every layer alike), so that layers of different widths compare on the same footing.
    #[serde(default)]
    pub subspace: Option<usize>,
}

impl TransRateConfig {
    /// Checks the values; `key` is where they stand in the config (`transrate`, or
    /// `transrate_variants.<name>`), for the message.
    pub fn check(&self, key: &str) -> Result<(), String> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(format!(
                "`{key}.eps` must be a positive number, got {}",
                self.eps
            ));
        }
        if self.subspace == Some(0) {
            return Err(format!("`{key}.subspace` must be at least 1"));
        }
        Ok(())
    }
}

impl Default for TransRateConfig {
    fn default() -> Self {
        TransRateConfig {
            eps: default_eps(),
            scale: TransRateScale::None,
            per_rank: false,
            class_weight: ClassWeight::Uniform,
            normalize: Normalize::None,
            subspace: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransRateScale {
    #[default]
    None,
    Trace,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    #[default]
    Uniform,
    Count,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    #[default]
    None,
    L2,
}

/// `metrics: all` or `metrics: [transrate, logme]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn default_device() -> Vec<String> {
    vec!["auto".to_owned()]
}
fn default_checkpoint_every() -> f64 {
    120.0
}
fn default_batch_size() -> usize {
    64
}
fn default_folds() -> usize {
    10
}

/// `recommend:`, as a cut strategy's name alone or as `{model, cut}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "RecommendInput")]
pub struct RecommendConfig {
    pub model: Option<String>,
    pub cut: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RecommendInput {
    Cut(String),
    Both(serde_yaml::Mapping),
}

impl TryFrom<RecommendInput> for RecommendConfig {
    type Error = String;

    fn try_from(input: RecommendInput) -> Result<Self, String> {
        let map = match input {
            RecommendInput::Cut(cut) => {
                return Ok(RecommendConfig {
                    model: None,
                    cut: Some(cut),
                })
            }
            RecommendInput::Both(map) => map,
        };
        let mut out = RecommendConfig::default();
        for (key, value) in map {
            let (Some(key), Some(value)) = (key.as_str(), value.as_str()) else {
                return Err(
                    "`recommend` takes `model: <rule>` and `cut: <strategy>`, each a name".into(),
                );
            };
            match key {
                "model" => out.model = Some(value.to_owned()),
                "cut" => out.cut = Some(value.to_owned()),
                other => {
                    return Err(format!(
                        "unknown key `{other}` in `recommend`; it takes `model` and `cut`"
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn default_metrics() -> Vec<String> {
    vec!["transrate".to_owned()]
}
fn default_eps() -> f64 {
    1e-4
}

impl Config {
    /// Reads, parses, resolves relative paths and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let config = Config::read(path)?;
        config.validate().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// The config file parsed and its paths resolved, not yet validated: for a caller that
    /// applies its own overrides first and then validates once (`Plan::new`).
    pub fn read(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("cannot read config", path, e))?;
        let mut config = Config::parse(&text).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        config
            .check_no_empty_path()
            .map_err(|message| Error::Config {
                path: path.to_owned(),
                message,
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base, path);
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
            model.path = model.path.as_deref().map(join);
            model.manifest = model.manifest.as_deref().map(join);
        }
        if let Some(zoo) = &mut self.zoo {
            zoo.dir = join(&zoo.dir);
        }
        self.cache = self.cache.as_deref().map(join);
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

    /// An empty path would resolve to the config's own folder: statistics or a report written
    /// among the user's configs, or the configs read as a dataset. Refused before resolving.
    fn check_no_empty_path(&self) -> Result<(), String> {
        let empty = |p: &Path| p.as_os_str().is_empty();
        let named = [
            ("dataset.root".to_owned(), Some(self.dataset.root.as_path())),
            ("cache".to_owned(), self.cache.as_deref()),
            ("output".to_owned(), self.output.as_deref()),
            (
                "zoo.dir".to_owned(),
                self.zoo.as_ref().map(|z| z.dir.as_path()),
            ),
        ];
        let models = self.models.iter().enumerate().flat_map(|(i, m)| {
            [
                (format!("models[{i}].path"), m.path.as_deref()),
                (format!("models[{i}].manifest"), m.manifest.as_deref()),
            ]
        });
        match named.into_iter().chain(models).find(|(_, p)| p.is_some_and(empty)) {
            Some((key, _)) => Err(format!(
                "`{key}` is an empty path: name a file or folder, or leave the key out for its default"
            )),
            None => Ok(()),
        }
    }

    /// Checks every value; the message names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("`batch_size` must be at least 1".into());
        }
        if self.folds == 1 {
            return Err("`folds` must be 0 (no standard errors) or at least 2".into());
        }
        if self
            .output
            .as_deref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err("the output folder is an empty path: name a folder".into());
        }
        if self.dataset.max_per_class == Some(0) {
            return Err("`dataset.max_per_class` must be at least 1".into());
        }
        if self.workers == Some(0) {
            return Err("`workers` must be at least 1".into());
        }
        if self.threads == Some(0) {
            return Err("`threads` must be at least 1".into());
        }
        if let Some(gib) = self.memory_budget {
            if !(gib.is_finite() && gib > 0.0) {
                return Err(format!(
                    "`memory_budget` must be a positive number of GiB, got {gib}"
                ));
            }
        }
        self.transrate.check("transrate")?;
        for (name, options) in &self.transrate_variants {
            options.check(&format!("transrate_variants.{name}"))?;
        }
        if self.knn.k == 0 {
            return Err("`knn.k` must be at least 1".into());
        }
        if self.sample.max_images < 2 {
            return Err(format!(
                "`sample.max_images` must be at least 2, got {}",
                self.sample.max_images
            ));
        }
        if self.metrics.is_empty() {
            return Err("`metrics` is empty: list at least one metric".into());
        }
        if self.device.is_empty() {
            return Err("`device` is an empty list: name at least one device".into());
        }
        if !(self.checkpoint_every.is_finite() && self.checkpoint_every >= 0.0) {
            return Err(format!(
                "`checkpoint_every` must be a number of seconds >= 0, got {}",
                self.checkpoint_every
            ));
        }
        self.validate_models()
    }

    /// The `models` entries and the `zoo` folder's layer list.
    fn validate_models(&self) -> Result<(), String> {
        if self.models.is_empty() && self.zoo.is_none() {
            return Err(
                "no models: list them under `models`, or point `zoo` at a folder of manifests"
                    .into(),
            );
        }
        let mut names = HashSet::new();
        for (i, model) in self.models.iter().enumerate() {
            // How the entry is named in messages: its name, else its manifest's file name.
            let label = model.name.clone().unwrap_or_else(|| {
                model
                    .manifest
                    .as_deref()
                    .and_then(Path::file_name)
                    .map_or(String::new(), |f| f.to_string_lossy().into_owned())
            });
            let at = format!("models[{i}]");
            match (&model.path, &model.manifest) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "{at} ({label}) has both `path` and `manifest`: give one"
                    ))
                }
                (None, None) => {
                    return Err(format!(
                        "{at} ({label}) needs `path` (with `input` and `layers`) or `manifest`"
                    ))
                }
                (Some(_), None) => {
                    if label.trim().is_empty() {
                        return Err(format!("{at} needs a `name`"));
                    }
                    if model.input.is_none() {
                        return Err(format!("{at} ({label}) needs `input` (or a `manifest`)"));
                    }
                    if model.layers.is_none() {
                        return Err(format!("{at} ({label}) needs `layers` (or a `manifest`)"));
                    }
                }
                (None, Some(_)) => {}
            }
            if let Some(name) = &model.name {
                if name.trim().is_empty() {
                    return Err(format!("{at}.name is empty"));
                }
                if !names.insert(name.as_str()) {
                    return Err(format!("{at}.name `{name}` is used by another model"));
                }
            }
            // Complete without a manifest; checked against the manifest when it is read.
            if let (Some(input), None) = (&model.input, &model.manifest) {
                input
                    .over(None)
                    .map_err(|m| format!("{at}.input ({label}): {m}"))?;
            }
            if let Some(LayerSelector::List(items)) = &model.layers {
                check_layer_list(items).map_err(|m| format!("{at}.layers ({label}) {m}"))?;
            }
        }
        if let Some(LayerSelector::List(items)) = self.zoo.as_ref().and_then(|z| z.layers.as_ref())
        {
            check_layer_list(items).map_err(|m| format!("zoo.layers {m}"))?;
        }
        Ok(())
    }
}

fn check_layer_list(items: &[LayerItem]) -> Result<(), String> {
    if items.is_empty() {
        return Err("is empty: name at least one submodule".into());
    }
    let mut seen = HashSet::new();
    for item in items {
        if let LayerItem::Name(name) = item {
            if name.trim().is_empty() {
                return Err("has an empty name".into());
            }
        }
        if !seen.insert(item.clone()) {
            let shown = match item {
                LayerItem::Name(n) => n.clone(),
                LayerItem::Stage(i) => i.to_string(),
            };
            return Err(format!("lists `{shown}` twice"));
        }
    }
    Ok(())
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
        assert_eq!(c.device, ["auto"]);
        assert_eq!(c.batch_size, 64);
        assert_eq!(c.metrics, ["transrate"]);
        assert_eq!(c.transrate.eps, 1e-4);
        assert_eq!(
            c.models[0]
                .input
                .unwrap()
                .over(None)
                .unwrap()
                .resize_or_size(),
            32
        );
        assert_eq!(
            c.models[0].layers,
            Some(LayerSelector::List(vec![
                LayerItem::Name("a".into()),
                LayerItem::Name("b".into())
            ]))
        );
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
        assert_eq!(c.models[0].path.as_deref(), Some(Path::new("/cfg/m.pt")));
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
    fn empty_paths_are_refused_before_they_resolve_to_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: String| {
            let path = dir.path().join("c.yaml");
            std::fs::write(&path, text).unwrap();
            Config::load(&path).unwrap_err().to_string()
        };
        for (key, text) in [
            ("cache", format!("{MINIMAL}cache: ''\n")),
            ("output", format!("{MINIMAL}output: \"\"\n")),
            ("dataset.root", MINIMAL.replace("root: images", "root: ''")),
            ("models[0].path", MINIMAL.replace("path: m.pt", "path: ''")),
        ] {
            let err = load(text);
            assert!(
                err.ends_with(&format!(
                    "`{key}` is an empty path: name a file or folder, or leave the key out for its default"
                )),
                "{err}"
            );
        }
        let mut c = Config::parse(MINIMAL).unwrap();
        c.output = Some(PathBuf::new());
        assert_eq!(
            c.validate().unwrap_err(),
            "the output folder is an empty path: name a folder"
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

    #[test]
    fn layer_selectors() {
        let parse = |layers: &str| {
            let text = MINIMAL.replace("layers: [a, b]", &format!("layers: {layers}"));
            Config::parse(&text).map(|c| c.models[0].layers.clone().unwrap())
        };
        use LayerItem::{Name, Stage};
        assert_eq!(parse("stages").unwrap(), LayerSelector::Stages);
        assert_eq!(parse("all").unwrap(), LayerSelector::All);
        assert_eq!(parse("-1").unwrap(), LayerSelector::List(vec![Stage(-1)]));
        assert_eq!(
            parse("[-2, -1]").unwrap(),
            LayerSelector::List(vec![Stage(-2), Stage(-1)])
        );
        assert_eq!(
            parse("[layer1, -1, '0']").unwrap(),
            LayerSelector::List(vec![Name("layer1".into()), Stage(-1), Name("0".into())])
        );
        assert_eq!(
            parse("layer4").unwrap(),
            LayerSelector::List(vec![Name("layer4".into())])
        );
        let err = parse("[1.5]").unwrap_err();
        assert!(
            err.contains("a layer is a submodule name or a stage index, got 1.5"),
            "{err}"
        );
    }

    #[test]
    fn models_come_from_manifests_and_zoo_folders() {
        let c = Config::parse("dataset: {root: d}\nzoo: ../zoo\n").unwrap();
        assert_eq!(c.zoo.as_ref().unwrap().dir, Path::new("../zoo"));
        assert!(c.validate().is_ok());
        let c = Config::parse("dataset: {root: d}\nzoo: {dir: z, include: [res*], layers: -1}\n")
            .unwrap();
        let zoo = c.zoo.unwrap();
        assert_eq!(
            (zoo.include, zoo.layers),
            (
                vec!["res*".to_owned()],
                Some(LayerSelector::List(vec![LayerItem::Stage(-1)]))
            )
        );
        let c = Config::parse("dataset: {root: d}\nzoo: {dir: z, input: {size: 96}}\n").unwrap();
        assert_eq!(
            c.zoo.unwrap().input,
            Some(InputPatch {
                size: Some(96),
                ..InputPatch::default()
            })
        );
        let err = Config::parse("dataset: {root: d}\nzoo: {dir: z, inclde: [x]}\n").unwrap_err();
        assert!(err.contains("unknown field `inclde`"), "{err}");

        let c = Config::parse(
            "dataset: {root: d}\nmodels:\n  - manifest: m.yaml\n    layers: [-2, -1]\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        let cases = [
            (
                "dataset: {root: d}\n",
                "no models: list them under `models`, or point `zoo` at a folder of manifests",
            ),
            (
                "dataset: {root: d}\nmodels:\n  - {manifest: m.yaml, path: m.pt}\n",
                "models[0] (m.yaml) has both `path` and `manifest`: give one",
            ),
            (
                "dataset: {root: d}\nmodels:\n  - {name: x}\n",
                "models[0] (x) needs `path` (with `input` and `layers`) or `manifest`",
            ),
            (
                "dataset: {root: d}\nmodels:\n  - {name: x, path: m.pt, layers: [a]}\n",
                "models[0] (x) needs `input` (or a `manifest`)",
            ),
            (
                "dataset: {root: d}\nmodels:\n  - {manifest: m.yaml, layers: [-1, -1]}\n",
                "models[0].layers (m.yaml) lists `-1` twice",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Config::parse(text).unwrap().validate().unwrap_err(), want);
        }
    }

    #[test]
    fn input_overrides_patch_the_manifest() {
        let base = InputConfig {
            size: 224,
            resize: Some(256),
            interpolation: Interpolation::Bicubic,
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let patch: InputPatch = serde_yaml::from_str("{size: 192, resize: 219}").unwrap();
        let got = patch.over(Some(&base)).unwrap();
        assert_eq!(
            (got.size, got.resize, got.interpolation, got.mean),
            (192, Some(219), Interpolation::Bicubic, [0.5; 3])
        );
        assert_eq!(patch.scaled_resize(&base), None, "the resize was written");
        // A size alone keeps the manifest's resize-to-crop ratio, rounded down as timm's
        // floor(size / crop_pct): not a 96-px detail of a 256-px resize, nor an error at 384.
        for (size, want) in [(96, 109), (384, 438), (224, 256), (8, 9)] {
            let patch: InputPatch = serde_yaml::from_str(&format!("{{size: {size}}}")).unwrap();
            assert_eq!(
                patch.over(Some(&base)).unwrap().resize,
                Some(want),
                "{size}"
            );
        }
        let smaller: InputPatch = serde_yaml::from_str("{size: 96}").unwrap();
        assert_eq!(
            smaller.scaled_resize(&base).unwrap(),
            "input size 96, resize 109 (the manifest's 256/224 ratio; set `input.resize` to \
             choose another)"
        );
        let unresized = InputConfig {
            resize: None,
            ..base
        };
        assert_eq!(smaller.over(Some(&unresized)).unwrap().resize, None);
        assert_eq!(smaller.scaled_resize(&unresized), None);
        let bare: InputPatch = serde_yaml::from_str("{size: 32, std: [1, 1, 1]}").unwrap();
        assert_eq!(
            bare.over(None).unwrap_err(),
            "`mean` is missing (no manifest gives it)"
        );
    }

    #[test]
    fn a_statistics_key_reads_in_words() {
        // The key is the debug text (stats_file::fingerprint): read back, whatever its values.
        let inputs = [
            InputConfig {
                size: 96,
                resize: Some(109),
                interpolation: Interpolation::Bicubic,
                mean: [0.485, 0.456, 0.406],
                std: [1e-5, 0.224, 2.0],
            },
            InputConfig {
                size: 16,
                resize: None,
                interpolation: Interpolation::Nearest,
                mean: [-0.5, 0.0, 1.0],
                std: [0.25; 3],
            },
        ];
        for (input, layout) in inputs.iter().zip([Layout::Nchw, Layout::Nhwc]) {
            let key = format!("{input:?} {layout:?}");
            assert_eq!(
                preprocessing_in_words(&key),
                format!("{input}, layout {layout}"),
                "{key}"
            );
        }
        assert_eq!(
            preprocessing_in_words(&format!("{:?} {:?}", inputs[0], Layout::Nchw)),
            "size 96, resize 109, bicubic, mean [0.485, 0.456, 0.406], std [1e-5, 0.224, 2.0], \
             layout nchw"
        );
        assert_eq!(
            inputs[1].to_string(),
            "size 16, resize 16 (its default, the size), nearest, mean [-0.5, 0.0, 1.0], \
             std [0.25, 0.25, 0.25]"
        );
        assert_eq!(preprocessing_in_words("something else"), "something else");
    }
}
