//! Feature rows on their way from a GPU to host memory. Stores that keep rows on the host
//! (`ClassSecond`'s row-kept classes, `RowSample`) start each batch's copy without waiting for it
//! (`device::start_download`), so the device thread never stalls the GPU for them; the copy lands
//! in pinned staging memory once the GPU reaches it. `Staging` remembers which chunks are still
//! staged and by which batch, and `settle` swaps them for pageable copies once the pass knows
//! those batches are done (it waited on their fence). Rows are only read after a settle.

use std::collections::VecDeque;

use tch::TchError;

#[derive(Default)]
pub struct Staging {
    /// (batch serial, list, index in the list), in the order the copies were queued.
    queue: VecDeque<(u64, usize, usize)>,
}

impl Staging {
    /// Notes that chunk `index` of list `list` (a class; 0 for a single list) is staged by batch
    /// `serial`.
    pub fn push(&mut self, serial: u64, list: usize, index: usize) {
        self.queue.push_back((serial, list, index));
    }

    /// Hands every chunk staged by a batch up to `done` to `replace` (which swaps it for a
    /// pageable copy, or skips it when the chunk is gone), oldest first.
    pub fn settle(
        &mut self,
        done: u64,
        mut replace: impl FnMut(usize, usize) -> Result<(), TchError>,
    ) -> Result<(), TchError> {
        while let Some(&(serial, list, index)) = self.queue.front() {
            if serial > done {
                break;
            }
            replace(list, index)?;
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
        s.push(3, 0, 0);
        s.push(3, 2, 0);
        s.push(4, 0, 1);
        let mut seen = Vec::new();
        s.settle(3, |l, i| {
            seen.push((l, i));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, 0), (2, 0)]);
        assert!(!s.is_empty());
        s.settle(u64::MAX, |l, i| {
            seen.push((l, i));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, 0), (2, 0), (0, 1)]);
        assert!(s.is_empty());
    }
}
