//! How the pass reports its progress, without the library depending on a terminal: the binary
//! plugs in a progress bar, tests and library users the silent default.

pub trait Progress: Sync {
    /// The pass is about to look at `files` files.
    fn begin(&self, _files: usize) {}
    /// `files` more files were handled (usable or skipped).
    fn advance(&self, _files: usize) {}
    fn finish(&self) {}
}

pub struct Silent;

impl Progress for Silent {}
