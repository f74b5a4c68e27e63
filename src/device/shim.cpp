// What tch lacks for feeding a GPU without stalls: fences (a point in a CUDA device's work queue
// that the host can wait for; see fence.rs), pinning host memory without the device argument
// that libtorch 2.11 deprecates with a warning on every call, and allocating pinned memory
// without copying into it (see transfer.rs). c10::Event
// reaches CUDA through libtorch's device-guard registry, so this file needs no CUDA headers and
// builds against a CPU-only libtorch too (where both fail with libtorch's message).

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cstring>
#include <exception>

namespace {
void set_error(char* err, size_t len, const char* message) {
  if (err == nullptr || len == 0) return;
  std::strncpy(err, message, len - 1);
  err[len - 1] = '\0';
}
}  // namespace

extern "C" {

void* zs_fence_record(int device_index, char* err, size_t err_len) {
  try {
    auto* event = new c10::Event(c10::DeviceType::CUDA);
    try {
      c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
      event->record(guard.getStream(c10::Device(c10::DeviceType::CUDA, device_index)));
    } catch (...) {
      delete event;
      throw;
    }
    return event;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error recording a CUDA event");
  }
  return nullptr;
}

int zs_fence_wait(void* fence, char* err, size_t err_len) {
  try {
    static_cast<c10::Event*>(fence)->synchronize();
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error waiting for a CUDA event");
  }
  return 1;
}

void zs_fence_free(void* fence) { delete static_cast<c10::Event*>(fence); }

// A pinned copy of a host tensor (tch's tensor handles are at::Tensor pointers), or null.
void* zs_pin_memory(void* tensor, char* err, size_t err_len) {
  try {
    return new at::Tensor(static_cast<at::Tensor*>(tensor)->pin_memory());
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error pinning host memory");
  }
  return nullptr;
}

// An uninitialised u8 tensor of `sizes` in pinned host memory (libtorch's caching host
// allocator), or null.
void* zs_empty_pinned(const int64_t* sizes, size_t ndim, char* err, size_t err_len) {
  try {
    auto options = at::TensorOptions().dtype(at::kByte).pinned_memory(true);
    return new at::Tensor(at::empty(c10::IntArrayRef(sizes, ndim), options));
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error allocating pinned host memory");
  }
  return nullptr;
}
}
