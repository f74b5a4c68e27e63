//! How the process's C allocator treats the large, short-lived buffers of a forward pass.
//!
//! libtorch takes every activation from glibc's malloc. By default glibc serves blocks above a
//! few megabytes with a fresh mmap and returns them with munmap, so every batch faults its
//! activations' pages in again and the kernel zeroes them: a large share of a pass's CPU time
//! went to page faults and page clearing. Serving them from the heap and never trimming it lets
//! each batch reuse the previous batch's memory: the pass runs markedly faster for a little more
//! peak memory, which stays flat with the number of images (docs/performance.md).
//!
//! Those settings hold for the main arena only: glibc gives other threads arenas of their own,
//! made of 64 MB mmapped heaps, where a batch's large activations are mapped and unmapped again.
//! A device thread off the main thread ran a pass slower for it, so the process keeps one arena:
//! the device loop of a single-device run stays on the main thread, and the threads of a run on
//! several devices share its heap (docs/performance.md).
//!
//! A heap that is never trimmed keeps its fragments too. oneDNN's packed convolutions (see
//! taps/module.cpp) allocate in a pattern that left ever more of it unusable: a ResNet-18 pass
//! over 1,200 photos grew from 0.9 GB to 1.8 GB of RSS while its live heap stayed under 0.45 GB
//! (heaptrack). So the pass hands the heap's free pages back every few batches
//! (`release_freed_memory`): RSS stayed at 0.84-0.89 GB, with the run's time unchanged at one
//! release per 8 batches (every batch cost 15 %: the pages fault in again).

/// Batches between two `release_freed_memory` calls in a pass.
pub const RELEASE_EVERY: usize = 8;

/// Serve large blocks from the heap and keep freed memory for reuse (glibc only; elsewhere a
/// no-op). The binary calls it once, before any heavy allocation; a program embedding the
/// library calls it before a pass, before the pass's threads start, so that they share the
/// main arena.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, under glibc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// glibc's defaults again, and the freed memory handed back: for a program that embeds the
/// library in a process doing other work (the Python package) and asks for
/// `reuse_freed_memory` only while a pass runs.
pub fn restore_defaults() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt and malloc_trim only set allocator parameters and release free memory.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 65_536);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 0);
        libc::malloc_trim(0);
    }
}

/// Returns the free pages of the heap to the system (glibc's `malloc_trim`; elsewhere a no-op),
/// keeping what is in use; see above for why and how often.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
