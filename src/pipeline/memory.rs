//! The statistics' memory: the worst case checked against `memory_budget` before the pass, and
//! the rows spilled to disk during it once they pass their share of the budget.
//!
//! What must stay in memory (sums on the CPU, the row sample) has to fit the budget, or the run
//! is refused before the pass with the figure and the way out. Per-class feature rows
//! (`stats/class_second.rs`) need not: they take what the budget leaves, and beyond it the pass
//! writes the largest classes' rows to a temporary file in the output's `stats/` folder
//! (`stats/spill.rs`), which must then have room for every row the pass may keep.

use std::path::{Path, PathBuf};

use tch::Device;

use super::job::Job;
use crate::error::{Error, Result};
use crate::plan::MemoryBudget;
use crate::stats::RowBudget;
use crate::zoo::ZooModel;

/// The spill folder of a run: its output's `stats/` folder (its checkpoint folder, inside it, is checked writable before the pass).
pub fn spill_dir(output: &Path) -> PathBuf {
    output.join("stats")
}

pub fn gib(b: u64) -> String {
    let b = b as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// The statistics' worst-case memory, known before the pass from the class sizes and the
/// layers' widths: printed, and refused with the figure and the way out when what must stay in
/// memory exceeds the budget or the spill folder lacks room for the rows, rather than failing
/// hours into the pass. Returns what the rows may keep in memory.
pub fn check(job: &Job, models: &[ZooModel]) -> Result<RowBudget> {
    let plan = job.plan;
    let per_class = job.per_class();
    let parts = plan.devices.len();
    let (mut device, mut fixed, mut rows) = (0u64, 0u64, 0u64);
    for model in models {
        for &dim in &model.dims {
            let w = job.layout.worst_case(dim, &per_class, parts);
            device += w.device;
            fixed += w.host;
            rows += w.rows;
        }
    }
    let dir = spill_dir(&plan.output);
    let on_cpu = plan.devices.iter().all(|d| *d == Device::Cpu);
    tracing::info!(
        "statistics: at most {} on {}, {} in host memory and {} of feature rows (to {} beyond \
         the budget)",
        gib(device),
        if on_cpu { "the CPU" } else { "the devices" },
        gib(fixed),
        gib(rows),
        dir.display()
    );
    let Some(MemoryBudget {
        bytes: budget,
        default,
    }) = plan.memory_budget
    else {
        return Ok(RowBudget {
            per_part: None,
            dir,
        });
    };
    let why = if default {
        " (80 % of the memory available now)".to_owned()
    } else {
        String::new()
    };
    let must_stay = fixed + if on_cpu { device } else { 0 };
    if must_stay > budget {
        return Err(Error::Memory {
            need: format!(
                "{} of memory for sums and samples (and {} of feature rows that can go to disk)",
                gib(must_stay),
                gib(rows)
            ),
            budget: gib(budget),
            why,
        });
    }
    let share = budget - must_stay;
    if rows > share {
        let free = free_disk(&dir);
        tracing::info!(
            "feature rows beyond {} go to {} ({} free)",
            gib(share),
            dir.display(),
            free.map_or("unknown".to_owned(), gib)
        );
        if let Some(free) = free.filter(|f| *f < rows) {
            return Err(Error::Spill {
                reason: format!(
                    "the feature rows may take {} beyond the {} the memory budget of {}{why} \
                     leaves them, and their spill folder has {} free",
                    gib(rows),
                    gib(share),
                    gib(budget),
                    gib(free)
                ),
                dir,
            });
        }
    }
    Ok(RowBudget {
        per_part: Some(share / parts.max(1) as u64),
        dir,
    })
}

/// What feature rows read back from statistics files (cache entries, shards) may keep in host
/// memory before they spill like a pass's: half the budget (`memory_budget`, else 80 % of the
/// memory available), the other half left to the sums they come with, whose size no file
/// announces before it is read.
pub fn file_rows_budget(plan: &crate::plan::Plan) -> RowBudget {
    RowBudget {
        per_part: plan.memory_budget.map(|b| b.bytes / 2),
        dir: spill_dir(&plan.output),
    }
}

/// Bytes an unprivileged process may still write in `dir`'s file system.
fn free_disk(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a NUL-terminated string and `stat` a plain struct statvfs fills in.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}
