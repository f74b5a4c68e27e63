// C interface of the taps shim (shim.cpp), mirrored by src/taps/ffi.rs.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bytes owned by the shim; release with zs_buf_free.
typedef struct {
  char* data;
  size_t len;
} zs_buf;

// What went wrong, for the status codes below: the layer it concerns and a detail whose meaning
// depends on the code.
typedef struct {
  zs_buf layer;
  zs_buf detail;
} zs_error;

enum {
  ZS_OK = 0,
  ZS_LOAD = 1,        // detail: libtorch's message
  ZS_UNKNOWN = 2,     // detail: every submodule name, one per line
  ZS_FROZEN = 3,      // the module has no submodule calls left
  ZS_NESTED = 4,      // detail: "loop" or "branch"
  ZS_NOT_CALLED = 5,  // a submodule that forward never calls
  ZS_OCCURRENCE = 6,  // NAME#K beyond the number of calls; detail: that number
  ZS_NOT_TENSOR = 7,  // detail: the output's type
  ZS_BAD_NAME = 8,    // detail: what a name should look like
  ZS_INTERNAL = 9,    // detail: the exception's message
  ZS_SIGNATURE = 10,  // forward needs more than the image batch; detail: why
  ZS_DECLINED = 11    // zs_module_optimized expects no gain; detail: why
};

// A module with a method run by zs_module_run (see below).
typedef struct zs_module zs_module;

// Writes a serialized copy of the module with a method `forward_taps(x)` that returns
// (output, tap_1, ..., tap_n) for the n names, in the order given.
int zs_taps_rewrite(const char* model_path, const char* const* names, size_t n_names,
                    zs_buf* module_out, zs_error* err);

// As zs_taps_rewrite, without serializing: the rewritten module on the CPU in eval mode, a
// copy whose Conv2d-BatchNorm2d pairs that no tap separates are folded into single
// convolutions (null where folding fails), and the zs_taps_layers listing. One read of the
// file for all three.
int zs_taps_prepare(const char* model_path, const char* const* names, size_t n_names,
                    zs_module** plain, zs_module** folded, zs_buf* listing, zs_error* err);

// Every submodule, one line each: "name\tcalls\tposition\tparams\treason it cannot be tapped
// (empty if it can)". position: where its last call finishes in the forward graph's program order
// (-1 if forward never calls it outside a loop or branch); params: its own parameters' elements,
// not its children's.
int zs_taps_layers(const char* model_path, zs_buf* out, zs_error* err);

// Whether TorchScript's graph executor optimises graphs after profiling runs, for the calling
// thread (libtorch keeps the setting per thread). Off for inference: the optimised graph runs
// no faster on these models, and the profiling runs (repeated for every new batch shape) cost
// several slow batches per model.
void zs_set_graph_executor_optimize(int on);

void zs_buf_free(zs_buf* buf);

// Modules with a forward_taps method (module.cpp). Each call returns ZS_OK, or ZS_INTERNAL
// with libtorch's message in err->detail.

// Loads serialized bytes onto a device (-1: the CPU, else that CUDA device), in eval mode.
int zs_module_load(const char* data, size_t len, int device, zs_module** out, zs_error* err);

// Moves the parameters and buffers to a device and, unless scalar_type is -1, a floating-point
// type (a c10::ScalarType).
int zs_module_to(zs_module* m, int device, int scalar_type, zs_error* err);

// The module serialized, as zs_module_load reads it.
int zs_module_save(const zs_module* m, zs_buf* out, zs_error* err);

// A frozen copy of the module, optimised for inference by TorchScript (on the CPU: oneDNN
// convolutions with weights packed once). The copy cannot be serialized. With pool_taps, taps
// that leave oneDNN's layout are averaged over their last two dimensions first (to N x C x 1 x 1).
// With judge: ZS_DECLINED, and no copy, where the graph suggests the copy would run slower.
int zs_module_optimized(const zs_module* m, int pool_taps, int judge, zs_module** out,
                        zs_error* err);

// Runs forward_taps on one tensor (an at::Tensor*, as tch's handles are). Writes its n values
// to outputs as new at::Tensor* (null where a value is not a tensor), n <= capacity.
int zs_module_run(zs_module* m, void* input, void** outputs, size_t capacity, size_t* n,
                  zs_error* err);

void zs_module_free(zs_module* m);

#ifdef __cplusplus
}
#endif
