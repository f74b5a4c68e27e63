//! A fence: a point in a device's queue of work that the host can wait for without waiting for
//! the work queued after it. On a GPU the host queues a batch's copies and kernels and runs on;
//! waiting on the previous batch's fence (not on the whole device) is what lets it prepare the
//! next batch while this one computes. tch has no CUDA events, so the small C++ file beside this
//! one (shim.cpp) makes them with c10::Event. On the CPU work is done when a call returns: no fence.

use std::ffi::{c_char, c_int, c_void, CStr};

use tch::{Device, TchError};

extern "C" {
    fn zs_fence_record(device_index: c_int, err: *mut c_char, err_len: usize) -> *mut c_void;
    fn zs_fence_wait(fence: *mut c_void, err: *mut c_char, err_len: usize) -> c_int;
    fn zs_fence_free(fence: *mut c_void);
}

pub(super) const ERR_LEN: usize = 512;

pub struct Fence(*mut c_void);

impl Fence {
    /// A fence after everything queued on `device` so far; None where the host never runs ahead
    /// of the device (the CPU).
    pub fn record(device: Device) -> Result<Option<Fence>, TchError> {
        let Device::Cuda(index) = device else {
            return Ok(None);
        };
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `err` is valid for ERR_LEN bytes; the shim catches every C++ exception.
        let event = unsafe { zs_fence_record(index as c_int, err.as_mut_ptr(), ERR_LEN) };
        if event.is_null() {
            return Err(TchError::Torch(message(&err)));
        }
        Ok(Some(Fence(event)))
    }

    /// Blocks until the device has finished everything queued before the fence.
    pub fn wait(self) -> Result<(), TchError> {
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: self.0 came from zs_fence_record and is freed only by Drop.
        let code = unsafe { zs_fence_wait(self.0, err.as_mut_ptr(), ERR_LEN) };
        if code != 0 {
            return Err(TchError::Torch(message(&err)));
        }
        Ok(())
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        // SAFETY: self.0 came from zs_fence_record and is not used after this.
        unsafe { zs_fence_free(self.0) }
    }
}

pub(super) fn message(err: &[c_char]) -> String {
    // SAFETY: the shim always NUL-terminates within the buffer (and it starts zeroed).
    unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_needs_no_fence() {
        assert!(Fence::record(Device::Cpu).unwrap().is_none());
    }

    #[test]
    fn cuda_without_a_gpu_is_an_error_not_a_crash() {
        if tch::Cuda::is_available() {
            return;
        }
        let err = Fence::record(Device::Cuda(0)).err().expect("no GPU here");
        assert!(!err.to_string().is_empty());
    }
}
