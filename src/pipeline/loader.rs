//! The CPU side of the pass: worker threads decode each image once, fit it to every geometry of
//! the zoo, and hand whole batches to the device thread through a bounded channel, so decoding
//! overlaps the forward passes and memory holds only a few batches whatever the dataset size.
//! With several devices, batches go to them in turn, so each image is still decoded once.
//!
//! A file that cannot be decoded, even one that makes the decoder panic, becomes a `Skip` in its
//! batch. Any other panic in a worker becomes a `Message::Failed`, so the device thread stops
//! with an error instead of waiting forever.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crossbeam_channel::Sender;
use rayon::prelude::*;

use crate::dataset::{self, Geometry, Item, Skip};

/// Decoding threads are named with this prefix (the binary keeps their panics off the terminal:
/// each is reported as a skipped file).
pub const DECODE_THREAD: &str = "zoo-select-decode-";

/// Preprocessed images of one batch.
pub struct Batch {
    pub index: usize,
    /// Label of each usable image, in row order.
    pub labels: Vec<i64>,
    /// Each usable image's position in the listing, in row order.
    pub ids: Vec<u32>,
    /// Per geometry: rows x size x size x 3 bytes, row-major RGB.
    pub pixels: Vec<Vec<u8>>,
    pub skipped: Vec<Skip>,
    /// Files looked at, usable or not.
    pub files: usize,
}

pub enum Message {
    Batch(Batch),
    /// Every batch of this device's part has been sent.
    End,
    Failed(String),
}

/// Sends batch i of `items` to `parts[i % parts.len()]`, except the batches `done` says a
/// checkpoint already holds, then `End` to every part. Stops early when a receiver is gone.
pub fn produce(
    items: &[Item],
    geometries: &[Geometry],
    batch_size: usize,
    workers: usize,
    parts: Vec<Sender<Message>>,
    done: &[usize],
) {
    let fail_all = |reason: String| {
        for tx in &parts {
            let _ = tx.send(Message::Failed(reason.clone()));
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("{DECODE_THREAD}{i}"))
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            fail_all(format!("cannot start decoding threads: {e}"));
            return;
        }
    };
    let n = parts.len();
    for (index, chunk) in items.chunks(batch_size).enumerate() {
        if index / n < done[index % n] {
            continue;
        }
        let made = catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| make_batch(index, chunk, geometries))
        }));
        match made {
            Ok(batch) => {
                if parts[index % n].send(Message::Batch(batch)).is_err() {
                    return;
                }
            }
            Err(panic) => {
                fail_all(panic_text(panic.as_ref()));
                return;
            }
        }
    }
    for tx in &parts {
        let _ = tx.send(Message::End);
    }
}

fn make_batch(index: usize, chunk: &[Item], geometries: &[Geometry]) -> Batch {
    let _span = tracing::trace_span!("decode", batch = index).entered();
    // A decoder that panics on one malformed file costs that file, not the run.
    let decoded: Vec<_> = chunk
        .par_iter()
        .map(|item| {
            catch_unwind(AssertUnwindSafe(|| dataset::load(&item.path, geometries))).unwrap_or_else(
                |panic| {
                    Err(format!(
                        "the decoder failed: {}",
                        panic_text(panic.as_ref())
                    ))
                },
            )
        })
        .collect();
    let mut batch = Batch {
        index,
        labels: Vec::with_capacity(chunk.len()),
        ids: Vec::with_capacity(chunk.len()),
        pixels: geometries
            .iter()
            .map(|g| Vec::with_capacity(g.bytes() * chunk.len()))
            .collect(),
        skipped: Vec::new(),
        files: chunk.len(),
    };
    for (item, result) in chunk.iter().zip(decoded) {
        match result {
            Ok(images) => {
                batch.labels.push(item.label as i64);
                batch.ids.push(item.index as u32);
                for (buf, img) in batch.pixels.iter_mut().zip(images) {
                    buf.extend_from_slice(&img);
                }
            }
            Err(reason) => batch.skipped.push(Skip {
                path: item.path.clone(),
                reason,
            }),
        }
    }
    batch
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a decoding thread panicked".to_owned()
    }
}
