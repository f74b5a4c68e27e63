// What shim.cpp, which makes modules, and module.cpp, which runs them, share: the C++ side of
// the opaque zs_module handle (taps.h), and filling a zs_buf.
#pragma once
#include "taps.h"

#include <torch/script.h>

#include <cstdlib>
#include <cstring>
#include <string>

struct zs_module {
  torch::jit::Module module;
};

// Copies `s` into a malloc'd, NUL-terminated buffer the caller frees with zs_buf_free; leaves
// it empty if memory runs out.
inline void zs_fill(zs_buf* out, const std::string& s) {
  if (out == nullptr) return;
  out->len = s.size();
  out->data = static_cast<char*>(std::malloc(s.size() + 1));
  if (out->data == nullptr) {
    out->len = 0;
    return;
  }
  std::memcpy(out->data, s.data(), s.size());
  out->data[s.size()] = '\0';
}
