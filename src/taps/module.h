// The C++ side of the opaque zs_module handle (taps.h), shared by shim.cpp, which makes
// modules, and module.cpp, which runs them.
#pragma once
#include <torch/script.h>

struct zs_module {
  torch::jit::Module module;
};
