//! Copies between host and device that do not make the host wait. A plain copy from pageable
//! host memory to a GPU waits for every kernel queued before it, so the host could not prepare
//! batch i+1 while batch i computes: the GPU idled between batches. Host memory pinned by libtorch's caching host allocator (which
//! reuses its blocks once the copies that used them are done) lets both directions be queued
//! asynchronously. The decoding threads write a batch's images straight into such memory
//! (`staging`), so the device thread queues its upload without first copying it. On the
//! CPU these are the plain operations, and a batch's images are used where they were written.

use std::ffi::{c_char, c_void};

use tch::{Device, Kind, TchError, Tensor};

use super::fence::{message, ERR_LEN};

extern "C" {
    fn zs_pin_memory(tensor: *mut c_void, err: *mut c_char, err_len: usize) -> *mut c_void;
    fn zs_empty_pinned(
        sizes: *const i64,
        ndim: usize,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
}

/// A copy of host tensor `t` in pinned memory (libtorch's caching host allocator).
fn pinned(t: &Tensor) -> Result<Tensor, TchError> {
    // SAFETY: tch's tensor handles are at::Tensor pointers; the shim only reads it.
    shim_tensor(|err| unsafe { zs_pin_memory(t.as_ptr() as *mut c_void, err, ERR_LEN) })
}

/// The tensor a shim call returns (a new at::Tensor, owned by the Tensor made from it), or the
/// message it wrote to `err` when it returned null; the shims catch every exception.
fn shim_tensor(call: impl FnOnce(*mut c_char) -> *mut c_void) -> Result<Tensor, TchError> {
    let mut err = [0 as c_char; ERR_LEN];
    let out = call(err.as_mut_ptr());
    if out.is_null() {
        return Err(TchError::Torch(message(&err)));
    }
    // SAFETY: `out` is a fresh at::Tensor pointer, not aliased.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

/// `t` (on the host) on `device`, queued without waiting on CUDA.
pub fn upload(t: &Tensor, device: Device) -> Result<Tensor, TchError> {
    match device {
        Device::Cuda(_) => pinned(t)?.f_to_device_(device, t.kind(), true, false),
        _ => t.f_to_device(device),
    }
}

/// Uninitialised u8 host memory of `shape` for the images of a batch bound for `device`, to be
/// written in place by the decoding threads: pinned on CUDA (so `upload_staged` queues its copy
/// without a further copy on the device thread), plain memory on the CPU.
pub fn staging(shape: &[i64], device: Device) -> Result<Tensor, TchError> {
    match device {
        Device::Cuda(_) => {
            // SAFETY: `shape` is valid for its length.
            shim_tensor(|err| unsafe { zs_empty_pinned(shape.as_ptr(), shape.len(), err, ERR_LEN) })
        }
        _ => Tensor::f_empty(shape, (Kind::Uint8, Device::Cpu)),
    }
}

/// A `staging` tensor (or a view of it) on `device`: queued without waiting on CUDA, the same
/// memory on the CPU.
pub fn upload_staged(t: &Tensor, device: Device) -> Result<Tensor, TchError> {
    match device {
        Device::Cuda(_) => t.f_to_device_(device, t.kind(), true, false),
        _ => Ok(t.shallow_clone()),
    }
}

/// Starts copying `t` to host memory. For a CUDA tensor the result lands in pinned memory once
/// the device reaches this point of its queue (wait for a later fence before reading it) and
/// `staged` is true; a CPU tensor is returned contiguous, readable at once.
pub fn start_download(t: &Tensor) -> Result<Download, TchError> {
    let t = t.f_contiguous()?;
    match t.device() {
        Device::Cuda(_) => Ok(Download {
            tensor: t.f_to_device_(Device::Cpu, t.kind(), true, false)?,
            staged: true,
        }),
        _ => Ok(Download {
            tensor: t,
            staged: false,
        }),
    }
}

pub struct Download {
    pub tensor: Tensor,
    /// Whether `tensor` is pinned staging memory that a copy may still be filling.
    pub staged: bool,
}

/// A pageable copy of a host tensor (staging memory is pinned: a scarce resource to hold for the
/// whole pass, and rounded up to powers of two by the caching host allocator).
pub fn to_pageable(t: &Tensor) -> Result<Tensor, TchError> {
    let mut out = Tensor::f_empty(t.size(), (t.kind(), Device::Cpu))?;
    out.f_copy_(t)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_without_a_gpu_is_an_error_not_a_crash() {
        if tch::Cuda::is_available() {
            return;
        }
        let t = Tensor::from_slice(&[1u8, 2, 3]);
        assert!(!pinned(&t).unwrap_err().to_string().is_empty());
    }

    #[test]
    fn cpu_staging_is_uploaded_without_a_copy() {
        let mut t = staging(&[2, 3, 4], Device::Cpu).unwrap();
        assert_eq!((t.size(), t.kind()), (vec![2, 3, 4], Kind::Uint8));
        let _ = t.fill_(7);
        let mut on_device = upload_staged(&t.narrow(0, 0, 1), Device::Cpu).unwrap();
        assert_eq!(on_device.size(), [1, 3, 4]);
        let _ = on_device.fill_(9);
        assert_eq!(t.int64_value(&[0, 2, 3]), 9);
        assert_eq!(t.int64_value(&[1, 0, 0]), 7);
    }

    #[test]
    fn pinned_staging_without_a_gpu_is_an_error_not_a_crash() {
        if tch::Cuda::is_available() {
            return;
        }
        let err = staging(&[2, 3], Device::Cuda(0)).unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn a_cpu_download_is_not_staged_and_pageable_copies_are_equal() {
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0])
            .view([2, 2])
            .transpose(0, 1);
        let d = start_download(&t).unwrap();
        assert!(!d.staged);
        assert!(d.tensor.is_contiguous());
        assert_eq!(d.tensor, t);
        let copy = to_pageable(&d.tensor).unwrap();
        assert_eq!(copy, t);
        assert_eq!(upload(&t, Device::Cpu).unwrap(), t);
    }
}
