//! Rewritten modules kept on disk. Making a model ready for the pass rewrites its graph twice
//! (plain, and with BatchNorms folded), loads both, compares them on a probe batch, parses the
//! file again for its layer listing and probes its head: 1.84 s of a 4.79 s ResNet-50 run on an
//! H200, 0.2 to 0.75 s per model on a CPU, where a kept module loads in a quarter to a half of
//! that. What comes out depends only on the model file, the taps, the precision, the device
//! kind and this program, so the cache folder keeps it (`<cache>/modules/<name>-<hash>.pt`,
//! with what was decided, the blank image's features and the optimisation's verdict beside it
//! in a `.json`) and the next run loads the chosen module straight away. An entry that cannot
//! be read or loaded, or whose module does not match the checksum kept beside it, is rebuilt
//! with a warning; failing to write one costs only the next run's time.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::source_logits::SourceLogits;

/// What loading decided about a model, besides the module itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    /// The entry's full key, checked on reading (the file name holds only a prefix of its hash).
    pub key: String,
    pub batchnorm_folded: bool,
    /// Taps of the module: the layers, then the head when it gives the source logits.
    pub taps: usize,
    pub source: SourceLogits,
    pub params_after: Vec<Option<u64>>,
    /// Each layer's pooled features of one blank image (the model's `probe`), so a kept module
    /// runs no probe forward: on a GPU, the first forward of each batch shape sets up every
    /// convolution's kernels, which the pass's first batch does anyway.
    #[serde(default)]
    pub probe: Option<Vec<Vec<f32>>>,
    /// Whether TorchScript's optimisation for inference was kept (on the CPU: it gave the same
    /// taps on the probe batch), so loading the module again optimises it, or not, without
    /// running the probe twice more.
    #[serde(default)]
    pub optimized: Option<bool>,
}

/// An entry's `.json`: the decisions, and the CRC-32 of the module file beside it. TorchScript
/// does not check its archives' checksums when loading (a zeroed block loads as zero weights),
/// so this one is what tells a module torn by a crash from a whole one.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    prepared: Prepared,
    module_crc32: u32,
}

pub struct ModuleCache {
    dir: PathBuf,
    /// A cache this run cannot write (a team's read-only share): read, never written.
    read_only: bool,
}

/// What a prepared module depends on.
pub struct ModuleKey<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
    pub layers: &'a [String],
    pub head: Option<&'a str>,
    pub want_source: bool,
    pub precision: &'a str,
    pub device_kind: &'a str,
    /// The probe images' side (the folding check runs on it).
    pub size: u32,
}

/// Raised when the way a kept module's decisions are made changes, so that entries made the
/// old way are rebuilt rather than reused (2: BatchNorm folding decided on the CPU, where GPUs
/// had kept every pair unfolded).
const RULES: u32 = 2;

impl ModuleKey<'_> {
    fn text(&self) -> String {
        format!(
            "zoo-select {} rules {RULES}\n{}\n{}\n{:?}\n{:?}\n{}\n{}\n{}\n{}\n",
            env!("CARGO_PKG_VERSION"),
            self.name,
            self.sha256,
            self.layers,
            self.head,
            self.want_source,
            self.precision,
            self.device_kind,
            self.size
        )
    }
}

impl ModuleCache {
    /// The module cache inside the statistics cache folder `cache`.
    pub fn in_cache(cache: &Path) -> ModuleCache {
        ModuleCache {
            dir: cache.join("modules"),
            read_only: false,
        }
    }

    /// The same, for a cache folder this run cannot write (already said once).
    pub fn read_only(mut self) -> ModuleCache {
        self.read_only = true;
        self
    }

    fn paths(&self, key: &ModuleKey) -> (PathBuf, PathBuf, String) {
        let text = key.text();
        let hash = format!("{:x}", Sha256::digest(text.as_bytes()));
        let stem = format!("{}-{}", file_name(key.name), &hash[..16]);
        (
            self.dir.join(format!("{stem}.pt")),
            self.dir.join(format!("{stem}.json")),
            text,
        )
    }

    /// The module bytes and decisions kept for `key`, if a whole entry is there. The module is
    /// mapped, not read: copying a large module into fresh memory cost more than checking it.
    /// Entries are replaced by renaming a new file over them, so a mapping never sees a write.
    pub fn get(&self, key: &ModuleKey) -> Option<(memmap2::Mmap, Prepared)> {
        let (module, meta, text) = self.paths(key);
        let json = std::fs::read(&meta).ok()?;
        let entry: Entry = match serde_json::from_slice(&json) {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(
                    "module cache entry {} unreadable ({e}); rebuilding",
                    meta.display()
                );
                return None;
            }
        };
        if entry.prepared.key != text {
            tracing::warn!(
                "module cache entry {} is another model's; rebuilding",
                meta.display()
            );
            return None;
        }
        // SAFETY: the file is only ever replaced whole (`write_atomic`), never written in place.
        let mapped = std::fs::File::open(&module).and_then(|f| unsafe { memmap2::Mmap::map(&f) });
        match mapped {
            Ok(bytes) if crc32fast::hash(&bytes) == entry.module_crc32 => {
                Some((bytes, entry.prepared))
            }
            Ok(_) => {
                tracing::warn!(
                    "module cache entry {} is damaged (its checksum does not match); rebuilding",
                    module.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!("module cache entry {}: {e}; rebuilding", module.display());
                None
            }
        }
    }

    /// Keeps `bytes` and `prepared` for `key`: the module, then the decisions with its checksum.
    pub fn put(&self, key: &ModuleKey, bytes: &[u8], prepared: &Prepared) {
        if self.read_only {
            return;
        }
        let (module, meta, _) = self.paths(key);
        let entry = Entry {
            prepared: prepared.clone(),
            module_crc32: crc32fast::hash(bytes),
        };
        let result = std::fs::create_dir_all(&self.dir)
            .and_then(|_| write_atomic(&module, bytes))
            .and_then(|_| {
                let json = serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?;
                write_atomic(&meta, &json)
            });
        match result {
            Ok(()) => tracing::debug!("module cache entry {}", module.display()),
            Err(e) => tracing::warn!(
                "could not keep the rewritten module of {} in {} ({e}); the next run rewrites it again",
                key.name,
                self.dir.display()
            ),
        }
    }

    /// The key text of an entry, for `Prepared::key`.
    pub fn key_text(key: &ModuleKey) -> String {
        key.text()
    }
}

/// Without waiting for the disk: a module torn by a crash fails its checksum and is rebuilt,
/// and the wait would cost a first run more than the module cache saves it
/// (docs/performance.md, "Module cache").
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::atomic_file::write(path, bytes, ".module-", false)
}

/// A model name as a file name (cache entries, kept modules): anything but letters, digits, `-`,
/// `_` and `.` becomes `_`.
pub fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(layers: &'a [String], precision: &'a str) -> ModuleKey<'a> {
        ModuleKey {
            name: "net/a",
            sha256: "abc",
            layers,
            head: None,
            want_source: false,
            precision,
            device_kind: "cpu",
            size: 32,
        }
    }

    #[test]
    fn keeps_an_entry_per_key_and_rejects_a_foreign_or_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::in_cache(dir.path());
        let layers = vec!["layer1".to_owned()];
        let k = key(&layers, "f32");
        assert!(cache.get(&k).is_none());
        let prepared = Prepared {
            key: ModuleCache::key_text(&k),
            batchnorm_folded: true,
            taps: 1,
            source: SourceLogits::Unwanted,
            params_after: vec![Some(7)],
            probe: Some(vec![vec![0.5, -0.25]]),
            optimized: Some(true),
        };
        cache.put(&k, b"module bytes", &prepared);
        let (bytes, got) = cache.get(&k).unwrap();
        assert_eq!(&bytes[..], b"module bytes");
        assert_eq!(got, prepared);
        // Another precision is another entry.
        assert!(cache.get(&key(&layers, "bf16")).is_none());
        // A .json whose key is not the one asked for is not trusted.
        let (module, meta, _) = cache.paths(&k);
        let kept = std::fs::read(&meta).unwrap();
        let mut other: Entry = serde_json::from_slice(&kept).unwrap();
        other.prepared.key = "something else".into();
        std::fs::write(&meta, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(cache.get(&k).is_none());
        // Nor is a module that does not match its checksum (a block zeroed by a crash).
        std::fs::write(&meta, &kept).unwrap();
        std::fs::write(&module, b"module \0\0\0\0\0").unwrap();
        assert!(cache.get(&k).is_none());
        std::fs::write(&module, b"module bytes").unwrap();
        assert!(cache.get(&k).is_some());
        // Nor is a damaged one.
        std::fs::write(&meta, b"{not json").unwrap();
        assert!(cache.get(&k).is_none());
        let names: Vec<String> = std::fs::read_dir(dir.path().join("modules"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.starts_with("net_a-")), "{names:?}");
    }
}
