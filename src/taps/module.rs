//! A tapped module as the pass runs it, held by the shim (module.cpp) instead of tch.
//!
//! tch's `CModule` can load and run the rewritten module but not freeze it or apply
//! TorchScript's inference optimisations; and the optimised module (on the CPU, oneDNN
//! convolutions with their weights packed once) has no serialized form, so it must be made in
//! the process that runs it. This type loads the rewritten bytes, converts the precision,
//! optionally optimises, and runs `forward_taps`.

use std::ffi::c_void;
use std::os::raw::c_int;
use std::ptr::NonNull;

use tch::{Device, Kind, Tensor};

use super::ffi;
use crate::error::{Error, Result};

pub struct TapModule {
    ptr: NonNull<ffi::ZsModule>,
}

// SAFETY: a TorchScript module is not tied to the thread that loaded it, and running one
// method from several threads is supported by libtorch (tch's CModule is Send + Sync too).
unsafe impl Send for TapModule {}
unsafe impl Sync for TapModule {}

impl Drop for TapModule {
    fn drop(&mut self) {
        // SAFETY: the pointer came from the shim and is freed once, here.
        unsafe { ffi::zs_module_free(self.ptr.as_ptr()) };
    }
}

/// libtorch's device numbering in the shim: -1 for the CPU, else the CUDA index.
fn device_code(device: Device) -> Option<c_int> {
    match device {
        Device::Cpu => Some(-1),
        Device::Cuda(i) => c_int::try_from(i).ok(),
        _ => None,
    }
}

/// c10::ScalarType's numbers for the floating-point kinds a module runs in.
fn scalar_type(kind: Kind) -> Option<c_int> {
    match kind {
        Kind::Half => Some(5),
        Kind::Float => Some(6),
        Kind::BFloat16 => Some(15),
        _ => None,
    }
}

/// libtorch's message in one line: the interpreter's error line where a TorchScript op failed
/// (its first line only says that one did), else the first line.
fn failed(model: &str, context: &'static str, err: &mut ffi::ZsError) -> Error {
    let detail = err.detail.take_string();
    let lines: Vec<&str> = detail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = lines
        .iter()
        .rev()
        .find(|l| {
            l.split_once("Error: ")
                .is_some_and(|(kind, _)| !kind.contains(' '))
        })
        .or(lines.first())
        .copied()
        .unwrap_or("unknown libtorch error");
    Error::Torch {
        model: model.to_owned(),
        context,
        message: message.to_owned(),
    }
}

fn unsupported(model: &str, context: &'static str, what: String) -> Error {
    Error::Torch {
        model: model.to_owned(),
        context,
        message: what,
    }
}

impl TapModule {
    /// Loads bytes made by `rewrite` onto `device`, in eval mode. `model` names it in errors.
    pub fn load(model: &str, bytes: &[u8], device: Device) -> Result<TapModule> {
        const CONTEXT: &str = "loading the rewritten module";
        let code = device_code(device)
            .ok_or_else(|| unsupported(model, CONTEXT, format!("no support for {device:?}")))?;
        let mut out = std::ptr::null_mut();
        let mut err = ffi::ZsError::empty();
        // SAFETY: `bytes` is valid for the call and copied by the shim.
        let status = unsafe {
            ffi::zs_module_load(bytes.as_ptr().cast(), bytes.len(), code, &mut out, &mut err)
        };
        Self::held(model, CONTEXT, status, out, &mut err)
    }

    fn held(
        model: &str,
        context: &'static str,
        status: c_int,
        out: *mut ffi::ZsModule,
        err: &mut ffi::ZsError,
    ) -> Result<TapModule> {
        // SAFETY: `out` is null or a module the shim just made for us alone.
        match unsafe { Self::from_raw(out) } {
            Some(module) if status == ffi::ZS_OK => Ok(module),
            _ => Err(failed(model, context, err)),
        }
    }

    /// Takes ownership of a module the shim made.
    ///
    /// # Safety
    /// `ptr` is null or a module from the shim that nothing else owns.
    pub(super) unsafe fn from_raw(ptr: *mut ffi::ZsModule) -> Option<TapModule> {
        NonNull::new(ptr).map(|ptr| TapModule { ptr })
    }

    /// The module serialized, as `load` reads it (not possible once `optimized`).
    pub fn save(&self, model: &str) -> Result<Vec<u8>> {
        let mut out = ffi::ZsBuf::empty();
        let mut err = ffi::ZsError::empty();
        // SAFETY: the module is alive; the shim writes a malloc'd buffer that `out` frees.
        let status = unsafe { ffi::zs_module_save(self.ptr.as_ptr(), &mut out, &mut err) };
        if status != ffi::ZS_OK {
            return Err(failed(model, "serializing the rewritten module", &mut err));
        }
        Ok(out.take())
    }

    /// Moves the parameters and buffers to `device`, and to `kind` when given.
    pub fn to(&mut self, model: &str, device: Device, kind: Option<Kind>) -> Result<()> {
        const CONTEXT: &str = "converting the parameters";
        let k = match kind {
            None => Some(-1),
            Some(kind) => scalar_type(kind),
        };
        let (Some(d), Some(k)) = (device_code(device), k) else {
            return Err(unsupported(
                model,
                CONTEXT,
                format!("no support for {kind:?} on {device:?}"),
            ));
        };
        let mut err = ffi::ZsError::empty();
        // SAFETY: the module is alive and owned by self.
        let status = unsafe { ffi::zs_module_to(self.ptr.as_ptr(), d, k, &mut err) };
        if status != ffi::ZS_OK {
            return Err(failed(model, CONTEXT, &mut err));
        }
        Ok(())
    }

    /// A frozen copy with TorchScript's inference optimisations applied, or, with `judge`, why
    /// not (the graph suggests it would run slower; see module.cpp). With `pool_taps`, taps that
    /// leave oneDNN's layout come out averaged over their last two dimensions, (N, C, 1, 1),
    /// which `pool` with `Layout::Nchw` turns into the same vectors.
    pub fn optimized(
        &self,
        model: &str,
        pool_taps: bool,
        judge: bool,
    ) -> Result<std::result::Result<TapModule, String>> {
        let mut out = std::ptr::null_mut();
        let mut err = ffi::ZsError::empty();
        // SAFETY: the module is alive; the shim copies it and returns a new one.
        let status = unsafe {
            ffi::zs_module_optimized(
                self.ptr.as_ptr(),
                c_int::from(pool_taps),
                c_int::from(judge),
                &mut out,
                &mut err,
            )
        };
        if status == ffi::ZS_DECLINED {
            return Ok(Err(err.detail.take_string()));
        }
        Self::held(model, "optimising for inference", status, out, &mut err).map(Ok)
    }

    /// Runs `forward_taps` on `x` without gradients: the model output (if a tensor) and the
    /// `taps` tapped tensors, in order.
    pub fn run(
        &self,
        model: &str,
        x: &Tensor,
        taps: usize,
    ) -> Result<(Option<Tensor>, Vec<Tensor>)> {
        const CONTEXT: &str = "running forward_taps";
        let mut outputs: Vec<*mut c_void> = vec![std::ptr::null_mut(); taps + 1];
        let mut n = 0usize;
        let mut err = ffi::ZsError::empty();
        // SAFETY: `x` outlives the call; `outputs` has room for `taps + 1` pointers, and the
        // shim writes at most that many (it fails otherwise) and reports how many in `n`.
        let status = unsafe {
            ffi::zs_module_run(
                self.ptr.as_ptr(),
                x.as_ptr() as *mut c_void,
                outputs.as_mut_ptr(),
                outputs.len(),
                &mut n,
                &mut err,
            )
        };
        // Take ownership of every tensor the shim made before any early return.
        let values: Vec<Option<Tensor>> = outputs[..n.min(outputs.len())]
            .iter()
            .map(|&p| {
                // SAFETY: each non-null pointer is a new at::Tensor the shim hands over.
                (!p.is_null()).then(|| unsafe { Tensor::from_ptr(p.cast()) })
            })
            .collect();
        if status != ffi::ZS_OK {
            return Err(failed(model, CONTEXT, &mut err));
        }
        if values.len() != taps + 1 {
            return Err(unsupported(
                model,
                CONTEXT,
                "the rewritten forward returned the wrong number of values".into(),
            ));
        }
        let mut values = values.into_iter();
        let output = values.next().flatten();
        let tapped = values
            .map(|v| v.ok_or_else(|| unsupported(model, CONTEXT, "a tap is not a tensor".into())))
            .collect::<Result<Vec<_>>>()?;
        Ok((output, tapped))
    }
}
