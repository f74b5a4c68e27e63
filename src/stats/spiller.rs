//! Feature rows beyond the memory budget, moved to disk. Per-class rows (the exact TransRate of
//! a class with fewer images than dimensions) are what can outgrow memory; a part's `Spiller`
//! moves the largest classes' rows to one spill file whenever its rows pass its share.

use std::path::PathBuf;
use std::sync::Arc;

use super::class_moments::ClassMoments;
use super::spill::SpillFile;
use crate::error::{Error, Result};

/// Where and beyond what a device part spills its rows.
#[derive(Clone)]
pub struct RowBudget {
    /// Bytes of rows one part may keep in host memory; None: no budget known, never spill.
    pub per_part: Option<u64>,
    pub dir: PathBuf,
}

/// One device part's spilling: its file (made at the first spill) and what it wrote.
pub struct Spiller {
    budget: RowBudget,
    file: Option<Arc<SpillFile>>,
    /// Bytes written to the file.
    pub written: u64,
}

impl Spiller {
    pub fn new(budget: RowBudget) -> Spiller {
        Spiller {
            budget,
            file: None,
            written: 0,
        }
    }

    /// Moves the host rows of row-kept classes to disk, largest class first, while the rows of
    /// `stats` take more than the part's share. It spills down to three quarters of it, so that
    /// the batches after do not each spill a few rows.
    pub fn spill_over<'a>(
        &mut self,
        stores: impl IntoIterator<Item = &'a mut ClassMoments>,
    ) -> Result<()> {
        let Some(limit) = self.budget.per_part else {
            return Ok(());
        };
        let mut stores: Vec<_> = stores
            .into_iter()
            .filter_map(ClassMoments::class_second_mut)
            .collect();
        let mut held: u64 = stores.iter().map(|s| s.bytes().0 as u64).sum();
        if held <= limit {
            return Ok(());
        }
        let mut candidates: Vec<(usize, usize, usize)> = stores
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.rows_in_memory()
                    .into_iter()
                    .map(move |(c, bytes)| (bytes, i, c))
            })
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let target = limit / 4 * 3;
        let dir = &self.budget.dir;
        let file = match &self.file {
            Some(f) => Arc::clone(f),
            None => {
                let f = SpillFile::new_in(dir).map_err(|e| Error::Spill {
                    dir: dir.clone(),
                    reason: format!("cannot make a file for feature rows: {e}"),
                })?;
                tracing::debug!("spilling feature rows to {}", f.path().display());
                self.file = Some(Arc::clone(&f));
                f
            }
        };
        for (bytes, i, class) in candidates {
            if held <= target {
                break;
            }
            self.written += stores[i].spill(class, &file).map_err(|e| Error::Spill {
                dir: dir.clone(),
                reason: crate::error::torch_message(&e),
            })?;
            held -= bytes as u64;
        }
        Ok(())
    }
}
