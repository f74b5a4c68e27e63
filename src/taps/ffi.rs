//! Raw declarations of the shim's C interface (taps.h). Only `taps/mod.rs` touches them.

use std::os::raw::{c_char, c_int};

#[repr(C)]
pub struct ZsBuf {
    pub data: *mut c_char,
    pub len: usize,
}

#[repr(C)]
pub struct ZsError {
    pub layer: ZsBuf,
    pub detail: ZsBuf,
}

pub const ZS_OK: c_int = 0;
pub const ZS_LOAD: c_int = 1;
pub const ZS_UNKNOWN: c_int = 2;
pub const ZS_FROZEN: c_int = 3;
pub const ZS_NESTED: c_int = 4;
pub const ZS_NOT_CALLED: c_int = 5;
pub const ZS_OCCURRENCE: c_int = 6;
pub const ZS_NOT_TENSOR: c_int = 7;
pub const ZS_BAD_NAME: c_int = 8;
pub const ZS_SIGNATURE: c_int = 10;

extern "C" {
    pub fn zs_taps_rewrite(
        model_path: *const c_char,
        names: *const *const c_char,
        n_names: usize,
        fold_batchnorm: c_int,
        module_out: *mut ZsBuf,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_taps_layers(model_path: *const c_char, out: *mut ZsBuf, err: *mut ZsError) -> c_int;
    pub fn zs_set_graph_executor_optimize(on: c_int);
    pub fn zs_buf_free(buf: *mut ZsBuf);
}

impl ZsBuf {
    pub fn empty() -> Self {
        ZsBuf {
            data: std::ptr::null_mut(),
            len: 0,
        }
    }

    /// Copies the bytes out and frees the shim's allocation.
    pub fn take(&mut self) -> Vec<u8> {
        let bytes = if self.data.is_null() {
            Vec::new()
        } else {
            // SAFETY: the shim wrote `len` bytes at `data` with malloc and nothing else owns them.
            unsafe { std::slice::from_raw_parts(self.data as *const u8, self.len).to_vec() }
        };
        // SAFETY: zs_buf_free accepts a null or shim-allocated buffer and nulls it.
        unsafe { zs_buf_free(self) };
        bytes
    }

    pub fn take_string(&mut self) -> String {
        String::from_utf8_lossy(&self.take()).into_owned()
    }
}

impl Drop for ZsBuf {
    fn drop(&mut self) {
        // SAFETY: as in `take`; freeing twice is prevented because zs_buf_free nulls `data`.
        unsafe { zs_buf_free(self) };
    }
}

impl ZsError {
    pub fn empty() -> Self {
        ZsError {
            layer: ZsBuf::empty(),
            detail: ZsBuf::empty(),
        }
    }
}
