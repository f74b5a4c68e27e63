//! Builds the taps shim (src/taps/shim.cpp, module.cpp) and the device shim (src/device/shim.cpp) against
//! the libtorch that torch-sys found, and makes the binaries find that libtorch at run time with
//! CUDA kept linked.
//!
//! torch-sys exports its libtorch lib folder as DEP_TCH_LIBTORCH_LIB; the headers sit beside it.
//! The shim must use the same C++ ABI flag as torch-sys (LIBTORCH_CXX11_ABI, default 1, which is
//! right for PyPI's torch 2.11). tch's own rpath covers only its C++ objects, so without the
//! rpath below the binary needs LD_LIBRARY_PATH; and the linker's default --as-needed drops
//! libtorch_cuda (nothing references it by symbol), which silently disables CUDA.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/taps/shim.cpp");
    println!("cargo:rerun-if-changed=src/taps/module.cpp");
    println!("cargo:rerun-if-changed=src/taps/taps.h");
    println!("cargo:rerun-if-changed=src/taps/module.h");
    println!("cargo:rerun-if-changed=src/device/shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");

    let lib = PathBuf::from(env::var("DEP_TCH_LIBTORCH_LIB").expect(
        "torch-sys did not export DEP_TCH_LIBTORCH_LIB; is torch-sys a direct dependency?",
    ));
    let root = lib
        .parent()
        .expect("libtorch lib folder has a parent")
        .to_path_buf();
    let include = root.join("include");
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());

    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include("src/taps")
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .file("src/taps/shim.cpp")
        .file("src/taps/module.cpp")
        .file("src/device/shim.cpp")
        .compile("zoo_select_taps");

    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
