//! What a decoding thread allocates in Rust per image once its buffers are warm: a few blocks per
//! geometry, not a few per output pixel. A GPU machine's decoding threads share one heap
//! (src/allocator.rs), where every allocation takes its lock: with two vectors per output pixel
//! (about 900 allocations per image for a 224 px crop), two threads decoding small PNGs on one
//! heap ran at 0.70 of their rate with an arena each (docs/performance.md). libjpeg-turbo's own
//! mallocs bypass Rust's allocator and are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use zoo_select::config::Interpolation;
use zoo_select::dataset::{load_into, Geometry};

/// Counts the calling thread's allocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn a_warm_decoding_thread_allocates_a_few_blocks_per_image_and_geometry() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    // Two geometries, as a zoo of ResNets and EfficientNets has: a downscale and an upscale.
    let geometries = [
        Geometry {
            size: 224,
            resize: 256,
            filter: Interpolation::Bilinear,
        },
        Geometry {
            size: 600,
            resize: 600,
            filter: Interpolation::Bicubic,
        },
    ];
    let mut images: Vec<Vec<u8>> = geometries.iter().map(|g| vec![0; g.bytes()]).collect();
    for file in ["jpeg/photo.jpg", "jpeg/progressive.jpg", "resize/photo.png"] {
        let path = fixtures.join(file);
        let mut slots: Vec<&mut [u8]> = images.iter_mut().map(|v| &mut v[..]).collect();
        // The first image warms the thread's buffers.
        load_into(&path, &geometries, &mut slots).unwrap();
        let before = ALLOCATIONS.with(Cell::get);
        load_into(&path, &geometries, &mut slots).unwrap();
        let allocations = ALLOCATIONS.with(Cell::get) - before;
        eprintln!("{file}: {allocations} allocations");
        // Per geometry: the plan's tables, the AVX2 windows, the vertical pass's row; a PNG's
        // decoder and image besides.
        assert!(
            allocations <= 32 * geometries.len(),
            "{file}: {allocations} allocations for one image"
        );
    }
}
