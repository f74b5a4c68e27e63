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
  ZS_SIGNATURE = 10   // forward needs more than the image batch; detail: why
};

// Writes a serialized copy of the module with a method `forward_taps(x)` that returns
// (output, tap_1, ..., tap_n) for the n names, in the order given; with fold_batchnorm, the
// Conv2d-BatchNorm2d pairs no tap separates are folded into single convolutions.
int zs_taps_rewrite(const char* model_path, const char* const* names, size_t n_names,
                    int fold_batchnorm, zs_buf* module_out, zs_error* err);

// Every submodule, one line each: "name\tcalls\tposition\tparams\treason it cannot be tapped
// (empty if it can)". position: where its last call finishes in the forward graph's program order
// (-1 if forward never calls it outside a loop or branch); params: its own parameters' elements,
// not its children's.
int zs_taps_layers(const char* model_path, zs_buf* out, zs_error* err);

// Whether TorchScript's graph executor optimises graphs after profiling runs. Off for inference:
// the optimised graph runs no faster on these models, and the profiling runs (repeated for
// every new batch shape) cost several slow batches per model.
void zs_set_graph_executor_optimize(int on);

void zs_buf_free(zs_buf* buf);

#ifdef __cplusplus
}
#endif
