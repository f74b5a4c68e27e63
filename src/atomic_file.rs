//! Whole-file writes that a kill cannot tear: the bytes go to a temporary file in the target's
//! folder, which is then renamed over the target, so a reader finds the old file or the new one,
//! never half of one. A file that must survive a power loss (statistics, the report) is synced
//! before the rename; one whose damage is detected and rebuilt anyway (a rewritten module, a
//! score file) need not wait for the disk. Every file zoo-select writes goes through here.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file being written beside its target (`<prefix>*.tmp`), put in place by `commit`.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Staged {
    /// A new temporary file beside `path` (its folder made if need be), readable by all: a
    /// cache folder may be shared by a team.
    pub fn new(path: &Path, prefix: &str) -> std::io::Result<Staged> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".tmp")
            .tempfile_in(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(Staged {
            tmp,
            path: path.to_owned(),
        })
    }

    /// The temporary file, to write.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Renames the temporary file over the target, synced first when `sync`.
    pub fn commit(self, sync: bool) -> std::io::Result<()> {
        if sync {
            self.tmp.as_file().sync_all()?;
        }
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes `bytes` to `path` through a `Staged` file.
pub fn write(path: &Path, bytes: &[u8], prefix: &str, sync: bool) -> std::io::Result<()> {
    let staged = Staged::new(path, prefix)?;
    staged.file().write_all(bytes)?;
    staged.commit(sync)
}
