//! Whole-file writes that a kill cannot tear: the bytes go to a temporary file in the target's
//! folder, which is then renamed over the target, so a reader finds the old file or the new one,
//! never half of one. A file that must survive a power loss (statistics) is synced before the
//! rename; one whose damage is detected and rebuilt anyway (a rewritten module, a score file)
//! need not wait for the disk.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary `<prefix>*.tmp` beside it, readable by all (a
/// cache folder may be shared by a team), synced first when `sync`.
pub fn write(path: &Path, bytes: &[u8], prefix: &str, sync: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if sync {
        tmp.as_file().sync_all()?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
