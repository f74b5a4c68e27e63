//! The command line as typed (ripgrep's LowArgs): parsed and range-checked by clap, then handed
//! to the library's `Plan`, which applies it over the config.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use zoo_select::plan::Overrides;
use zoo_select::stats_file::Shard;

/// Rank a zoo of pretrained TorchScript models, and the layers to cut them at, for a folder of
/// labelled images, from one pass with streaming TransRate.
#[derive(Debug, Parser)]
#[command(
    name = "zoo-select",
    version,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
#[command(after_help = "Example: zoo-select --config configs/demo.yaml")]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,

    /// More log output (-v debug, -vv trace); RUST_LOG takes precedence
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors: no progress bar, no table
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// What a run reads: the config and the command line's overrides of it.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run's YAML config (relative paths in it resolve against its folder)
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// auto, cpu, cuda or cuda:N; several separated by commas run one part of the images on
    /// each (overrides `device`)
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,

    /// Images per forward pass (overrides `batch_size`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,

    /// Output folder: report.json, scores.csv and scores.svg, or `pass`'s shard file (overrides
    /// `output`)
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Use at most N images per class, the first in sorted order (overrides `dataset.max_per_class`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_per_class: Option<u64>,

    /// Neither reuse nor keep statistics in the cache (`cache:`, default <output>/stats)
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a model's submodules: the names `layers:` accepts, their output shapes, the stages
    Layers {
        /// A TorchScript file (scripted or traced) or a manifest (zoo/<name>.yaml)
        model: PathBuf,
        /// Side of the blank probe image (default: the manifest's input size, else 224)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=8192))]
        input_size: Option<u32>,
        /// One JSON object per line instead of the tree
        #[arg(long)]
        json: bool,
    },
    /// Gather the statistics of one shard of the images and write them to
    /// <output>/shard-k-of-N.zss (for clusters: one task per shard, then `score`)
    Pass {
        #[command(flatten)]
        run: RunArgs,
        /// This task's part of the images: k/N, 1 <= k <= N
        #[arg(long, value_name = "k/N")]
        shard: Option<Shard>,
    },
    /// Add up the shard files of a split run and write the report, as a single run would
    Score {
        #[command(flatten)]
        run: RunArgs,
        /// The statistics files, one per shard (shard-k-of-N.zss)
        #[arg(required = true, value_name = "STATS")]
        files: Vec<PathBuf>,
        /// Score the files without checking them against the images the config's folder holds
        /// now (for images copied without their modification times)
        #[arg(long)]
        no_image_check: bool,
    },
}

impl RunArgs {
    pub fn overrides(&self, shard: Option<Shard>) -> Overrides {
        Overrides {
            device: self.device.clone(),
            no_cache: self.no_cache,
            shard,
            batch_size: self.batch_size.map(|n| n as usize),
            output: self.output.clone(),
            max_per_class: self.max_per_class.map(|n| n as usize),
        }
    }
}

/// Options were given but no config: a usage error (exit 2).
pub fn missing_config() -> ! {
    Args::command()
        .error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--config <FILE> is required (try: zoo-select --config configs/demo.yaml)",
        )
        .exit()
}
