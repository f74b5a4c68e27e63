//! A run, resolved: the config with the command line's overrides applied, the device found, the
//! metrics built. Like ripgrep's HiArgs, everything here has been checked, so the pipeline only
//! executes it.

use std::path::{Path, PathBuf};

use tch::Device;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::{self, Metric};
use crate::recommend::{Strategy, DEFAULT_STRATEGY};
use crate::zoo::{self, ModelSpec};

/// Command-line values that replace the config's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub device: Option<String>,
    pub batch_size: Option<usize>,
    pub output: Option<PathBuf>,
    pub max_per_class: Option<usize>,
}

pub struct Plan {
    pub config_path: PathBuf,
    pub config: Config,
    /// The models with their files, inputs and layers resolved (manifests read and checked).
    pub models: Vec<ModelSpec>,
    pub device: Device,
    /// In the config's order; the first is the primary metric. The cut strategy's score comes
    /// last when the config does not ask for it.
    pub metrics: Vec<Box<dyn Metric>>,
    /// How the cut inside the recommended model is chosen.
    pub strategy: &'static Strategy,
    pub output: PathBuf,
    /// Image decoding threads.
    pub workers: usize,
}

impl Plan {
    pub fn new(config_path: &Path, overrides: Overrides) -> Result<Plan> {
        let mut config = Config::load(config_path)?;
        let config_err = |message: String| Error::Config {
            path: config_path.to_owned(),
            message,
        };
        if let Some(device) = overrides.device {
            config.device = device;
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
        let strategy = Strategy::by_name(config.recommend.as_deref().unwrap_or(DEFAULT_STRATEGY))
            .map_err(config_err)?;
        if let Some(m) = strategy.metric() {
            if !metrics.iter().any(|have| have.name() == m.name()) {
                metrics.push(m);
            }
        }
        let models = zoo::resolve(&config, config_path)?;
        let device = crate::device::resolve(&config.device)?;
        let output = config
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs/run"));
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Ok(Plan {
            config_path: config_path.to_owned(),
            config,
            models,
            device,
            metrics,
            strategy,
            output,
            workers,
        })
    }

    pub fn primary_metric(&self) -> &str {
        self.metrics.first().map_or("transrate", |m| m.name())
    }
}
