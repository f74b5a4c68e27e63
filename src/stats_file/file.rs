//! One statistics file: what it says it covers (the images, the shard, each model and layer,
//! the sums kept) and how it is written and read back, checked against that description.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::dataset::Skip;
use crate::error::{Error, Result};
use crate::stats::{ClassMoments, LayerStats, ModelStats, SourceStats, Transform};
use crate::zoo::SourceLogits;

use super::fingerprint::{DatasetId, ModelKey};
use super::format::{self, FORMAT_VERSION};

/// Which 1/N of the images a file covers: shard `index` of `count`, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a shard: expected k/N with 1 <= k <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Where an unfinished pass stands: device part `device` of `devices` has folded in its first
/// `batches_done` batches (batch i of the image list belongs to part i mod `devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub device: usize,
    pub devices: usize,
    pub batch_size: usize,
    pub batches_done: usize,
    pub files_done: usize,
}

pub use crate::stats::LayerMeta;

/// One model's statistics and what a report needs to know of it without loading it.
pub struct ModelEntry {
    pub key: ModelKey,
    pub source_logits: SourceLogits,
    pub stats: ModelStats,
    /// The cache file that holds exactly these statistics, if one does: what the scores kept
    /// beside them are keyed by.
    pub file: Option<PathBuf>,
}

/// Everything in a file besides the models' statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    pub dataset: DatasetId,
    pub shard: Option<Shard>,
    /// Set in a checkpoint; None where the file covers all its images.
    pub progress: Option<Progress>,
    /// Files of the covered images that could not be used, with why.
    pub skipped: Vec<SkipRecord>,
    /// `cpu` or `cuda`: stores made on different kinds agree only to rounding.
    pub device_kind: String,
    /// Seconds the pass took to gather these statistics.
    pub pass_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkipRecord {
    pub path: PathBuf,
    pub reason: String,
}

impl From<&Skip> for SkipRecord {
    fn from(s: &Skip) -> Self {
        SkipRecord {
            path: s.path.clone(),
            reason: s.reason.clone(),
        }
    }
}

impl From<&SkipRecord> for Skip {
    fn from(s: &SkipRecord) -> Self {
        Skip {
            path: s.path.clone(),
            reason: s.reason.clone(),
        }
    }
}

pub struct StatsFile {
    pub info: FileInfo,
    pub models: Vec<ModelEntry>,
}

/// The header as stored: `FileInfo` plus each model's layout of arrays.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    zoo_select: String,
    #[serde(flatten)]
    info: FileInfo,
    models: Vec<ModelHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ModelHeader {
    key: ModelKey,
    layers: Vec<LayerHeader>,
    source_logits: SourceLogits,
    source: Option<SourceHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerHeader {
    #[serde(flatten)]
    meta: LayerMeta,
    stores: Vec<StoreHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreHeader {
    transform: Transform,
    counts: Vec<u64>,
    arrays: Vec<ArrayHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SourceHeader {
    classes: usize,
    source_classes: usize,
    images: u64,
    arrays: Vec<ArrayHeader>,
    /// Bytes of spilled softmax rows after the arrays (LEEP), 0 if none.
    rows_bytes: u64,
}

/// An array of the payload, stored row-major in little-endian order: f64, or f32 for feature
/// rows kept as the network made them.
#[derive(Debug, Serialize, Deserialize)]
struct ArrayHeader {
    name: String,
    shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dtype: Option<String>,
}

fn file_err(path: &Path, message: impl Into<String>) -> Error {
    Error::StatsFile {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// A store's arrays by name.
type NamedArrays = Vec<(String, crate::stats::Array)>;

/// Writes `file` to `path` atomically: a reader sees the old file or the whole new one.
pub fn write(path: &Path, file: &mut StatsFile) -> Result<()> {
    let torch = |e: tch::TchError| file_err(path, crate::error::torch_message(&e));
    let mut models = Vec::with_capacity(file.models.len());
    // The arrays of every store, in payload order.
    let mut payload: Vec<Vec<Vec<NamedArrays>>> = Vec::new();
    for entry in &mut file.models {
        let mut model_arrays = Vec::new();
        let mut layers = Vec::new();
        for layer in &entry.stats.layers {
            let mut layer_arrays = Vec::new();
            let mut headers = Vec::new();
            for (t, s) in &layer.stores {
                let parts = s.parts().map_err(torch)?;
                headers.push(StoreHeader {
                    transform: *t,
                    counts: s.counts().to_vec(),
                    arrays: parts
                        .iter()
                        .map(|(n, a)| header_of(n, a.shape(), a.kind()))
                        .collect(),
                });
                layer_arrays.push(parts);
            }
            layers.push(LayerHeader {
                meta: layer.meta.clone(),
                stores: headers,
            });
            model_arrays.push(layer_arrays);
        }
        payload.push(model_arrays);
        let source = entry.stats.source.as_ref().map(|s| SourceHeader {
            classes: s.classes(),
            source_classes: s.source_classes(),
            images: s.images(),
            arrays: s.parts().iter().map(|(n, t)| array_header(n, t)).collect(),
            rows_bytes: s.spilled_bytes(),
        });
        models.push(ModelHeader {
            key: entry.key.clone(),
            layers,
            source_logits: entry.source_logits.clone(),
            source,
        });
    }
    let header = Header {
        format: FORMAT_VERSION,
        zoo_select: env!("CARGO_PKG_VERSION").to_owned(),
        info: file.info.clone(),
        models,
    };
    let json = serde_json::to_vec(&header).map_err(|e| file_err(path, e.to_string()))?;
    format::write_atomic(path, &json, |w| {
        for (entry, arrays) in file.models.iter_mut().zip(&payload) {
            // Rows spilled to disk come back one class at a time.
            for (_, array) in arrays.iter().flatten().flatten() {
                format::write_tensor(w, &array.tensor()?)?;
            }
            if let Some(source) = &mut entry.stats.source {
                for (_, t) in source.parts() {
                    format::write_tensor(w, t)?;
                }
                if let Some(rows) = source.rows_reader() {
                    std::io::copy(&mut rows?, w)?;
                }
            }
        }
        Ok(())
    })
    .map_err(|e| match e {
        format::WriteError::Io(e) => Error::io("cannot write statistics file", path, e),
        format::WriteError::Torch(e) => torch(e),
    })
}

fn array_header(name: &str, t: &tch::Tensor) -> ArrayHeader {
    header_of(name, t.size(), t.kind())
}

fn header_of(name: &str, shape: Vec<i64>, kind: tch::Kind) -> ArrayHeader {
    ArrayHeader {
        name: name.to_owned(),
        shape,
        dtype: (kind == tch::Kind::Float).then(|| "f32".to_owned()),
    }
}

fn parse_header(path: &Path, json: &[u8]) -> Result<Header> {
    serde_json::from_slice(json)
        .map_err(|e| file_err(path, format!("its header cannot be read ({e}); the file is damaged: delete it and run the pass again")))
}

/// Reads a whole file onto `device`, checking its checksum.
pub fn read(path: &Path, device: Device) -> Result<StatsFile> {
    let (json, mut payload) = format::open(path).map_err(|m| file_err(path, m))?;
    let header = parse_header(path, &json)?;
    let damaged = |m: String| {
        file_err(
            path,
            format!("{m}; the file is damaged: delete it and run the pass again"),
        )
    };
    let mut models = Vec::with_capacity(header.models.len());
    for m in header.models {
        let mut layers = Vec::with_capacity(m.layers.len());
        for l in m.layers {
            let mut stores = Vec::with_capacity(l.stores.len());
            for s in l.stores {
                let parts = read_arrays(&mut payload, &s.arrays, device).map_err(&damaged)?;
                let store = ClassMoments::from_parts(s.counts, parts).map_err(&damaged)?;
                stores.push((s.transform, store));
            }
            layers.push(LayerStats {
                meta: l.meta,
                stores,
            });
        }
        let source = match m.source {
            Some(s) => {
                let parts = read_arrays(&mut payload, &s.arrays, device).map_err(&damaged)?;
                let mut rows = (s.rows_bytes > 0).then(|| (&mut payload).take(s.rows_bytes));
                let rows = rows.as_mut().map(|r| r as &mut dyn std::io::Read);
                Some(
                    SourceStats::from_parts(s.classes, s.source_classes, s.images, parts, rows)
                        .map_err(&damaged)?,
                )
            }
            None => None,
        };
        models.push(ModelEntry {
            key: m.key,
            source_logits: m.source_logits,
            stats: ModelStats { layers, source },
            file: None,
        });
    }
    payload.finish().map_err(|m| file_err(path, m))?;
    Ok(StatsFile {
        info: header.info,
        models,
    })
}

use std::io::Read as _;

fn read_arrays(
    payload: &mut format::Payload,
    arrays: &[ArrayHeader],
    device: Device,
) -> Result<Vec<(String, tch::Tensor)>, String> {
    arrays
        .iter()
        .map(|a| {
            let f32 = match a.dtype.as_deref() {
                None | Some("f64") => false,
                Some("f32") => true,
                Some(other) => return Err(format!("array `{}` of unknown type {other}", a.name)),
            };
            Ok((a.name.clone(), payload.read_tensor(&a.shape, f32, device)?))
        })
        .collect()
}
