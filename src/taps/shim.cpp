// Forward hooks for TorchScript, done by rewriting the graph.
//
// libtorch has no hook API for loaded modules and tch cannot reach submodules, so this shim adds
// a method `forward_taps` that returns (model output, tap 1, tap 2, ...) from ONE forward pass.
// It walks `forward` in program order, inlining only the calls of the root and of ancestors of
// requested submodules, and marks each call of a requested submodule. Everything else stays a
// call, so the rewritten module runs the same kernels as the original. See
// shared design note "Capturing submodule outputs of a TorchScript model from Rust".
//
// The C interface is in taps.h; every entry point catches all exceptions and reports them as a
// status code plus text, because exceptions must never cross into Rust.

#include "taps.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Module;
using torch::jit::Node;
using torch::jit::Value;

// A failure the Rust side turns into a typed error.
struct TapError {
  int code;
  std::string layer;
  std::string detail;
};

void fill(zs_buf* out, const std::string& s) {
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

int report(const TapError& e, zs_error* err) {
  if (err != nullptr) {
    fill(&err->layer, e.layer);
    fill(&err->detail, e.detail);
  }
  return e.code;
}

// The dotted submodule path of a call's receiver: a chain of GetAttr from `self`.
std::optional<std::string> receiver_path(Value* v, Value* self) {
  std::vector<std::string> parts;
  while (v != self) {
    Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!path.empty()) path += '.';
    path += *it;
  }
  return path;
}

bool is_forward(const std::string& method) {
  if (method.rfind("forward", 0) != 0) return false;
  for (size_t i = 7; i < method.size(); ++i) {
    if (method[i] < '0' || method[i] > '9') return false;
  }
  return true;
}

// `path` encloses `name` (the root, "", encloses everything).
bool encloses(const std::string& path, const std::string& name) {
  return path.empty() || (name.size() > path.size() && name.compare(0, path.size(), path) == 0 &&
                          name[path.size()] == '.');
}

// The real module object at a path: resolving through the object (not the static type) also
// handles interface-typed attributes.
Module module_at(const Module& root, const std::string& path) {
  Module m = root;
  size_t start = 0;
  while (start < path.size()) {
    size_t dot = path.find('.', start);
    if (dot == std::string::npos) dot = path.size();
    m = m.attr(path.substr(start, dot - start)).toModule();
    start = dot + 1;
  }
  return m;
}

// The result of walking `forward`: a graph in which every call of a wanted submodule that runs
// unconditionally is followed by a marker node holding its outputs, in program order.
struct Walk {
  std::shared_ptr<Graph> graph;
  std::map<std::string, std::vector<Node*>> markers;
};

Walk walk_forward(const Module& root, const std::set<std::string>& wanted) {
  Walk w;
  w.graph = root.get_method("forward").graph()->copy();
  Graph& g = *w.graph;
  Value* self = g.inputs().at(0);
  auto encloses_wanted = [&](const std::string& path) {
    for (const auto& name : wanted) {
      if (encloses(path, name)) return true;
    }
    return false;
  };
  Block* top = g.block();
  for (Node* n = top->nodes().front(); n != top->return_node();) {
    if (n->kind() != c10::prim::CallMethod) {
      n = n->next();
      continue;
    }
    auto path = receiver_path(n->input(0), self);
    if (!path) {
      n = n->next();
      continue;
    }
    const std::string method = n->s(c10::attr::name);
    Node* next = n->next();
    if (wanted.count(*path) != 0 && is_forward(method)) {
      // The marker keeps the value reachable if this call is inlined below.
      Node* marker = g.createTuple(n->outputs());
      marker->insertAfter(n);
      w.markers[*path].push_back(marker);
      next = marker->next();
    }
    if (encloses_wanted(*path)) {
      Node* before = n->prev();
      Module owner = module_at(root, *path);
      auto& fn = torch::jit::toGraphFunction(owner.get_method(method).function());
      // The three-argument form inlines the unoptimised graph, which still has the
      // submodule calls; the optimised one is already flattened.
      torch::jit::inlineCallTo(n, &fn, fn.graph().get());
      n = before->next();
      continue;
    }
    n = next;
  }
  return w;
}

// Why a wanted submodule has no unconditional call: look for calls of it (or of an enclosing
// module) inside loops and branches.
TapError diagnose(const Module& root, Walk& w, const std::string& name) {
  Value* self = w.graph->inputs().at(0);
  bool any_call = false;
  std::vector<Block*> stack = {w.graph->block()};
  while (!stack.empty()) {
    Block* b = stack.back();
    stack.pop_back();
    for (Node* n : b->nodes()) {
      for (Block* sub : n->blocks()) stack.push_back(sub);
      if (n->kind() != c10::prim::CallMethod) continue;
      any_call = true;
      auto path = receiver_path(n->input(0), self);
      if (!path || b == w.graph->block()) continue;
      if (*path == name || encloses(*path, name)) {
        Node* owner = b->owningNode();
        std::string where = owner->kind() == c10::prim::Loop ? "loop" : "branch";
        return {ZS_NESTED, name, where};
      }
    }
  }
  if (!any_call) return {ZS_FROZEN, name, ""};
  return {ZS_NOT_CALLED, name, ""};
}

std::vector<std::string> module_names(const Module& root) {
  std::vector<std::string> names;
  for (const auto& m : root.named_modules()) {
    if (!m.name.empty()) names.push_back(m.name);
  }
  return names;
}

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// "block.relu#2" -> ("block.relu", 2); "block.relu" -> ("block.relu", 0 = the last call).
std::pair<std::string, long> split_occurrence(const std::string& spec) {
  auto hash = spec.rfind('#');
  if (hash == std::string::npos) return {spec, 0};
  const std::string digits = spec.substr(hash + 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
      digits.size() > 6 || std::stol(digits) == 0) {
    throw TapError{ZS_BAD_NAME, spec, "expected NAME or NAME#K with K >= 1"};
  }
  return {spec.substr(0, hash), std::stol(digits)};
}

Module load(const char* path) {
  try {
    // On the CPU whatever device the tensors were saved from: the rewrite needs no device, and
    // Rust loads the result onto the run's device.
    return torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw TapError{ZS_LOAD, "", e.what_without_backtrace()};
  } catch (const std::exception& e) {
    throw TapError{ZS_LOAD, "", e.what()};
  }
}

std::string rewrite(const char* model_path, const std::vector<std::string>& specs) {
  Module root = load(model_path);
  const auto known = module_names(root);
  const std::set<std::string> known_set(known.begin(), known.end());
  std::vector<std::pair<std::string, long>> taps;
  std::set<std::string> wanted;
  for (const auto& spec : specs) {
    auto tap = split_occurrence(spec);
    if (known_set.count(tap.first) == 0) {
      if (known.empty()) throw TapError{ZS_FROZEN, spec, ""};
      throw TapError{ZS_UNKNOWN, spec, join(known, '\n')};
    }
    wanted.insert(tap.first);
    taps.push_back(tap);
  }

  Walk w = walk_forward(root, wanted);
  Graph& g = *w.graph;
  std::vector<Value*> outputs = {g.outputs().at(0)};
  for (size_t i = 0; i < taps.size(); ++i) {
    const auto& [base, k] = taps[i];
    auto found = w.markers.find(base);
    if (found == w.markers.end()) throw diagnose(root, w, base);
    const auto& calls = found->second;
    if (k > static_cast<long>(calls.size())) {
      throw TapError{ZS_OCCURRENCE, specs[i], std::to_string(calls.size())};
    }
    Node* marker = k == 0 ? calls.back() : calls.at(k - 1);
    if (marker->inputs().size() != 1 ||
        !marker->input(0)->type()->cast<c10::TensorType>()) {
      std::string type = marker->inputs().size() == 1 ? marker->input(0)->type()->str() : "several values";
      throw TapError{ZS_NOT_TENSOR, specs[i], type};
    }
    // Clone right where the value is made: in-place ops later in the network (a ReLU after a
    // BatchNorm, a residual `+=`) would otherwise change what was captured.
    torch::jit::WithInsertPoint at(marker);
    outputs.push_back(g.insert(c10::aten::clone, {marker->input(0)}));
  }
  for (auto& entry : w.markers) {
    for (Node* marker : entry.second) marker->destroy();
  }
  {
    torch::jit::WithInsertPoint at(g.return_node());
    Node* tuple = g.insertNode(g.createTuple(outputs));
    g.eraseOutput(0);
    g.registerOutput(tuple->output());
  }
  g.lint();

  auto type = root.type();
  const std::string method = "forward_taps";
  if (type->findMethod(method) != nullptr) {
    throw TapError{ZS_INTERNAL, "", "the model already has a method named " + method};
  }
  auto cu = root._ivalue()->compilation_unit();
  auto* fn = cu->create_function(c10::QualifiedName(*type->name(), method), w.graph);
  type->addMethod(fn);
  std::ostringstream buf;
  root.save(buf);
  return buf.str();
}

// One line per submodule: name, unconditional calls, and why it cannot be tapped ("" if it can).
std::string layers(const char* model_path) {
  Module root = load(model_path);
  const auto names = module_names(root);
  const std::set<std::string> wanted(names.begin(), names.end());
  Walk w = walk_forward(root, wanted);
  std::string out;
  for (const auto& name : names) {
    auto found = w.markers.find(name);
    size_t calls = found == w.markers.end() ? 0 : found->second.size();
    std::string why;
    if (calls == 0) {
      TapError e = diagnose(root, w, name);
      why = e.code == ZS_NESTED ? "called inside a " + e.detail : "not called by forward";
    }
    out += name + '\t' + std::to_string(calls) + '\t' + why + '\n';
  }
  return out;
}

template <typename F>
int guarded(zs_error* err, F&& body) {
  try {
    body();
    return ZS_OK;
  } catch (const TapError& e) {
    return report(e, err);
  } catch (const c10::Error& e) {
    return report({ZS_INTERNAL, "", e.what_without_backtrace()}, err);
  } catch (const std::exception& e) {
    return report({ZS_INTERNAL, "", e.what()}, err);
  } catch (...) {
    return report({ZS_INTERNAL, "", "unknown C++ exception"}, err);
  }
}

}  // namespace

extern "C" {

int zs_taps_rewrite(const char* model_path, const char* const* names, size_t n_names,
                    zs_buf* module_out, zs_error* err) {
  return guarded(err, [&] {
    std::vector<std::string> specs(names, names + n_names);
    fill(module_out, rewrite(model_path, specs));
  });
}

int zs_taps_layers(const char* model_path, zs_buf* out, zs_error* err) {
  return guarded(err, [&] { fill(out, layers(model_path)); });
}

void zs_buf_free(zs_buf* buf) {
  if (buf != nullptr && buf->data != nullptr) {
    std::free(buf->data);
    buf->data = nullptr;
    buf->len = 0;
  }
}

}  // extern "C"
