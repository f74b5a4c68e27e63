//! What decoding and fitting cost per image, on one thread: the part of the pass that runs on
//! the CPU workers. Reading, decoding the whole image and fitting it are timed apart; then the
//! pass's own path (`load_into`: a JPEG decoded only where the crops read, buffers kept), as a
//! whole. Not a test: a measurement.
//!
//!     . scripts/env.sh && cargo run --release --example decode_cost -- CONFIG

use std::path::PathBuf;
use std::time::Instant;

use zoo_select::dataset::{self, Geometry};
use zoo_select::plan::{Overrides, Plan};

fn main() -> anyhow::Result<()> {
    let config = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: decode_cost CONFIG"))?,
    );
    let plan = Plan::new(&config, Overrides::default())?;
    let folder = dataset::scan(&plan.config.dataset.root, plan.config.dataset.max_per_class)?;
    let geometries = Geometry::distinct(plan.models.iter().map(|m| &m.input));
    let (mut read, mut decode, mut fit) = (0.0, 0.0, 0.0);
    for item in &folder.items {
        let t = Instant::now();
        let bytes = std::fs::read(&item.path)?;
        read += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let image = dataset::decode(&bytes).map_err(anyhow::Error::msg)?;
        decode += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for g in &geometries {
            std::hint::black_box(dataset::fit(&image, *g));
        }
        fit += t.elapsed().as_secs_f64();
    }
    let mut out: Vec<Vec<u8>> = geometries.iter().map(|g| vec![0u8; g.bytes()]).collect();
    let t = Instant::now();
    for item in &folder.items {
        let mut slots: Vec<&mut [u8]> = out.iter_mut().map(|v| &mut v[..]).collect();
        dataset::load_into(&item.path, &geometries, &mut slots).map_err(anyhow::Error::msg)?;
    }
    let pass = t.elapsed().as_secs_f64();
    let n = folder.items.len() as f64;
    println!(
        "{} images, {} geometries: read {:.2} ms, decode {:.2} ms, fit {:.2} ms per image; \
         as the pass does it {:.2} ms (one thread)",
        n,
        geometries.len(),
        1e3 * read / n,
        1e3 * decode / n,
        1e3 * fit / n,
        1e3 * pass / n
    );
    Ok(())
}
