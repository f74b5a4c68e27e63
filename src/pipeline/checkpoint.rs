//! Checkpoints of an unfinished pass. Batch i of the image list belongs to device part
//! i mod D, and each part folds its batches in order, so a part's state is its statistics and
//! how many of its batches it has done. Each part is written on its own (atomically, so a kill
//! mid-write keeps the previous checkpoint) under a name made from everything that defines the
//! pass: the images, shard, batch size, number of devices, models and kept sums. The same
//! command finds them again; any other run does not.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::stats::ModelStats;
use crate::stats_file::{self, DatasetId, FileInfo, ModelEntry, ModelKey, Shard};
use crate::zoo::SourceLogits;

/// The identity of a pass, as a file-name-safe hash.
pub fn run_key(
    dataset: &DatasetId,
    shard: Option<Shard>,
    batch_size: usize,
    devices: usize,
    models: &[(ModelKey, Vec<String>)],
    layout: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{}\n{}\n{shard:?}\n{batch_size}\n{devices}\n{layout}\n",
        dataset.fingerprint, dataset.covered
    ));
    for (key, layers) in models {
        h.update(format!("{key:?}\n{layers:?}\n"));
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hex[..16].to_owned()
}

pub fn part_path(dir: &Path, key: &str, part: usize, parts: usize) -> PathBuf {
    dir.join(format!("pass-{key}-part{}of{parts}.zss", part + 1))
}

/// The checkpoint files in `dir` of passes other than `key`'s (another config, or images that
/// changed since): (files, bytes). This command never reads them again; they stay for the
/// command that made them.
pub fn others(dir: &Path, key: &str) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mine = format!("pass-{key}-");
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("pass-") && name.ends_with(".zss") && !name.starts_with(&mine)
        })
        .fold((0, 0), |(n, bytes), e| {
            (n + 1, bytes + e.metadata().map_or(0, |m| m.len()))
        })
}

/// What a part's checkpoint restores.
pub struct Restored {
    pub stats: Vec<ModelStats>,
    pub info: FileInfo,
}

/// Reads part `part`'s checkpoint on the CPU, if there is a usable one.
pub fn restore(path: &Path, models: &[ModelKey]) -> Option<Restored> {
    if !path.exists() {
        return None;
    }
    match stats_file::read(path, tch::Device::Cpu) {
        Ok(file)
            if file.info.progress.is_some()
                && file.models.iter().map(|m| &m.key).eq(models.iter()) =>
        {
            Some(Restored {
                stats: file.models.into_iter().map(|m| m.stats).collect(),
                info: file.info,
            })
        }
        Ok(_) => {
            tracing::warn!(
                "checkpoint {} is of another pass; starting over",
                path.display()
            );
            None
        }
        Err(e) => {
            tracing::warn!("checkpoint unusable, starting this part over: {e}");
            None
        }
    }
}

/// The models' metadata a checkpoint stores beside their statistics.
pub struct PartMeta<'a> {
    pub keys: &'a [ModelKey],
    pub source: Vec<SourceLogits>,
}

/// Writes a part's checkpoint; the statistics are lent to the writer and given back.
pub fn save(path: &Path, info: FileInfo, meta: &PartMeta, stats: &mut [ModelStats]) -> Result<()> {
    let models = stats
        .iter_mut()
        .zip(meta.keys)
        .zip(&meta.source)
        .map(|((s, key), source)| ModelEntry {
            key: key.clone(),
            source_logits: source.clone(),
            stats: std::mem::take(s),
            file: None,
        })
        .collect();
    let mut file = stats_file::StatsFile { info, models };
    let written = stats_file::write(path, &mut file);
    for (s, entry) in stats.iter_mut().zip(file.models) {
        *s = entry.stats;
    }
    written
}

/// When and where one device part checkpoints: every `every`, and at a stop. A checkpoint is
/// insurance: one that cannot be written (a full disk) is warned about once and the pass goes
/// on with its statistics in memory, the next one trying again; at a stop it was the only place
/// the work could go, and its failure is the run's.
pub struct Checkpointer<'a> {
    pub path: &'a Path,
    /// The checkpoint folder, for messages.
    pub folder: &'a Path,
    pub part: usize,
    pub every: std::time::Duration,
    last: std::time::Instant,
    /// Whether the last checkpoint failed: a folder that stays full is said once.
    failing: bool,
}

impl<'a> Checkpointer<'a> {
    pub fn new(path: &'a Path, folder: &'a Path, part: usize, every: std::time::Duration) -> Self {
        Checkpointer {
            path,
            folder,
            part,
            every,
            last: std::time::Instant::now(),
            failing: false,
        }
    }

    pub fn due(&self, stopping: bool) -> bool {
        stopping || self.last.elapsed() >= self.every
    }

    /// Writes the part's statistics, whose rows must all have landed.
    pub fn save(
        &mut self,
        info: FileInfo,
        meta: &PartMeta,
        stats: &mut [ModelStats],
        stopping: bool,
    ) -> Result<()> {
        let t = std::time::Instant::now();
        let files_done = info.progress.map_or(0, |p| p.files_done);
        let written = save(self.path, info, meta, stats);
        self.last = std::time::Instant::now();
        match written {
            Ok(()) => {
                self.failing = false;
                tracing::debug!(
                    "checkpoint of part {} after {files_done} files written in {:.3} s",
                    self.part + 1,
                    t.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err(e) if stopping => Err(Error::Output {
                path: self.folder.to_owned(),
                reason: format!(
                    "the checkpoint of the {files_done} files done could not be written ({e}); \
                     a later run resumes from the last one written, if any: free space there \
                     first"
                ),
            }),
            Err(e) => {
                if !self.failing {
                    tracing::warn!(
                        "{e}: no checkpoint of part {} now, the pass goes on (an interruption \
                         before the next one would lose its work); free space in {}",
                        self.part + 1,
                        self.folder.display()
                    );
                }
                self.failing = true;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_passes_checkpoints_are_counted_not_this_ones() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, len: usize| std::fs::write(dir.path().join(name), vec![0u8; len]);
        write("pass-aaaa-part1of2.zss", 10).unwrap();
        write("pass-aaaa-part2of2.zss", 20).unwrap();
        write("pass-bbbb-part1of1.zss", 300).unwrap();
        write("pass-cccc-part1of1.zss", 4000).unwrap();
        write("notes.txt", 50000).unwrap();
        assert_eq!(others(dir.path(), "aaaa"), (2, 4300));
        assert_eq!(others(dir.path(), "bbbb"), (3, 4030));
        assert_eq!(others(&dir.path().join("missing"), "aaaa"), (0, 0));
    }
}
