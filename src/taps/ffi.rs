//! Raw declarations of the shim's C interface (taps.h). Only `taps/mod.rs` and
//! `taps/module.rs` touch them.

use std::os::raw::{c_char, c_int, c_void};

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
pub const ZS_DECLINED: c_int = 11;

/// A module held by the shim (module.cpp).
#[repr(C)]
pub struct ZsModule {
    _private: [u8; 0],
}

extern "C" {
    pub fn zs_taps_rewrite(
        model_path: *const c_char,
        names: *const *const c_char,
        n_names: usize,
        module_out: *mut ZsBuf,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_taps_prepare(
        model_path: *const c_char,
        names: *const *const c_char,
        n_names: usize,
        plain: *mut *mut ZsModule,
        folded: *mut *mut ZsModule,
        listing: *mut ZsBuf,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_taps_layers(model_path: *const c_char, out: *mut ZsBuf, err: *mut ZsError) -> c_int;
    pub fn zs_set_graph_executor_optimize(on: c_int);
    pub fn zs_buf_free(buf: *mut ZsBuf);
    pub fn zs_module_load(
        data: *const c_char,
        len: usize,
        device: c_int,
        out: *mut *mut ZsModule,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_module_to(
        module: *mut ZsModule,
        device: c_int,
        scalar_type: c_int,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_module_save(module: *const ZsModule, out: *mut ZsBuf, err: *mut ZsError) -> c_int;
    pub fn zs_module_optimized(
        module: *const ZsModule,
        pool_taps: c_int,
        judge: c_int,
        out: *mut *mut ZsModule,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_module_run(
        module: *mut ZsModule,
        input: *mut c_void,
        outputs: *mut *mut c_void,
        capacity: usize,
        n: *mut usize,
        err: *mut ZsError,
    ) -> c_int;
    pub fn zs_module_free(module: *mut ZsModule);
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
