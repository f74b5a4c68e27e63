//! Forward hooks for TorchScript models: capture the outputs of any submodules, by their dotted
//! `named_modules()` names, in the same forward pass as the model's own output.
//!
//! tch can run a TorchScript module but cannot reach its submodules, and libtorch has no hook
//! API for a loaded module. The C++ shim beside this file (shim.cpp, built by build.rs) rewrites
//! the module's graph instead: it adds a method `forward_taps` that returns
//! `(output, tap_1, ..., tap_n)`, each tap cloned where it is made, so in-place operations later
//! in the network cannot change it. The values equal what a PyTorch forward hook sees.
//!
//! A submodule called several times (a ReLU shared inside a ResNet block) is named `name` for
//! its LAST call, which is what the usual hook `features[name] = output` keeps, and `name#k` for
//! its k-th call (1-based) in program order.

mod ffi;
mod module;
mod pool;

use std::ffi::CString;
use std::path::Path;

pub use module::TapModule;
pub use pool::pool;

use crate::error::{Error, Result};

/// One submodule of a model, as the `layers` listing reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerInfo {
    pub name: String,
    /// Unconditional calls of its forward in one pass of the model's forward.
    pub calls: usize,
    /// Why it cannot be tapped, if it cannot.
    pub untappable: Option<String>,
    /// Where its last call finishes in the forward's program order (a parent after its
    /// children); None when forward never calls it outside a loop or branch.
    pub position: Option<usize>,
    /// Elements of its own parameters, not counting its submodules'.
    pub params: u64,
}

/// A copy of the model at `path`, serialized, with a method `forward_taps` returning the model
/// output followed by the outputs of `layers` in the order given. `model` names it in errors.
pub fn rewrite(model: &str, path: &Path, layers: &[String]) -> Result<Vec<u8>> {
    let c_path = c_path(model, path)?;
    let c_names = c_names(model, layers)?;
    let ptrs: Vec<_> = c_names.iter().map(|c| c.as_ptr()).collect();
    let mut out = ffi::ZsBuf::empty();
    let mut err = ffi::ZsError::empty();
    // SAFETY: every pointer is valid for the call; the shim copies what it keeps.
    let code = unsafe {
        ffi::zs_taps_rewrite(
            c_path.as_ptr(),
            ptrs.as_ptr(),
            ptrs.len(),
            &mut out,
            &mut err,
        )
    };
    if code != ffi::ZS_OK {
        return Err(shim_error(model, path, code, &mut err));
    }
    Ok(out.take())
}

/// What `prepare` makes of a model file.
pub struct Rewritten {
    /// The rewritten module, on the CPU in eval mode.
    pub plain: TapModule,
    /// A copy whose Conv2d-BatchNorm2d pairs that no tap separates are folded into one
    /// convolution (TorchScript's FoldConvBatchNorm); None where folding fails. The taps keep
    /// their meaning; folded values differ from the plain module's by float rounding (about 1e-6
    /// relative), and MobileNet- or EfficientNet-style networks run much faster on the CPU
    /// (docs/performance.md).
    pub folded: Option<TapModule>,
    /// As `layers` lists the file.
    pub layers: Vec<LayerInfo>,
}

/// As `rewrite`, for inference, from one read of the file and without a round trip through
/// bytes: two rewrites, two reloads and a separate listing took more than twice as long as
/// this, with each file hashed once.
pub fn prepare(model: &str, path: &Path, layers: &[String]) -> Result<Rewritten> {
    let c_path = c_path(model, path)?;
    let c_names = c_names(model, layers)?;
    let ptrs: Vec<_> = c_names.iter().map(|c| c.as_ptr()).collect();
    let mut plain = std::ptr::null_mut();
    let mut folded = std::ptr::null_mut();
    let mut listed = ffi::ZsBuf::empty();
    let mut err = ffi::ZsError::empty();
    // SAFETY: as in `rewrite`; the shim hands over the modules it writes.
    let code = unsafe {
        ffi::zs_taps_prepare(
            c_path.as_ptr(),
            ptrs.as_ptr(),
            ptrs.len(),
            &mut plain,
            &mut folded,
            &mut listed,
            &mut err,
        )
    };
    // SAFETY: each non-null pointer is a module the shim made for us alone.
    let folded = unsafe { TapModule::from_raw(folded) };
    let plain = unsafe { TapModule::from_raw(plain) };
    match plain {
        Some(plain) if code == ffi::ZS_OK => Ok(Rewritten {
            plain,
            folded,
            layers: listing(&listed.take_string()),
        }),
        _ => Err(shim_error(model, path, code, &mut err)),
    }
}

fn c_names(model: &str, layers: &[String]) -> Result<Vec<CString>> {
    layers
        .iter()
        .map(|l| {
            CString::new(l.as_str()).map_err(|_| Error::LayerNotTappable {
                model: model.to_owned(),
                layer: l.clone(),
                reason: "the name contains a NUL byte".into(),
            })
        })
        .collect()
}

/// Every submodule of the model at `path` in `named_modules()` order, with whether and how often
/// it can be tapped.
pub fn layers(path: &Path) -> Result<Vec<LayerInfo>> {
    let model = model_label(path);
    let c_path = c_path(&model, path)?;
    let mut out = ffi::ZsBuf::empty();
    let mut err = ffi::ZsError::empty();
    // SAFETY: as in `rewrite`.
    let code = unsafe { ffi::zs_taps_layers(c_path.as_ptr(), &mut out, &mut err) };
    if code != ffi::ZS_OK {
        return Err(shim_error(&model, path, code, &mut err));
    }
    Ok(listing(&out.take_string()))
}

/// The shim's layer listing, one submodule per line.
fn listing(text: &str) -> Vec<LayerInfo> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(5, '\t');
            let name = parts.next()?.to_owned();
            let calls = parts.next()?.parse().ok()?;
            let position: i64 = parts.next()?.parse().ok()?;
            let params = parts.next()?.parse().ok()?;
            let why = parts.next().unwrap_or("");
            Some(LayerInfo {
                name,
                calls,
                untappable: (!why.is_empty()).then(|| why.to_owned()),
                position: usize::try_from(position).ok(),
                params,
            })
        })
        .collect()
}

/// Runs TorchScript graphs as they are, without the executor's profiling runs and
/// re-optimisation: on these models the optimised graph is no faster, but profiling costs two slow batches
/// per model and again for every new batch shape (the last, partial batch). For the calling
/// thread only: libtorch keeps the setting per thread, so every thread that runs a model calls
/// this first.
pub fn run_graphs_unoptimised() {
    // SAFETY: sets a process-wide libtorch flag; no pointers involved.
    unsafe { ffi::zs_set_graph_executor_optimize(0) };
}

fn model_label(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn c_path(model: &str, path: &Path) -> Result<CString> {
    // A missing or unreadable file gets the OS's reason rather than libtorch's.
    if let Err(e) = std::fs::File::open(path) {
        return Err(Error::ModelLoad {
            model: model.to_owned(),
            path: path.to_owned(),
            reason: e.to_string(),
        });
    }
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::ModelLoad {
        model: model.to_owned(),
        path: path.to_owned(),
        reason: "the path contains a NUL byte".into(),
    })
}

fn shim_error(model: &str, path: &Path, code: i32, err: &mut ffi::ZsError) -> Error {
    let layer = err.layer.take_string();
    let detail = err.detail.take_string();
    let model = model.to_owned();
    let not_tappable = |reason: String| Error::LayerNotTappable {
        model: model.clone(),
        layer: layer.clone(),
        reason,
    };
    match code {
        ffi::ZS_LOAD => Error::ModelLoad {
            model: model.clone(),
            path: path.to_owned(),
            reason: not_torchscript(&detail),
        },
        ffi::ZS_UNKNOWN => {
            let known: Vec<&str> = detail.lines().collect();
            Error::LayerNotFound {
                nearby: nearby(&layer, &known),
                model,
                layer,
                path: path.to_owned(),
            }
        }
        ffi::ZS_FROZEN => Error::FrozenModel {
            model,
            path: path.to_owned(),
        },
        ffi::ZS_NESTED => not_tappable(format!(
            "it is called inside a scripted {detail}, so it has no single output per forward pass; \
             tap the module that contains the {detail}, or export the model with torch.jit.trace"
        )),
        ffi::ZS_NOT_CALLED => not_tappable("forward never calls it".into()),
        ffi::ZS_OCCURRENCE => not_tappable(format!("forward calls it only {detail} time(s)")),
        ffi::ZS_NOT_TENSOR => not_tappable(format!("its output is {detail}, not a tensor")),
        ffi::ZS_BAD_NAME => not_tappable(detail),
        ffi::ZS_SIGNATURE => Error::ModelLoad {
            model: model.clone(),
            path: path.to_owned(),
            reason: detail,
        },
        _ => Error::Torch {
            model,
            context: "rewriting the graph for taps",
            message: first_line(&detail),
        },
    }
}

/// Why libtorch could not read a model file, and how to make one it can. A torch.save'd
/// checkpoint is the usual case: a zip like TorchScript's, without its code.
fn not_torchscript(detail: &str) -> String {
    let detail = first_line(detail);
    // libtorch's own advice after this (a corrupted checkpoint) is rarely the cause here.
    let detail = detail
        .split(". This is an internal miniz error")
        .next()
        .unwrap_or(&detail);
    let export = "export it with scripts/export_zoo.py (`--module PKG.MOD:FACTORY --weights FILE` \
                  for your own network) or torch.jit.script(model).save(path)";
    if detail.contains("constants.pkl") {
        format!("saved with torch.save (a state dict or pickled module), not TorchScript ({detail}); {export}")
    } else {
        format!("not a TorchScript file libtorch can read ({detail}); {export}")
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_owned()
}

/// The known names closest to a mistyped one, best first.
fn nearby(wanted: &str, known: &[&str]) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = known
        .iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(wanted, k), *k))
        .filter(|(s, k)| *s >= 0.5 || k.starts_with(&format!("{wanted}.")))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(5)
        .map(|(_, k)| k.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::nearby;

    #[test]
    fn nearby_names_rank_by_similarity() {
        let known = ["layer1", "layer2", "layer3", "layer4", "fc", "conv1"];
        assert_eq!(
            nearby("layer5", &known),
            ["layer1", "layer2", "layer3", "layer4"]
        );
        assert_eq!(nearby("fcc", &known), ["fc"]);
        assert!(nearby("zzzzzzzz", &known).is_empty());
        assert_eq!(
            nearby("features", &["features.0", "features.1", "head"]),
            ["features.0", "features.1"]
        );
    }
}
