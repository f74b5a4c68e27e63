//! Feature rows on their way from a GPU to host memory. The row sample (`RowSample`; per-class
//! rows go through `Landing` in `class_second.rs`) starts each batch's copy without waiting for it
//! (`device::start_download`), so the device thread never stalls the GPU for them; the copy lands
//! in pinned staging memory once the GPU reaches it. `Staging` remembers which chunks are still
//! staged and by which batch, and `settle` swaps them for pageable copies once the pass knows
//! those batches are done (it waited on their fence). Rows are only read after a settle.

use std::collections::VecDeque;

use tch::TchError;

#[derive(Default)]
pub struct Staging {
    /// (batch serial, index of the chunk), in the order the copies were queued.
    queue: VecDeque<(u64, usize)>,
}

impl Staging {
    /// Notes that chunk `index` is staged by batch `serial`.
    pub fn push(&mut self, serial: u64, index: usize) {
        self.queue.push_back((serial, index));
    }

    /// Hands every chunk staged by a batch up to `done` to `replace` (which swaps it for a
    /// pageable copy, or skips it when the chunk is gone), oldest first.
    pub fn settle(
        &mut self,
        done: u64,
        mut replace: impl FnMut(usize) -> Result<(), TchError>,
    ) -> Result<(), TchError> {
        while let Some(&(serial, index)) = self.queue.front() {
            if serial > done {
                break;
            }
            replace(index)?;
            self.queue.pop_front();
        }
        Ok(())
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_batches_up_to_the_one_done_in_order() {
        let mut s = Staging::default();
        s.push(3, 0);
        s.push(3, 1);
        s.push(4, 2);
        let mut seen = Vec::new();
        s.settle(3, |i| {
            seen.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1]);
        assert!(!s.is_empty());
        s.settle(u64::MAX, |i| {
            seen.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2]);
        assert!(s.is_empty());
    }
}
