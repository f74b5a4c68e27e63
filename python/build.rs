//! The extension finds libtorch where pip put torch, next to the package (`site-packages/torch/
//! lib`), even before `import torch` has loaded it; zoo_select imports torch first anyway, so
//! one libtorch is in the process.

fn main() {
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
}
