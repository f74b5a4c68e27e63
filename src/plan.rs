//! A run, resolved: the config with the command line's overrides applied, the device found, the
//! metrics built. Like ripgrep's HiArgs, everything here has been checked, so the pipeline only
//! executes it.

use std::path::{Path, PathBuf};

use tch::Device;

use crate::config::{Config, DatasetConfig, Precision};
use crate::error::{Error, Result};
use crate::metrics::jackknife::Folds;
use crate::metrics::{self, Metric};
use crate::recommend::{ModelRule, Strategy, DEFAULT_MODEL_RULE, DEFAULT_STRATEGY};
use crate::stats_file::Shard;
use crate::zoo::{self, ModelSpec};

/// Command-line values that replace the config's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// One device, or several separated by commas.
    pub device: Option<String>,
    /// Neither read nor write the statistics cache.
    pub no_cache: bool,
    /// Gather the statistics of this part of the images only (`zoo-select pass --shard`).
    pub shard: Option<Shard>,
    pub batch_size: Option<usize>,
    pub output: Option<PathBuf>,
    pub max_per_class: Option<usize>,
}

pub struct Plan {
    pub config_path: PathBuf,
    pub config: Config,
    /// The models with their files, inputs and layers resolved (manifests read and checked).
    pub models: Vec<ModelSpec>,
    /// The first of `devices`: where the statistics are merged and scored.
    pub device: Device,
    /// One part of the images runs on each (a device may appear twice).
    pub devices: Vec<Device>,
    /// The statistics cache, unless `--no-cache`.
    pub cache: Option<PathBuf>,
    /// Checkpoints of an unfinished pass: `<output>/stats/checkpoints`.
    pub checkpoints: PathBuf,
    pub checkpoint_every: std::time::Duration,
    pub shard: Option<Shard>,
    /// In the config's order; the first is the primary metric. The cut strategy's score comes
    /// last when the config does not ask for it.
    pub metrics: Vec<Box<dyn Metric>>,
    /// How the cut inside the recommended model is chosen.
    pub strategy: &'static Strategy,
    /// How the recommended model is chosen.
    pub model_rule: &'static ModelRule,
    pub output: PathBuf,
    /// Image decoding threads.
    pub workers: usize,
    /// Where the images are, and how many of each class are read.
    pub dataset: DatasetConfig,
    pub batch_size: usize,
    /// The models' precision (the statistics stay f64).
    pub precision: Precision,
    /// libtorch's threads during the pass; None: fitted to how busy the machine is.
    pub threads: Option<usize>,
    /// What the statistics may take in memory; None where it is not given and the memory
    /// available cannot be read.
    pub memory_budget: Option<MemoryBudget>,
}

/// Bytes of memory the statistics may take: `memory_budget` (GiB) from the config, or by
/// default 80 % of the memory available when the plan was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub bytes: u64,
    pub default: bool,
}

impl MemoryBudget {
    fn resolve(gib: Option<f64>) -> Option<MemoryBudget> {
        match gib {
            Some(g) => Some(MemoryBudget {
                bytes: (g * (1u64 << 30) as f64) as u64,
                default: false,
            }),
            None => available_memory().map(|b| MemoryBudget {
                bytes: b / 5 * 4,
                default: true,
            }),
        }
    }
}

/// MemAvailable of /proc/meminfo, in bytes (Linux).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `path` made absolute, its `.` and `..` resolved by name (`/data/img/../runs` is `/data/runs`),
/// as the user reads it; symbolic links are not followed.
fn lexical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for c in absolute.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether files in `dir` would be listed as images of the dataset at `root` (both lexical):
/// it is `root` or below it, and no folder on the way is hidden.
fn listed_under(root: &Path, dir: &Path) -> bool {
    dir.strip_prefix(root).is_ok_and(|below| {
        !below
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    })
}

impl Plan {
    pub fn new(config_path: &Path, overrides: Overrides) -> Result<Plan> {
        // Read, overridden, then validated once.
        let mut config = Config::read(config_path)?;
        let config_err = |message: String| Error::Config {
            path: config_path.to_owned(),
            message,
        };
        if let Some(device) = overrides.device {
            config.device = device.split(',').map(|d| d.trim().to_owned()).collect();
        }
        if let Some(batch_size) = overrides.batch_size {
            config.batch_size = batch_size;
        }
        if let Some(max) = overrides.max_per_class {
            config.dataset.max_per_class = Some(max);
        }
        if let Some(output) = overrides.output {
            config.output = Some(output);
        }
        config.validate().map_err(config_err)?;
        let mut metrics = metrics::build(&config).map_err(config_err)?;
        let (strategy, model_rule) = advice(&config, &mut metrics).map_err(config_err)?;
        let models = zoo::resolve(&config, config_path)?;
        let devices = config
            .device
            .iter()
            .map(|d| crate::device::resolve(d))
            .collect::<Result<Vec<_>>>()?;
        let device = devices[0];
        let output = config
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs/run"));
        let cache = (!overrides.no_cache)
            .then(|| config.cache.clone().unwrap_or_else(|| user_cache(&output)));
        // Files written inside the dataset would be listed as images of a class `stats` (or of
        // the class folder they sit in) by the next run, and change its fingerprint every time.
        // Hidden folders are not listed, so they may hold them.
        let root = lexical(&config.dataset.root);
        for (what, dir) in [("output", Some(&output)), ("cache", cache.as_ref())] {
            let Some(dir) = dir else { continue };
            let dir = lexical(dir);
            if listed_under(&root, &dir) {
                return Err(config_err(format!(
                    "the {what} folder {} is inside the dataset {}: the next run would read its \
                     files as images; choose a folder outside the dataset",
                    dir.display(),
                    root.display()
                )));
            }
        }
        let checkpoints = output.join("stats").join("checkpoints");
        let checkpoint_every = std::time::Duration::from_secs_f64(config.checkpoint_every);
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Ok(Plan {
            config_path: config_path.to_owned(),
            dataset: config.dataset.clone(),
            batch_size: config.batch_size,
            precision: config.precision,
            threads: config.threads,
            memory_budget: MemoryBudget::resolve(config.memory_budget),
            config,
            models,
            device,
            devices,
            cache,
            checkpoints,
            checkpoint_every,
            shard: overrides.shard,
            metrics,
            strategy,
            model_rule,
            output,
            workers,
        })
    }

    /// Checks, before any pass, that the output folder and its checkpoint folder can be
    /// written: a run must not gather statistics for an hour and then find it cannot save them.
    /// The cache folder need not be (`cache_writable`).
    pub fn check_writable(&self) -> Result<()> {
        self.check_output()?;
        check_writable(&self.checkpoints)
    }

    /// The output folder alone: what `score` writes.
    pub fn check_output(&self) -> Result<()> {
        check_writable(&self.output)
    }

    /// Whether the cache folder can be written, silently (`cache_writable` says why not).
    pub fn cache_can_be_written(&self) -> bool {
        self.cache
            .as_deref()
            .is_some_and(|dir| writable(dir).is_ok())
    }

    /// Whether statistics can be kept in the cache folder. A team's shared cache may be
    /// read-only: then it is read, not written, and that is said once.
    pub fn cache_writable(&self) -> bool {
        let Some(dir) = &self.cache else {
            return false;
        };
        match writable(dir) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(
                    "cache folder {}: {reason}; statistics are read from it but not kept (give \
                     `cache:` a folder this run can write to keep them)",
                    dir.display()
                );
                false
            }
        }
    }

    /// Every setting the scores depend on besides the statistics, as text: what keeps scores
    /// from being reused under other settings (the score cache's key).
    pub fn scoring_settings(&self, folds: &Folds) -> String {
        let c = &self.config;
        let metrics: Vec<&str> = self.metrics.iter().map(|m| m.name()).collect();
        format!(
            "{metrics:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{folds:?}\n",
            c.transrate, c.transrate_variants, c.knn, c.sample
        )
    }

    /// The advice's scores that get this run's standard errors, for a run with this many images
    /// a class: the cut strategy's (for its regime) on every layer, the model rule's on each
    /// model's best layer. Only those: fold scores cost K rescorings each.
    pub fn folds_for(&self, images_per_class: f64) -> Folds {
        let primary = self.primary_metric();
        let cut = self
            .strategy
            .resolve(images_per_class)
            .cut_metric(primary)
            .to_owned();
        let model = self.model_rule.metric(primary).to_owned();
        Folds {
            folds: self.config.folds,
            best_layer: if model == cut { vec![] } else { vec![model] },
            every_layer: vec![cut],
        }
    }

    /// How the devices are named in reports: `cpu`, `cuda:0,cuda:1`.
    pub fn device_label(&self) -> String {
        let labels: Vec<String> = self
            .devices
            .iter()
            .map(|d| crate::device::label(*d))
            .collect();
        labels.join(",")
    }

    pub fn primary_metric(&self) -> &str {
        self.metrics.first().map_or("transrate", |m| m.name())
    }
}

/// The advice's rules, their scores added to `metrics` when the config does not list them
/// (they are computed whether or not it does).
type Advice = (&'static Strategy, &'static ModelRule);

fn advice(config: &Config, metrics: &mut Vec<Box<dyn Metric>>) -> Result<Advice, String> {
    let strategy = Strategy::by_name(config.recommend.cut.as_deref().unwrap_or(DEFAULT_STRATEGY))?;
    let model_rule = ModelRule::by_name(
        config
            .recommend
            .model
            .as_deref()
            .unwrap_or(DEFAULT_MODEL_RULE),
    )?;
    for m in model_rule
        .required(config)
        .into_iter()
        .chain(strategy.metrics(config))
    {
        if !metrics.iter().any(|have| have.name() == m.name()) {
            metrics.push(m);
        }
    }
    Ok((strategy, model_rule))
}

/// The cache every run of this user shares, whatever its output folder: rewritten modules and
/// statistics are kept once, not once per output folder. `$XDG_CACHE_HOME/zoo-select`, or
/// `~/.cache/zoo-select`; the output's `stats/` where neither variable is set.
pub fn user_cache(output: &Path) -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    match (absolute("XDG_CACHE_HOME"), absolute("HOME")) {
        (Some(xdg), _) => xdg.join("zoo-select"),
        (None, Some(home)) => home.join(".cache").join("zoo-select"),
        (None, None) => output.join("stats"),
    }
}

fn check_writable(dir: &Path) -> Result<()> {
    writable(dir).map_err(|reason| Error::Output {
        path: dir.to_owned(),
        reason,
    })
}

/// Why `dir` cannot be created or written, if it cannot.
fn writable(dir: &Path) -> std::result::Result<(), String> {
    if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
        return Err(format!("{} is a file, not a folder", file.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot be created ({e})"))?;
    tempfile::Builder::new()
        .prefix(".zoo-select-write-check")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot be written ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_inside_the_dataset_by_name_and_only_where_it_would_be_listed() {
        assert_eq!(
            lexical(Path::new("/data/img/../runs/./x")),
            Path::new("/data/runs/x")
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(lexical(Path::new("a/../b")), cwd.join("b"));
        let root = Path::new("/data/img");
        let listed = |dir: &str| listed_under(root, &lexical(Path::new(dir)));
        assert!(listed("/data/img"));
        assert!(listed("/data/img/runs"));
        assert!(listed("/data/img/cat/out"));
        assert!(listed("/data/x/../img/runs"));
        assert!(!listed("/data/img/../runs"));
        assert!(!listed("/data/img2/runs"));
        assert!(!listed("/data/img/.runs"));
        assert!(!listed("/data/img/cat/.cache/stats"));
        assert!(!listed("/data"));
    }
}
