//! Scores kept beside the statistics they came from. When every statistic of a rerun is cached,
//! finishing them into scores (eigendecompositions of every layer's scatters) is nearly all of
//! its time, and gives the same numbers as last time. So a cache entry's scores are kept in
//! `<cache>/scores/`, under a key made of the entry file's content (its length and the checksum
//! it ends with), the metric settings and this build of the program: a change to any of them
//! scores again. A score file that is missing, damaged or of another key is simply recomputed.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::outcome::LayerResult;
use crate::metrics::jackknife::Folds;
use crate::plan::Plan;

pub struct ScoreCache {
    dir: PathBuf,
    /// Everything besides the entry that the scores depend on.
    settings: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScoreFile {
    key: String,
    rows: Vec<LayerResult>,
}

impl ScoreCache {
    pub fn new(cache: &Path, plan: &Plan, folds: &Folds) -> ScoreCache {
        let settings = format!(
            "{} {}\n{}",
            env!("CARGO_PKG_VERSION"),
            build_id(),
            plan.scoring_settings(folds)
        );
        ScoreCache {
            dir: cache.join("scores"),
            settings,
        }
    }

    fn key(&self, entry: &Path) -> Option<String> {
        let (len, crc) = trailer(entry).ok()?;
        let mut h = Sha256::new();
        h.update(format!(
            "{}\n{len} {crc:08x}\n{}",
            entry.display(),
            self.settings
        ));
        Some(crate::stats_file::hex(&h.finalize()))
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.json", &key[..32]))
    }

    /// The scores of the entry `entry` for exactly these layers, in order, if kept.
    pub fn load(&self, entry: &Path, layers: &[String]) -> Option<Vec<LayerResult>> {
        let key = self.key(entry)?;
        let text = std::fs::read(self.path(&key)).ok()?;
        let file: ScoreFile = serde_json::from_slice(&text).ok()?;
        let same = file.key == key
            && file.rows.len() == layers.len()
            && file.rows.iter().zip(layers).all(|(r, l)| &r.layer == l);
        same.then_some(file.rows)
    }

    /// Keeps `rows`, the scores of `entry`; a failure costs the next run its shortcut only.
    pub fn store(&self, entry: &Path, rows: &[LayerResult]) {
        let Some(key) = self.key(entry) else { return };
        let path = self.path(&key);
        let file = ScoreFile {
            key,
            rows: rows.to_vec(),
        };
        let written = serde_json::to_vec(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::atomic_file::write(&path, &bytes, ".scores-", false));
        if let Err(e) = written {
            tracing::debug!("scores not kept in {}: {e}", path.display());
        }
    }
}

/// A statistics file's length and the CRC-32 it ends with: its content, without reading it.
fn trailer(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.seek(SeekFrom::End(-4))? + 4;
    let mut crc = [0u8; 4];
    f.read_exact(&mut crc)?;
    Ok((len, u32::from_le_bytes(crc)))
}

/// This build of the program: a rebuilt binary may score differently, so it keys the scores
/// (the executable's length and modification time).
fn build_id() -> String {
    let meta = std::env::current_exe().and_then(std::fs::metadata);
    match meta {
        Ok(m) => {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{modified}", m.len())
        }
        Err(_) => "unknown".to_owned(),
    }
}
