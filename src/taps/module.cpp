// A rewritten module held here rather than by tch, so that it can be frozen and optimised for
// inference in the process that runs it.
//
// On the CPU, TorchScript's optimize_for_inference turns convolutions into oneDNN ops whose
// weights are packed once instead of at every call: ResNet-18 ran 1.07-1.22x faster on this
// 2-core machine (docs/performance.md, "oneDNN packing"). tch's CModule cannot be frozen, and the
// optimised module cannot be serialized (its packed weights have no pickled form), so it cannot
// travel as bytes either.
// Every entry point catches all exceptions: they must never cross into Rust.

#include "taps.h"
#include "module.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
#include <torch/script.h>
#include <caffe2/serialize/in_memory_adapter.h>

#include <cstring>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char* const METHOD = "forward_taps";

void fail(zs_error* err, const std::string& message) {
  if (err != nullptr) zs_fill(&err->detail, message);
}

template <typename F>
int guarded(zs_error* err, F&& body) {
  try {
    body();
    return ZS_OK;
  } catch (const c10::Error& e) {
    fail(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail(err, e.what());
  } catch (...) {
    fail(err, "unknown C++ exception");
  }
  return ZS_INTERNAL;
}

c10::Device device_of(int device) {
  return device < 0 ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, device);
}

// Sets TorchScript's optimisation flag (kept per thread) for a scope. Freezing inlines calls
// only through optimised graphs, but the pass runs graphs unoptimised (see taps.h).
struct ExecutorOptimize {
  bool before;
  explicit ExecutorOptimize(bool on) : before(torch::jit::getGraphExecutorOptimize()) {
    torch::jit::setGraphExecutorOptimize(on);
  }
  ~ExecutorOptimize() { torch::jit::setGraphExecutorOptimize(before); }
};

// Why oneDNN's packed convolutions would be slower than the module as it is, judged from the
// graph: on this machine (docs/performance.md, "oneDNN packing") they made ResNet-18, ResNet-50
// and VGG-11 up to 1.22x faster, but MobileNetV3-L, EfficientNet-Lite0, ConvNeXt-atto (and
// ResNeXt-50 at 224 px) 0.69-0.93x as fast. The losers have grouped (depthwise) convolutions,
// and EfficientNet's TensorFlow padding also moves every activation between oneDNN's layout and
// the dense one. Either declines.
std::optional<std::string> grouped_convolutions(torch::jit::Graph& graph) {
  for (auto* node : graph.nodes()) {
    // aten::conv1d/2d/3d(input, weight, bias, stride, padding, dilation, groups);
    // aten::_convolution(..., transposed, output_padding, groups, ...).
    int at = -1;
    if (node->kind() == c10::aten::conv1d || node->kind() == c10::aten::conv2d ||
        node->kind() == c10::aten::conv3d) {
      at = 6;
    } else if (node->kind() == c10::aten::_convolution) {
      at = 8;
    }
    if (at < 0 || node->inputs().size() <= static_cast<size_t>(at)) continue;
    auto groups = torch::jit::toIValue(node->input(at));
    if (!groups || !groups->isInt() || groups->toInt() != 1) {
      return "it has grouped or depthwise convolutions";
    }
  }
  return std::nullopt;
}

std::optional<std::string> layout_round_trips(torch::jit::Graph& graph) {
  const auto to_mkldnn = c10::Symbol::fromQualString("aten::to_mkldnn");
  size_t entries = 0;
  for (auto* node : graph.nodes()) entries += node->kind() == to_mkldnn ? 1 : 0;
  if (entries > 1) {
    return "its activations would move into oneDNN's layout " + std::to_string(entries) +
           " times a pass";
  }
  return std::nullopt;
}

// Where optimisation left a tap as a dense copy (aten::to_dense) of a oneDNN tensor that
// nothing else uses, two shortcuts. The tap's clone (made so that in-place operations later in
// the network cannot change it) copies a fresh copy again, so it goes. And with `pool`, the
// activation is averaged over its last two (spatial) dimensions by oneDNN before the copy, so
// only (N, C, 1, 1) leaves oneDNN's layout: for a ResNet-18's five taps at 112 px, 74 MB per
// batch of 32 are then neither copied twice nor read again to pool. The Rust side's pooling of
// (N, C, 1, 1) is that tensor itself; the probe check compares pooled taps.
void shortcut_taps(torch::jit::Graph& graph, bool pool) {
  const auto to_dense = c10::Symbol::fromQualString("aten::to_dense");
  auto* tuple = graph.outputs().at(0)->node();
  if (tuple->kind() != c10::prim::TupleConstruct) return;
  for (size_t i = 1; i < tuple->inputs().size(); ++i) {
    auto* value = tuple->input(i);
    auto* clone = value->node();
    if (clone->kind() != c10::aten::clone || value->uses().size() != 1) continue;
    auto* dense = clone->input(0)->node();
    if (dense->kind() != to_dense || dense->output()->uses().size() != 1) continue;
    if (pool) {
      torch::jit::WithInsertPoint at(dense);
      auto* pooled = graph.insert(c10::aten::adaptive_avg_pool2d,
                                  {dense->input(0), std::vector<int64_t>{1, 1}});
      dense->replaceInput(0, pooled);
    }
    value->replaceAllUsesWith(dense->output());
    clone->destroy();
  }
}

// The method `name` of `module`'s type now runs `graph`. A method's function keeps the executor
// and the optimised copy of its graph it made when first asked, so changing the graph it holds
// may change nothing; a new function starts afresh.
void replace_method(torch::jit::Module& module, const std::string& name,
                    const std::shared_ptr<torch::jit::Graph>& graph) {
  auto type = module.type();
  auto cu = module._ivalue()->compilation_unit();
  auto qualified = type->getMethod(name).qualname();
  type->unsafeRemoveMethod(name);
  cu->unsafeRemoveMethod(qualified);
  type->addMethod(cu->create_function(qualified, graph));
}

}  // namespace

extern "C" {

int zs_module_load(const char* data, size_t len, int device, zs_module** out, zs_error* err) {
  *out = nullptr;
  return guarded(err, [&] {
    // Read in place: a stream over a string copy held the archive (98 MB for ResNet-50) twice
    // more before its records were copied into the weights. The debug records (source ranges
    // for TorchScript's error messages) are not read: a kept module is zoo-select's own
    // rewrite, and its errors name the model and layer anyway.
    auto archive = std::make_shared<caffe2::serialize::MemoryReadAdapter>(data, static_cast<off_t>(len));
    auto held = std::make_unique<zs_module>(
        zs_module{torch::jit::load(archive, device_of(device), /*load_debug_files=*/false)});
    // Scripted models read `training` at run time.
    held->module.eval();
    if (!held->module.find_method(METHOD)) throw std::runtime_error("the module has no forward_taps");
    *out = held.release();
  });
}

int zs_module_to(zs_module* m, int device, int scalar_type, zs_error* err) {
  return guarded(err, [&] {
    if (scalar_type < 0) {
      m->module.to(device_of(device));
    } else {
      m->module.to(device_of(device), static_cast<c10::ScalarType>(scalar_type));
    }
  });
}

int zs_module_save(const zs_module* m, zs_buf* out, zs_error* err) {
  return guarded(err, [&] {
    std::ostringstream buf;
    m->module.save(buf);
    zs_fill(out, buf.str());
    if (out->data == nullptr) throw std::bad_alloc();
  });
}

int zs_module_optimized(const zs_module* m, int pool_taps, int judge, zs_module** out,
                        zs_error* err) {
  *out = nullptr;
  std::string declined;
  int status = guarded(err, [&] {
    ExecutorOptimize on(true);
    auto frozen = torch::jit::freeze(m->module, std::vector<std::string>{METHOD});
    auto why = grouped_convolutions(*frozen.get_method(METHOD).graph());
    if (judge && why) {
      declined = *why;
      return;
    }
    // Given a frozen module, optimize_for_inference does not freeze again (which would drop
    // forward_taps); it optimises forward and the methods named.
    auto optimized = torch::jit::optimize_for_inference(frozen, {METHOD});
    auto graph = optimized.get_method(METHOD).graph()->copy();
    why = layout_round_trips(*graph);
    if (judge && why) {
      declined = *why;
      return;
    }
    shortcut_taps(*graph, pool_taps != 0);
    replace_method(optimized, METHOD, graph);
    *out = new zs_module{optimized};
  });
  if (status == ZS_OK && !declined.empty()) {
    fail(err, declined);
    return ZS_DECLINED;
  }
  return status;
}

int zs_module_run(zs_module* m, void* input, void** outputs, size_t capacity, size_t* n,
                  zs_error* err) {
  *n = 0;
  return guarded(err, [&] {
    torch::NoGradGuard no_grad;
    auto result = m->module.get_method(METHOD)({*static_cast<at::Tensor*>(input)});
    if (!result.isTuple()) throw std::runtime_error("forward_taps did not return a tuple");
    const auto& items = result.toTupleRef().elements();
    if (items.size() > capacity) throw std::runtime_error("forward_taps returned too many values");
    for (size_t i = 0; i < items.size(); ++i) {
      outputs[i] = items[i].isTensor() ? new at::Tensor(items[i].toTensor()) : nullptr;
    }
    *n = items.size();
  });
}

void zs_module_free(zs_module* m) { delete m; }

}  // extern "C"
