//! The stop request: set by the binary's signal handlers (or an embedding program's), read by
//! every device part between batches.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// Set by the binary's SIGINT/SIGTERM handler: the pass checkpoints and stops after the batch
/// in flight.
pub fn stop_flag() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}
