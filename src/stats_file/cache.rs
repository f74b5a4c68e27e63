//! The cache: a folder of statistics files, one per (model, dataset, shard, device kind), each
//! holding the layers computed so far. A run reads the entries of its models, computes only
//! the layers (and models) they lack, and writes the entries back with the union, so adding a
//! model or a layer costs only its own pass. An entry that cannot be used (damaged, of another
//! format version, of another file) is recomputed with a warning, never trusted.
//!
//! A cache may be shared: by a team, by the tasks of a Slurm array. Two runs that add layers
//! to one model's entry at the same time would each write back what they read plus what they
//! computed, and the last would drop the other's layers. So an entry is written under a lock
//! on the folder, and an entry written by someone else since this run read it is read again
//! and its layers kept beside this run's.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::Device;

use super::file::{self, FileInfo, ModelEntry, Shard, StatsFile};
use super::fingerprint::hex;
use super::fingerprint::{DatasetId, ModelKey};
use crate::error::Result;

pub struct Cache {
    pub dir: PathBuf,
    /// Each entry as `load` found it (modification time and length; None: absent), so that
    /// `store` can tell another run's write from this run's reading by the file itself, not
    /// by clocks that a file server may not share.
    seen:
        std::sync::Mutex<std::collections::HashMap<PathBuf, Option<(std::time::SystemTime, u64)>>>,
}

/// An entry file's state: what tells one write from another.
fn state(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_owned(),
            seen: Default::default(),
        }
    }

    /// Removes what writers killed mid-write left: temporary files (`.zss-*.tmp` here,
    /// `.module-*.tmp` in `modules/`, `.scores-*.tmp` in `scores/`) untouched for an hour, which no live writer leaves so
    /// long. Returns how many it removed.
    pub fn sweep(&self) -> usize {
        let stale = |e: &std::fs::DirEntry| {
            let name = e.file_name().to_string_lossy().into_owned();
            let temporary = name.ends_with(".tmp")
                && [".zss-", ".module-", ".scores-"]
                    .iter()
                    .any(|p| name.starts_with(p));
            temporary
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() >= 3600))
        };
        let mut removed = 0;
        for dir in [
            self.dir.clone(),
            self.dir.join("modules"),
            self.dir.join("scores"),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten().filter(stale) {
                if std::fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Where the entry of `key` over `dataset`'s covered images lives.
    pub fn entry_path(
        &self,
        key: &ModelKey,
        dataset: &DatasetId,
        shard: Option<Shard>,
        device_kind: &str,
    ) -> PathBuf {
        let mut h = Sha256::new();
        h.update(format!(
            "{}\n{}\n{shard:?}\n{device_kind}\n",
            dataset.fingerprint, dataset.covered
        ));
        h.update(format!(
            "{}\n{}\n{}\n{}\n",
            key.name, key.sha256, key.preprocessing, key.precision
        ));
        let hash = hex(&h.finalize());
        self.dir.join(format!(
            "{}-{}.zss",
            crate::zoo::file_name(&key.name),
            &hash[..16]
        ))
    }

    /// The cached statistics of `key`, if a usable entry exists.
    pub fn load(
        &self,
        key: &ModelKey,
        dataset: &DatasetId,
        shard: Option<Shard>,
        device_kind: &str,
        device: Device,
    ) -> Option<(ModelEntry, FileInfo)> {
        let path = self.entry_path(key, dataset, shard, device_kind);
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(path.clone(), state(&path));
        }
        if !path.exists() {
            return None;
        }
        let usable = |file: &StatsFile| {
            file.info.dataset == *dataset
                && file.info.shard == shard
                && file.info.progress.is_none()
                && file.models.len() == 1
                && file.models[0].key == *key
        };
        match file::read(&path, device) {
            Ok(mut file) if usable(&file) => {
                let mut entry = file.models.pop()?;
                entry.file = Some(path);
                Some((entry, file.info))
            }
            Ok(_) => {
                tracing::warn!(
                    "cache entry {} is for other images or another model; recomputing",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!("cache entry unusable, recomputing: {e}");
                None
            }
        }
    }

    /// Keeps `entry`'s statistics, with the layers another run has kept in the same entry
    /// since this run loaded it. They are lent to the writer and given back whether or not they
    /// could be written: the cache is a convenience, and statistics it cannot keep are still
    /// this run's to score.
    pub fn store(&self, entry: &mut ModelEntry, info: FileInfo, device: Device) -> Result<()> {
        let path = self.entry_path(&entry.key, &info.dataset, info.shard, &info.device_kind);
        let _lock = FolderLock::take(&self.dir);
        let loaded = self.seen.lock().ok().and_then(|s| s.get(&path).copied());
        // Not loaded by this run (None): unknown, so read it if it is there.
        let now = state(&path);
        let rewritten = now.is_some() && loaded.is_none_or(|then| now != then);
        if rewritten {
            if let Some((theirs, _)) = self.load(
                &entry.key,
                &info.dataset,
                info.shard,
                &info.device_kind,
                device,
            ) {
                let kept = adopt(entry, theirs);
                if kept > 0 {
                    tracing::info!(
                        "cache entry {} was written by another run meanwhile: its {kept} \
                         other layer statistics are kept too",
                        path.display()
                    );
                }
            }
        }
        let lent = ModelEntry {
            key: entry.key.clone(),
            source_logits: entry.source_logits.clone(),
            stats: std::mem::take(&mut entry.stats),
            file: None,
        };
        let mut file = StatsFile {
            info,
            models: vec![lent],
        };
        let written = file::write(&path, &mut file);
        for back in file.models {
            entry.stats = back.stats;
        }
        entry.file = written.is_ok().then_some(path);
        written
    }
}

/// Adds to `ours` what `theirs` (the same model over the same images) has and `ours` lacks:
/// whole layers, a layer's stores of other transforms, the source statistics. Returns how
/// many layers or stores it added.
fn adopt(ours: &mut ModelEntry, theirs: ModelEntry) -> usize {
    let mut added = 0;
    for layer in theirs.stats.layers {
        match ours
            .stats
            .layers
            .iter()
            .position(|l| l.meta.name == layer.meta.name)
        {
            Some(i) => {
                let have = &mut ours.stats.layers[i].stores;
                for (t, store) in layer.stores {
                    if !have.iter().any(|(u, _)| *u == t) {
                        have.push((t, store));
                        added += 1;
                    }
                }
            }
            None => {
                ours.stats.layers.push(layer);
                added += 1;
            }
        }
    }
    if ours.stats.source.is_none() && theirs.stats.source.is_some() {
        ours.stats.source = theirs.stats.source;
        ours.source_logits = theirs.source_logits;
        added += 1;
    }
    added
}

/// An exclusive advisory lock on the folder's `.lock` file (flock; on NFS the kernel makes it
/// a POSIX lock, which needs the file open for writing), released when dropped. Where the
/// file system refuses locks, entries are written without one, and that is said once.
struct FolderLock(Option<std::fs::File>);

impl FolderLock {
    fn take(dir: &Path) -> FolderLock {
        use std::os::unix::io::AsRawFd;
        static SAID: std::sync::Once = std::sync::Once::new();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(".lock"));
        let Ok(file) = file else {
            return FolderLock(None);
        };
        let locked = loop {
            // SAFETY: flock on a file descriptor this value owns for its whole life.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break true;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break false;
            }
        };
        if !locked {
            SAID.call_once(|| {
                tracing::warn!(
                    "cannot lock {}: runs sharing this cache may drop each other's new layers",
                    dir.display()
                )
            });
        }
        FolderLock(locked.then_some(file))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        if let Some(folder) = &self.0 {
            // SAFETY: unlocks the descriptor locked in `take`, still open.
            unsafe { libc::flock(folder.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_temporary_files_left_an_hour_ago() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("modules")).unwrap();
        std::fs::create_dir(dir.path().join("scores")).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3700);
        let make = |name: &str, old: bool| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            if old {
                let f = std::fs::File::options().write(true).open(&path).unwrap();
                f.set_modified(hour_ago).unwrap();
            }
        };
        make(".zss-old.tmp", true);
        make("modules/.module-old.tmp", true);
        make("scores/.scores-old.tmp", true);
        make("scores/0123.json", true);
        make(".zss-live.tmp", false);
        make("resnet-0123.zss", true);
        make(".zoo-select-rows-old", true);
        assert_eq!(Cache::new(dir.path()).sweep(), 3);
        assert!(dir.path().join("scores/0123.json").exists());
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [
                ".zss-live.tmp",
                "resnet-0123.zss",
                ".zoo-select-rows-old",
                "modules",
                "scores"
            ]
            .into_iter()
            .map(String::from)
            .collect()
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("modules"))
                .unwrap()
                .count(),
            0
        );
    }
}
