//! The integration tests, as one binary: each file is a module (run one with
//! `cargo test --test integration cli::`). One binary links libtorch once, where ten did ten
//! times. The allocator test (tests/allocations.rs) stays apart: its `#[global_allocator]`
//! would count every other test's allocations.

mod common;

mod binary;
mod cli;
mod exported_models;
mod manifests;
mod metrics;
mod preprocess;
mod stats_files;
mod taps;
mod transrate;
