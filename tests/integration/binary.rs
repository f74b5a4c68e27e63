//! The built binary finds libtorch by itself and keeps CUDA linked: tch's build puts an rpath
//! only on its own objects, and the linker's --as-needed drops libtorch_cuda (no symbol refers to
//! it), which would make CUDA silently unavailable on a GPU machine. build.rs fixes both.

use crate::common;

use std::process::Command;

#[test]
fn binary_lists_libtorch_cuda_and_an_rpath() {
    let out = Command::new("readelf")
        .args(["-d", env!("CARGO_BIN_EXE_zoo-select")])
        .output()
        .expect("readelf (binutils) is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = text.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed.iter().any(|l| l.contains("[libtorch_cuda.so]")),
        "libtorch_cuda.so not NEEDED:\n{text}"
    );
    assert!(
        needed.iter().any(|l| l.contains("[libtorch_cpu.so]")),
        "{text}"
    );
    let rpath = text
        .lines()
        .find(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        .expect("an rpath");
    assert!(
        rpath.contains("torch/lib") || std::env::var("LIBTORCH").is_ok_and(|l| rpath.contains(&l)),
        "{rpath}"
    );
}

#[test]
fn binary_runs_without_ld_library_path() {
    assert_eq!(
        common::zoo_select_stdout(&["--version"]).trim(),
        format!("zoo-select {}", env!("CARGO_PKG_VERSION"))
    );
}
