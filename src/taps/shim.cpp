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
#include "module.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/fold_conv_bn.h>
#include <torch/csrc/jit/python/update_graph_executor_opt.h>
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

int report(const TapError& e, zs_error* err) {
  if (err != nullptr) {
    zs_fill(&err->layer, e.layer);
    zs_fill(&err->detail, e.detail);
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

// `forward`, a traced module's repeated-call copies `forward1`, `forward2`, ..., and a scripted
// overload `forward__0`, `forward__1`, ... (torchvision's DenseNet layers).
bool is_forward(const std::string& method) {
  if (method.rfind("forward", 0) != 0) return false;
  size_t i = 7;
  if (method.compare(i, 2, "__") == 0 && method.size() > i + 2) i += 2;
  for (; i < method.size(); ++i) {
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

// The result of walking `forward`: a graph in which every unconditional call of a wanted
// submodule is followed by a marker node holding its outputs, in program order, and a record of
// the wanted submodules that are also called inside a loop or a data-dependent branch.
struct Walk {
  std::shared_ptr<Graph> graph;
  std::map<std::string, std::vector<Node*>> markers;
  // path -> "loop" or "branch", the first place such a call was seen.
  std::map<std::string, std::string> nested;
};

class Walker {
 public:
  Walker(const Module& root, const std::set<std::string>& wanted) : root_(root), wanted_(wanted) {}

  Walk run() {
    auto method = root_.get_method("forward");
    w_.graph = method.graph()->copy();
    self_ = w_.graph->inputs().at(0);
    bind_defaults(method.function().getSchema());
    collect_assigned();
    walk(w_.graph->block(), nullptr);
    return std::move(w_);
  }

 private:
  bool encloses_wanted(const std::string& path) const {
    for (const auto& name : wanted_) {
      if (encloses(path, name)) return true;
    }
    return false;
  }

  // zoo-select feeds forward one image batch. Further parameters (timm's `attn_mask=None`,
  // `is_causal=False`) become constants holding their defaults, which also lets branches on
  // them be resolved.
  void bind_defaults(const c10::FunctionSchema& schema) {
    Graph& g = *w_.graph;
    const auto& args = schema.arguments();
    if (g.inputs().size() < 2) throw TapError{ZS_SIGNATURE, "", "forward takes no input"};
    torch::jit::WithInsertPoint at(g.block()->nodes().front());
    while (g.inputs().size() > 2) {
      size_t i = g.inputs().size() - 1;
      if (i >= args.size() || !args[i].default_value()) {
        std::string name = i < args.size() ? args[i].name() : std::to_string(i);
        throw TapError{ZS_SIGNATURE, "", "forward's parameter `" + name + "` has no default; zoo-select passes only the image batch"};
      }
      Value* c = g.insertConstant(*args[i].default_value());
      g.inputs()[i]->replaceAllUsesWith(c);
      g.eraseInput(i);
    }
  }

  // Names of the attributes that any method of any submodule assigns with prim::SetAttr.
  void collect_assigned() {
    std::vector<Module> modules = {root_};
    for (const auto& m : root_.named_modules()) modules.push_back(m.value);
    for (const auto& m : modules) {
      for (const auto& method : m.get_methods()) {
        std::vector<Block*> stack = {method.graph()->block()};
        while (!stack.empty()) {
          Block* b = stack.back();
          stack.pop_back();
          for (Node* n : b->nodes()) {
            if (n->kind() == c10::prim::SetAttr) assigned_.insert(n->s(c10::attr::name));
            for (Block* sub : n->blocks()) stack.push_back(sub);
          }
        }
      }
    }
  }

  // Whether a value is None, when that is fixed: a None constant, or a type that cannot hold
  // None (Optional, Union and Any can).
  static std::optional<bool> static_is_none(Value* v) {
    if (v->type()->kind() == c10::TypeKind::NoneType) return true;
    if (v->node()->kind() == c10::prim::Constant) {
      auto iv = torch::jit::toIValue(v);
      if (iv) return iv->isNone();
    }
    if (!c10::NoneType::get()->isSubtypeOf(*v->type())) return false;
    return std::nullopt;
  }

  // The value of a branch condition when it is fixed by the module itself: a constant, a bool
  // attribute of a submodule (a configuration flag such as timm's `use_conv_mlp`), or
  // `training`, which is false because every run is in eval mode; or its negation.
  std::optional<bool> static_bool(Value* v) const {
    Node* n = v->node();
    if (n->kind() == c10::prim::Constant) {
      auto iv = torch::jit::toIValue(v);
      if (iv && iv->isBool()) return iv->toBool();
      return std::nullopt;
    }
    if (n->kind() == c10::aten::__not__) {
      auto b = static_bool(n->input(0));
      return b ? std::optional<bool>(!*b) : std::nullopt;
    }
    if (n->kind() == c10::aten::__is__ || n->kind() == c10::aten::__isnot__) {
      // `x is None`: known when one side is None and the other's None-ness is known.
      auto a = static_is_none(n->input(0));
      auto b = static_is_none(n->input(1));
      std::optional<bool> is;
      if (b && *b) is = a;
      if (a && *a) is = b;
      if (!is) return std::nullopt;
      return n->kind() == c10::aten::__is__ ? *is : !*is;
    }
    if (n->kind() == c10::prim::GetAttr && v->type()->kind() == c10::TypeKind::BoolType) {
      auto owner = receiver_path(n->input(0), self_);
      if (!owner) return std::nullopt;
      const std::string attr = n->s(c10::attr::name);
      if (attr == "training") return false;
      // An attribute some method assigns (lazy initialisation) may change between passes.
      if (assigned_.count(attr) != 0) return std::nullopt;
      try {
        c10::IValue value = module_at(root_, *owner).attr(attr);
        if (value.isBool()) return value.toBool();
      } catch (const c10::Error&) {
        // Not a module attribute after all: leave the branch alone.
      }
    }
    return std::nullopt;
  }

  // Walks a block in program order. `place` is null at the top level, else "loop" or "branch".
  void walk(Block* block, const char* place) {
    Graph& g = *w_.graph;
    for (Node* n = block->nodes().front(); n != block->return_node();) {
      if (n->kind() == c10::prim::If) {
        if (auto cond = static_bool(n->input(0))) {
          // Splice the branch that runs in place of the If and walk it as straight-line code.
          Node* before = n->prev();
          Block* taken = n->blocks().at(*cond ? 0 : 1);
          while (taken->nodes().begin() != taken->nodes().end()) taken->nodes().front()->moveBefore(n);
          for (size_t i = 0; i < n->outputs().size(); ++i) {
            n->outputs()[i]->replaceAllUsesWith(taken->outputs()[i]);
          }
          n->destroy();
          n = before->next();
          continue;
        }
      }
      if (!n->blocks().empty()) {
        const char* inner = place ? place : (n->kind() == c10::prim::Loop ? "loop" : "branch");
        for (Block* sub : n->blocks()) walk(sub, inner);
        n = n->next();
        continue;
      }
      if (n->kind() != c10::prim::CallMethod) {
        n = n->next();
        continue;
      }
      auto path = receiver_path(n->input(0), self_);
      if (!path) {
        n = n->next();
        continue;
      }
      const std::string method = n->s(c10::attr::name);
      Node* next = n->next();
      if (wanted_.count(*path) != 0 && is_forward(method)) {
        if (place == nullptr) {
          // The marker keeps the value reachable if this call is inlined below.
          Node* marker = g.createTuple(n->outputs());
          marker->insertAfter(n);
          w_.markers[*path].push_back(marker);
          next = marker->next();
        } else {
          w_.nested.emplace(*path, place);
        }
      }
      if (encloses_wanted(*path)) {
        Node* before = n->prev();
        Module owner = module_at(root_, *path);
        auto& fn = torch::jit::toGraphFunction(owner.get_method(method).function());
        // The three-argument form inlines the unoptimised graph, which still has the
        // submodule calls; the optimised one is already flattened.
        torch::jit::inlineCallTo(n, &fn, fn.graph().get());
        n = before->next();
        continue;
      }
      n = next;
    }
  }

  const Module& root_;
  const std::set<std::string>& wanted_;
  std::set<std::string> assigned_;
  Walk w_;
  Value* self_ = nullptr;
};

Walk walk_forward(const Module& root, const std::set<std::string>& wanted) {
  return Walker(root, wanted).run();
}

// Why the calls of a wanted submodule cannot be tapped, if they cannot. A submodule called in a
// loop or a data-dependent branch has no single output per pass (even if it is also called
// unconditionally: a forward hook would keep the conditional call's value when it runs).
std::optional<TapError> untappable(const Walk& w, const std::string& name, const std::string& spec) {
  auto nested = w.nested.find(name);
  if (nested != w.nested.end()) return TapError{ZS_NESTED, spec, nested->second};
  if (w.markers.count(name) == 0) return TapError{ZS_NOT_CALLED, spec, ""};
  Node* last = w.markers.at(name).back();
  if (last->inputs().size() != 1) return TapError{ZS_NOT_TENSOR, spec, "several values"};
  if (!last->input(0)->type()->cast<c10::TensorType>()) {
    return TapError{ZS_NOT_TENSOR, spec, last->input(0)->type()->str()};
  }
  return std::nullopt;
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

// Adds to `root` a method forward_taps returning (output, the taps in `specs`' order), and
// switches it to eval mode.
void add_taps(Module& root, const std::vector<std::string>& specs) {
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
    if (auto why = untappable(w, base, specs[i])) throw *why;
    const auto& calls = w.markers.at(base);
    if (k > static_cast<long>(calls.size())) {
      throw TapError{ZS_OCCURRENCE, specs[i], std::to_string(calls.size())};
    }
    Node* marker = k == 0 ? calls.back() : calls.at(k - 1);
    if (!marker->input(0)->type()->cast<c10::TensorType>()) {
      throw TapError{ZS_NOT_TENSOR, specs[i], marker->input(0)->type()->str()};
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
  // Scripted models read `training` at run time.
  root.eval();
}

Module tapped(const char* model_path, const std::vector<std::string>& specs) {
  Module root = load(model_path);
  add_taps(root, specs);
  return root;
}

std::string serialized(const Module& module) {
  std::ostringstream buf;
  module.save(buf);
  return buf.str();
}

// A copy in which Conv2d-BatchNorm2d pairs whose convolution output feeds only the BatchNorm
// are one convolution, in every method. A tapped convolution output has a second use (its
// clone), so it is left alone; a tapped BatchNorm output becomes the folded convolution's.
Module folded(const Module& module) { return torch::jit::FoldConvBatchNorm(module); }

// One line per submodule: name, unconditional calls, and why it cannot be tapped ("" if it can).
// The listing behind zs_taps_layers. A module's position is where its last call finishes in the
// forward graph's program order (a parent finishes after its children), which is what "runs
// after the cut" means; its parameters are its own, not its children's, so that summing them
// over the modules that finish after a cut counts each parameter once.
std::string layers(const Module& root) {
  const auto names = module_names(root);
  const std::set<std::string> wanted(names.begin(), names.end());
  Walk w = walk_forward(root, wanted);
  std::map<const Node*, long> position;
  long next = 0;
  for (const Node* node : w.graph->block()->nodes()) position[node] = next++;
  std::map<std::string, long long> own_params;
  for (const auto& m : root.named_modules()) {
    long long count = 0;
    for (const auto& p : m.value.named_parameters(/*recurse=*/false)) count += p.value.numel();
    own_params[m.name] = count;
  }
  std::string out;
  for (const auto& name : names) {
    auto found = w.markers.find(name);
    size_t calls = found == w.markers.end() ? 0 : found->second.size();
    long at = -1;
    if (calls > 0) {
      auto p = position.find(found->second.back());
      if (p != position.end()) at = p->second;
    }
    std::string why;
    if (auto e = untappable(w, name, name)) {
      switch (e->code) {
        case ZS_NESTED: why = "called inside a " + e->detail; break;
        case ZS_NOT_CALLED: why = "not called by forward"; break;
        default: why = "its output is " + e->detail + ", not a tensor";
      }
    }
    out += name + '\t' + std::to_string(calls) + '\t' + std::to_string(at) + '\t' +
           std::to_string(own_params[name]) + '\t' + why + '\n';
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
    zs_fill(module_out, serialized(tapped(model_path, specs)));
  });
}

int zs_taps_prepare(const char* model_path, const char* const* names, size_t n_names,
                    zs_module** plain, zs_module** folded_out, zs_buf* listing, zs_error* err) {
  *plain = nullptr;
  *folded_out = nullptr;
  return guarded(err, [&] {
    std::vector<std::string> specs(names, names + n_names);
    auto root = std::make_unique<zs_module>(zs_module{load(model_path)});
    const std::string listed = layers(root->module);
    add_taps(root->module, specs);
    try {
      *folded_out = new zs_module{folded(root->module)};
    } catch (const std::exception&) {
      // Left unfolded: the caller runs the plain module.
    }
    zs_fill(listing, listed);
    *plain = root.release();
  });
}

int zs_taps_layers(const char* model_path, zs_buf* out, zs_error* err) {
  return guarded(err, [&] { zs_fill(out, layers(load(model_path))); });
}

void zs_set_graph_executor_optimize(int on) { torch::jit::setGraphExecutorOptimize(on != 0); }

void zs_buf_free(zs_buf* buf) {
  if (buf != nullptr && buf->data != nullptr) {
    std::free(buf->data);
    buf->data = nullptr;
    buf->len = 0;
  }
}

}  // extern "C"
