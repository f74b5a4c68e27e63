//! What several integration tests need alike: running the built binary as a user would (no
//! LD_LIBRARY_PATH, which cargo test points at libtorch) and reading the committed npz fixtures.
#![allow(dead_code)] // each test crate uses its own part

use std::path::Path;
use std::process::{Command, Output};

use tch::Tensor;

/// Runs zoo-select with `args`, as a user would.
pub fn zoo_select(args: &[&str]) -> Output {
    command().args(args).output().expect("zoo-select runs")
}

/// The binary as a user runs it, except that its default cache is each output folder's
/// `stats/` (no `$HOME` or `$XDG_CACHE_HOME`): tests must not share one user cache, nor fill
/// the machine's. The per-user default has its own test.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zoo-select"));
    c.env_remove("RUST_LOG")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME");
    c
}

/// Runs zoo-select with `args`, which must succeed, and returns its stdout.
pub fn zoo_select_stdout(args: &[&str]) -> String {
    let out = zoo_select(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One npz fixture file: its stem and its named arrays.
pub struct Npz {
    pub name: String,
    pub arrays: Vec<(String, Tensor)>,
}

impl Npz {
    pub fn get(&self, key: &str) -> Tensor {
        self.arrays
            .iter()
            .find(|(n, _)| n == key)
            .unwrap_or_else(|| panic!("{}: no array `{key}`", self.name))
            .1
            .shallow_clone()
    }
}

/// Every npz file in `dir`, sorted by name; at least `min` of them, or the fixtures are missing.
pub fn npz_files(dir: &Path, min: usize) -> Vec<Npz> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(
        paths.len() >= min,
        "fixtures missing in {}: run tests/oracles/make_fixtures.py",
        dir.display()
    );
    paths
        .into_iter()
        .map(|p| Npz {
            name: p.file_stem().unwrap().to_string_lossy().into_owned(),
            arrays: Tensor::read_npz(&p).unwrap(),
        })
        .collect()
}
