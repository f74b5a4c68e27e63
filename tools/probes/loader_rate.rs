//! How fast the decoding workers hand over batches when nothing else runs: the most images per
//! second a pass can get on this machine's cores, whatever the device. A GPU pass can go no
//! faster than this, so it is the ceiling to set beside the forward loop (`forward_limit`).
//! Not a test: a measurement.
//!
//!     . scripts/env.sh && cargo run --release --example loader_rate -- CONFIG [BATCH] [WORKERS...]
//!
//! The allocator is set as the binary sets it (one heap, freed memory handed back every few
//! batches), so that the ceiling is the pass's own; with ZS_GLIBC_ARENAS=1 glibc keeps its
//! defaults (an arena per thread), to tell what the one heap costs many decoding threads.
//!
//! Prints, per worker count, images per second and the efficiency against that many times the
//! rate of one worker (1.0: no worker ever waits for another): a line of text on stderr and a
//! JSON object on stdout (tools/gpu-check reads those).

use std::path::PathBuf;
use std::time::Instant;

use zoo_select::dataset::{self, Geometry};
use zoo_select::pipeline::loader::{self, Message};
use zoo_select::plan::{Overrides, Plan};

fn main() -> anyhow::Result<()> {
    let one_heap = std::env::var_os("ZS_GLIBC_ARENAS").is_none();
    if one_heap {
        zoo_select::allocator::reuse_freed_memory();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = PathBuf::from(
        args.first()
            .ok_or_else(|| anyhow::anyhow!("usage: loader_rate CONFIG [BATCH] [WORKERS...]"))?,
    );
    let batch: usize = args.get(1).map_or(Ok(32), |s| s.parse())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut workers: Vec<usize> = args[2.min(args.len())..]
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if workers.is_empty() {
        workers = vec![1, cores];
    }
    let plan = Plan::new(&config, Overrides::default())?;
    let folder = dataset::scan(&plan.config.dataset.root, plan.config.dataset.max_per_class)?;
    let geometries = Geometry::distinct(plan.models.iter().map(|m| &m.input));
    // Pinned staging memory when the config asks for a GPU, as in the pass.
    let device = plan.device;
    let mut one = None;
    for w in workers {
        let (tx, rx) = crossbeam_channel::bounded(4);
        let start = Instant::now();
        let (items, geoms) = (&folder.items, &geometries);
        let images = std::thread::scope(|scope| -> anyhow::Result<usize> {
            scope.spawn(move || loader::produce(items, geoms, batch, w, device, vec![tx], &[0]));
            let (mut images, mut batches) = (0, 0usize);
            for message in rx {
                match message {
                    Message::Batch(b) => {
                        images += b.labels.len();
                        batches += 1;
                        if one_heap && batches.is_multiple_of(zoo_select::allocator::RELEASE_EVERY)
                        {
                            zoo_select::allocator::release_freed_memory();
                        }
                    }
                    Message::End => break,
                    Message::Failed(e) => anyhow::bail!("decoding failed: {e}"),
                }
            }
            Ok(images)
        })?;
        let rate = images as f64 / start.elapsed().as_secs_f64();
        let per_worker = *one.get_or_insert(rate / w as f64);
        let efficiency = rate / (per_worker * w as f64);
        eprintln!("{w} worker(s), batch {batch}: {rate:.0} images/s, efficiency {efficiency:.2}");
        println!(
            "{}",
            serde_json::json!({"workers": w, "batch": batch, "images": images,
                "images_per_s": rate, "efficiency": efficiency,
                "allocator": if one_heap { "one heap" } else { "glibc arenas" }})
        );
    }
    Ok(())
}
