//! What several integration tests need alike: running the built binary as a user would (no
//! LD_LIBRARY_PATH, which cargo test points at libtorch) and reading the committed npz fixtures.
#![allow(dead_code)] // each test crate uses its own part

use std::path::{Path, PathBuf};
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

/// `per_class` images of 16 x 16 in each of three classes, made from a seeded generator, plus
/// one file that is not an image with `junk`.
pub fn synthetic_images(dir: &Path, per_class: usize, junk: bool) -> PathBuf {
    let root = dir.join("images");
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 56) as u8
    };
    for (c, class) in ["circle", "square", "stripes"].iter().enumerate() {
        let folder = root.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(16, 16, |x, y| {
                let base = match c {
                    0 => ((x as i32 - 8).pow(2) + (y as i32 - 8).pow(2) < 30) as u8 * 180,
                    1 => ((4..12).contains(&x) && (4..12).contains(&y)) as u8 * 180,
                    _ => (x % 4 < 2) as u8 * 180,
                };
                image::Rgb([base / 2 + next() / 3, base / 3 + next() / 4, next() / 2])
            });
            img.save(folder.join(format!("{i:05}.png"))).unwrap();
        }
    }
    if junk {
        std::fs::write(root.join("square").join("not-an-image.png"), b"text").unwrap();
    }
    root
}
