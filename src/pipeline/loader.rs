//! The CPU side of the pass: worker threads decode each image once, fit it to every geometry of
//! the zoo, and hand whole batches to the device thread through a bounded channel, so decoding
//! overlaps the forward passes and memory holds only a few batches whatever the dataset size.
//! With several devices, batches go to them in turn, so each image is still decoded once.
//!
//! Workers write each image straight into its row of the batch's staging memory (pinned for a
//! GPU: `device::staging`), and the next batch's images are already being decoded while the
//! last images of one finish: no thread copies a whole batch, and no worker waits for the
//! slowest image of a batch before it starts on the next.
//!
//! A file that cannot be decoded, even one that makes the decoder panic, becomes a `Skip` in its
//! batch. Any other panic in a worker becomes a `Message::Failed`, so the device thread stops
//! with an error instead of waiting forever.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::Sender;
use rayon::prelude::*;
use tch::{Device, Tensor};

use crate::dataset::{self, Geometry, Item, Skip};
use crate::device::staging;

/// Decoding threads are named with this prefix (the binary keeps their panics off the terminal:
/// each is reported as a skipped file).
pub const DECODE_THREAD: &str = "zoo-select-decode-";

/// A decoder panicking on a malformed image is caught and the file reported as skipped; its
/// panic message must not also spill over the terminal (or a notebook's). Every other panic
/// prints as usual. Installed once by each front end: the binary, the Python package.
pub fn quiet_decoder_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let decoding = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(DECODE_THREAD));
        if !decoding {
            default(info);
        }
    }));
}

/// Batches being decoded at once: while the last images of one finish, idle workers start on the
/// next.
const DECODING: usize = 2;

/// Preprocessed images of one batch.
pub struct Batch {
    pub index: usize,
    /// Label of each usable image, in row order.
    pub labels: Vec<i64>,
    /// Each usable image's position in the listing, in row order.
    pub ids: Vec<u32>,
    /// Per geometry: (rows, size, size, 3) u8, row-major RGB, in staging memory for the device.
    pub pixels: Vec<Tensor>,
    pub skipped: Vec<Skip>,
    /// Files looked at, usable or not.
    pub files: usize,
}

/// Where the decoding side's time went during a pass: with `timing.devices`, it says which side
/// bounds the pass. The workers' times are summed over workers: `decoding_s / workers` near the
/// pass's length means the workers never idled.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DecodingTime {
    pub workers: usize,
    /// Reading, decoding and fitting images, summed over workers.
    pub decoding_s: f64,
    /// Allocating each batch's staging memory (pinned for a GPU), summed over batches.
    pub staging_s: f64,
    /// The thread that hands batches over in order, waiting for the next one to be decoded.
    pub waiting_for_workers_s: f64,
    /// The same thread, waiting for room in a device's queue: the devices were the slower side.
    pub waiting_for_devices_s: f64,
}

/// Nanoseconds added up by many threads.
#[derive(Default)]
struct Clock(AtomicU64);

impl Clock {
    fn add_since(&self, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(ns, Ordering::Relaxed);
    }

    fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

pub enum Message {
    Batch(Batch),
    /// Every batch of this device's part has been sent.
    End,
    Failed(String),
}

/// Sends batch i of `items` to `parts[i % parts.len()]`, in order, except the batches `done` says
/// a checkpoint already holds, then `End` to every part. Stops early when a receiver is gone.
/// Returns where its time went.
pub fn produce(
    items: &[Item],
    geometries: &[Geometry],
    batch_size: usize,
    workers: usize,
    device: Device,
    parts: Vec<Sender<Message>>,
    done: &[usize],
) -> DecodingTime {
    let (decoding, staging) = (Clock::default(), Clock::default());
    let mut time = DecodingTime {
        workers,
        ..DecodingTime::default()
    };
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
            return time;
        }
    };
    let n = parts.len();
    let todo: Vec<(usize, &[Item])> = items
        .chunks(batch_size.max(1))
        .enumerate()
        .filter(|(index, _)| index / n >= done[index % n])
        .collect();
    let (made_tx, made_rx) = crossbeam_channel::unbounded::<(usize, Result<Batch, String>)>();
    pool.in_place_scope(|scope| {
        let mut started = 0;
        let mut ready: BTreeMap<usize, Batch> = BTreeMap::new();
        let start_more = |sent: usize, started: &mut usize| {
            while *started < todo.len() && *started < sent + DECODING {
                let (index, chunk) = todo[*started];
                let (made_tx, position) = (made_tx.clone(), *started);
                let clocks = (&decoding, &staging);
                scope.spawn(move |_| {
                    let made = catch_unwind(AssertUnwindSafe(|| {
                        make_batch(index, chunk, geometries, device, clocks)
                    }))
                    .unwrap_or_else(|panic| Err(panic_text(panic.as_ref())));
                    let _ = made_tx.send((position, made));
                });
                *started += 1;
            }
        };
        for sent in 0..todo.len() {
            start_more(sent, &mut started);
            // Batches finish in any order; they leave in order.
            let waiting = Instant::now();
            let batch = loop {
                if let Some(batch) = ready.remove(&sent) {
                    break batch;
                }
                match made_rx.recv() {
                    Ok((position, Ok(batch))) => {
                        ready.insert(position, batch);
                    }
                    Ok((_, Err(reason))) => {
                        fail_all(reason);
                        return;
                    }
                    Err(_) => {
                        fail_all("the decoding threads stopped".into());
                        return;
                    }
                }
            };
            let handing = Instant::now();
            time.waiting_for_workers_s += handing.duration_since(waiting).as_secs_f64();
            if parts[batch.index % n].send(Message::Batch(batch)).is_err() {
                return;
            }
            time.waiting_for_devices_s += handing.elapsed().as_secs_f64();
        }
        for tx in &parts {
            let _ = tx.send(Message::End);
        }
    });
    time.decoding_s = decoding.seconds();
    time.staging_s = staging.seconds();
    time
}

/// Decodes and fits one batch's images into fresh staging memory, each worker writing its images'
/// rows; rows of files that fail are then closed up. Err only when the memory cannot be had.
/// `clocks`: where it adds its workers' decoding time and its staging allocation's.
fn make_batch(
    index: usize,
    chunk: &[Item],
    geometries: &[Geometry],
    device: Device,
    (decoding, staging_time): (&Clock, &Clock),
) -> Result<Batch, String> {
    let _span = tracing::trace_span!("decode", batch = index).entered();
    let rows = chunk.len();
    let allocating = Instant::now();
    let mut pixels = geometries
        .iter()
        .map(|g| {
            let s = g.size as i64;
            staging(&[rows as i64, s, s, 3], device)
                .map_err(|e| format!("cannot allocate host memory for a batch of images: {e}"))
        })
        .collect::<Result<Vec<Tensor>, String>>()?;
    staging_time.add_since(allocating);
    let mut buffers: Vec<&mut [u8]> = pixels
        .iter_mut()
        .zip(geometries)
        // SAFETY: each tensor was just allocated as `rows * g.bytes()` contiguous u8 and has no
        // other handle; the slices are dropped before the tensors are moved or read.
        .map(|(t, g)| unsafe {
            std::slice::from_raw_parts_mut(t.data_ptr() as *mut u8, rows * g.bytes())
        })
        .collect();
    // slots[row][geometry]: where that image's pixels go.
    let mut slots: Vec<Vec<&mut [u8]>> = (0..rows).map(|_| Vec::new()).collect();
    for (buffer, g) in buffers.iter_mut().zip(geometries) {
        for (slot, row) in slots.iter_mut().zip(buffer.chunks_mut(g.bytes())) {
            slot.push(row);
        }
    }
    // A decoder that panics on one malformed file costs that file, not the run.
    let decoded: Vec<Result<(), String>> = chunk
        .par_iter()
        .zip(slots.into_par_iter())
        .map(|(item, mut slot)| {
            let started = Instant::now();
            catch_unwind(AssertUnwindSafe(|| {
                dataset::load_into(&item.path, geometries, &mut slot)
            }))
            .unwrap_or_else(|panic| {
                Err(format!(
                    "the decoder failed: {}",
                    panic_text(panic.as_ref())
                ))
            })?;
            decoding.add_since(started);
            Ok(())
        })
        .collect();
    let mut batch = Batch {
        index,
        labels: Vec::with_capacity(rows),
        ids: Vec::with_capacity(rows),
        pixels: Vec::new(),
        skipped: Vec::new(),
        files: rows,
    };
    for (row, (item, result)) in chunk.iter().zip(decoded).enumerate() {
        match result {
            Ok(()) => {
                let kept = batch.labels.len();
                if kept < row {
                    for (buffer, g) in buffers.iter_mut().zip(geometries) {
                        let b = g.bytes();
                        buffer.copy_within(row * b..(row + 1) * b, kept * b);
                    }
                }
                batch.labels.push(item.label as i64);
                batch.ids.push(item.index as u32);
            }
            Err(reason) => batch.skipped.push(Skip {
                path: item.path.clone(),
                reason,
            }),
        }
    }
    drop(buffers);
    let kept = batch.labels.len() as i64;
    batch.pixels = pixels
        .iter()
        .map(|t| t.f_narrow(0, 0, kept))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot narrow a batch of images: {e}"))?;
    Ok(batch)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Interpolation;
    use image::{Rgb, RgbImage};

    /// Grey images of value 10 * i (i = 0..n, label i % 3), with file `bad` not an image.
    fn folder(name: &str, n: usize, bad: usize) -> (std::path::PathBuf, Vec<Item>) {
        let dir = std::env::temp_dir().join(format!("zs-loader-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let items = (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.png"));
                if i == bad {
                    std::fs::write(&path, b"not a png").unwrap();
                } else {
                    let v = (10 * i) as u8;
                    RgbImage::from_pixel(8, 6, Rgb([v, v, v]))
                        .save(&path)
                        .unwrap();
                }
                Item {
                    path,
                    label: i % 3,
                    index: i,
                }
            })
            .collect();
        (dir, items)
    }

    #[test]
    fn a_slow_device_shows_as_waiting_for_devices() {
        let (_dir, items) = folder("slow", 8, 2);
        let (tx, rx) = crossbeam_channel::bounded(0);
        let consumer = std::thread::spawn(move || {
            let mut batches = 0;
            for m in rx {
                if let Message::Batch(_) = m {
                    batches += 1;
                    std::thread::sleep(std::time::Duration::from_millis(60));
                }
            }
            batches
        });
        let time = produce(&items, &geometries(), 2, 1, Device::Cpu, vec![tx], &[0]);
        assert_eq!(consumer.join().unwrap(), 4);
        // Each batch after the first waits for the device to take it: at least three sleeps.
        assert!(time.waiting_for_devices_s >= 0.15, "{time:?}");
        assert!(
            time.waiting_for_workers_s < time.waiting_for_devices_s,
            "{time:?}"
        );
    }

    fn geometries() -> Vec<Geometry> {
        [(4, 4), (2, 3)]
            .map(|(size, resize)| Geometry {
                size,
                resize,
                filter: Interpolation::Bilinear,
            })
            .to_vec()
    }

    #[test]
    fn batches_leave_in_order_with_each_image_in_its_row_and_bad_files_closed_up() {
        let (dir, items) = folder("order", 11, 4);
        let geometries = geometries();
        let (a, ra) = crossbeam_channel::unbounded();
        let (b, rb) = crossbeam_channel::unbounded();
        let done = [1, 0];
        let time = produce(&items, &geometries, 3, 2, Device::Cpu, vec![a, b], &done);
        // Three batches decoded by two workers, handed to queues that never fill.
        assert_eq!(time.workers, 2);
        assert!(time.decoding_s > 0.0 && time.staging_s > 0.0, "{time:?}");
        assert!(time.waiting_for_devices_s < 0.05, "{time:?}");
        let drain = |rx: crossbeam_channel::Receiver<Message>| {
            let mut batches = Vec::new();
            for m in rx {
                match m {
                    Message::Batch(batch) => batches.push(batch),
                    Message::End => return batches,
                    Message::Failed(e) => panic!("{e}"),
                }
            }
            panic!("no End");
        };
        let (to_a, to_b) = (drain(ra), drain(rb));
        // Batches 0..4 of 3 images; part a already holds its first batch (0), so it gets 2 only.
        assert_eq!(to_a.iter().map(|b| b.index).collect::<Vec<_>>(), [2]);
        assert_eq!(to_b.iter().map(|b| b.index).collect::<Vec<_>>(), [1, 3]);
        let batch = &to_b[0];
        assert_eq!((batch.files, batch.ids.clone()), (3, vec![3, 5]));
        assert_eq!(batch.labels, [0, 2]);
        assert_eq!(batch.skipped.len(), 1);
        assert_eq!(batch.skipped[0].path, items[4].path);
        for (pixels, g) in batch.pixels.iter().zip(&geometries) {
            let s = g.size as i64;
            assert_eq!(pixels.size(), [2, s, s, 3]);
            assert_eq!(pixels.int64_value(&[0, 0, 0, 0]), 30);
            assert_eq!(pixels.int64_value(&[1, s - 1, s - 1, 2]), 50);
        }
        let last = &to_b[1];
        assert_eq!(
            (last.ids.clone(), last.pixels[1].int64_value(&[1, 1, 0, 1])),
            (vec![9, 10], 100)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_batch_of_bad_files_only_is_empty_not_an_error() {
        let (dir, items) = folder("empty", 1, 0);
        let clocks = (&Clock::default(), &Clock::default());
        let batch = make_batch(0, &items, &geometries(), Device::Cpu, clocks).unwrap();
        assert!(batch.labels.is_empty());
        assert_eq!(batch.pixels[0].size(), [0, 4, 4, 3]);
        assert_eq!(batch.skipped.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
