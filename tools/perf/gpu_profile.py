#!/usr/bin/env python3
"""Where a GPU forward's time goes: the host queueing it, or the GPU running it, and in which ops.

On a lent H200 the forward loops of zoo-select ran MobileNetV3-Large at 73 ms a batch of 128,
four times ResNet-50's 16 ms for a twentieth of its operations, and the device thread's CPU clock
read ~100 ms a batch for MobileNetV3 against 14 ms for ResNet-50. That CPU time may be launch
overhead (TorchScript interpreter, dispatcher), the CUDA driver spinning in a full launch queue
while the GPU is the bound, or a slow kernel path (depthwise convolutions on channels-last f32).
This separates them, on the exported TorchScript files zoo-select runs, from Python:

    python3 tools/perf/gpu_profile.py ZOO/resnet50_random.pt ZOO/mobilenet_v3_large_random.pt \
        --out gpu-profile.json                     # on the GPU machine (tools/perf/gpu-pass)
    .venv/bin/python tools/perf/gpu_profile.py /tmp/gp/*.pt --device cpu --batch 2 --batches 2 \
        --warmup 1 --profile-batches 1 --budget-s 400 --out /tmp/gp/gpu-profile.json
                         # a dry run on a CPU (about 3 minutes on 2 cores; no CUDA path is taken)

For each model, on a random batch fed as zoo-select feeds it (uint8 NHWC seen as NCHW, so
channels-last, then float /255 and normalised with the manifest's mean and std) and as a
contiguous NCHW copy, in this order (a phase for every model before the next phase, so that the
time budget, --budget-s, cuts the least telling numbers first):
  1. TorchScript's executor optimisation off, as zoo-select runs: wall ms a batch over --batches
     queued back to back (one synchronize at the end), the host's time to return from a call and
     its thread CPU time, in that stream (where a full launch queue makes the host wait) and for
     one call on an idle GPU (pure queueing cost), and CUDA events around the stream;
  2. torch.profiler over a few batches: GPU kernel time and span a batch (how busy the GPU is),
     kernel launches a forward, host CPU self time a batch, the top ops by CUDA and CPU time and
     the top kernels;
  3. the same timings with the executor optimisation on (PyTorch's default);
  4. cuDNN's autotuner on (libtorch's default is off), and the weights made channels-last too.
Every measurement is guarded: a failure is recorded as an error string and the rest goes on; the
JSON is rewritten after each, so a kill by an outer timeout keeps what was done. Prints a short
table. Not a test: a measurement.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guarded  # noqa: E402
from guarded import Run, main_or_table, note, sync  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
LAYOUTS = ("channels_last", "contiguous")
# CUDA runtime and driver calls that put a kernel on the queue, as the profiler names them.
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                "cudaLaunchCooperativeKernel", "cudaGraphLaunch")
START = time.perf_counter()


def manifest_input(pt: Path) -> dict:
    """Input size, mean and std from the manifest export_zoo.py writes beside the .pt file.
    Parsed by hand: the GPU machine's Python may lack PyYAML, and a missing manifest only means
    ImageNet's statistics, which changes no timing."""
    found = {}
    try:
        text = pt.with_suffix(".yaml").read_text()
        for key in ("size", "mean", "std"):
            m = re.search(rf"^\s+{key}:\s*(.+)$", text, re.M)
            if m:
                found[key] = json.loads(m.group(1))
    except (OSError, ValueError):
        pass
    return found


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 4)


def make_input(layout: str, batch: int, size: int, mean, std, device: torch.device) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(0)
    pixels = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=g).to(device)
    x = pixels.permute(0, 3, 1, 2)  # (B, 3, H, W) over NHWC bytes: channels-last, as zoo-select
    if layout == "contiguous":
        x = x.contiguous()
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return (x.to(torch.float32) / 255.0 - m) / s


def describe_input(x: torch.Tensor) -> dict:
    return {"shape": list(x.shape), "strides": list(x.stride()),
            "is_channels_last": x.is_contiguous(memory_format=torch.channels_last),
            "is_contiguous": x.is_contiguous()}


def set_executor(optimise: bool):
    # Thread-local in libtorch, as zoo-select sets it on its device threads; this is one thread.
    torch._C._set_graph_executor_optimize(optimise)


def load(pt: Path, device: torch.device):
    t = time.perf_counter()
    module = torch.jit.load(str(pt), map_location=device).eval()
    sync(device)
    return module, time.perf_counter() - t


def timing(module, x: torch.Tensor, device: torch.device, batches: int, warmup: int,
           optimise: bool) -> dict:
    """Wall, host-queueing and host-CPU ms a batch for one module and input."""
    set_executor(optimise)
    cuda = device.type == "cuda"
    out: dict = {"executor_optimize": torch._C._get_graph_executor_optimize(), "batches": batches}
    with torch.no_grad():  # zoo-select runs under a NoGradGuard
        # Warm-up one at a time, kept: the optimising executor's profiling runs show here.
        out["warmup_ms"] = warm_up(module, x, device, warmup)

        # The stream, as the pass queues batches: synchronize only at the end. A call's return
        # time and its thread CPU time grow past the idle-queue figures below when the launch
        # queue is full, i.e. when the GPU is the bound and the driver makes the host wait.
        calls = []
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        sync(device)
        t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        if cuda:
            begin.record()
        for _ in range(batches):
            a = time.perf_counter()
            module(x)
            calls.append(time.perf_counter() - a)
        if cuda:
            end.record()
        t1, c1, p1 = time.perf_counter(), time.thread_time(), time.process_time()
        sync(device)
        t2 = time.perf_counter()
        out.update({
            "wall_ms_per_batch": ms((t2 - t0) / batches),
            "stream_host_call_ms_per_batch": ms(statistics.mean(calls)),
            "stream_host_call_ms_max": ms(max(calls)),
            "stream_host_thread_cpu_ms_per_batch": ms((c1 - c0) / batches),
            # On the CPU the forward's other threads (intra-op) count here and not above.
            "stream_process_cpu_ms_per_batch": ms((p1 - p0) / batches),
            # How long the GPU ran on after the host had queued the last batch.
            "stream_final_sync_wait_ms": ms(t2 - t1),
            "images_per_s": round(x.shape[0] * batches / (t2 - t0), 1),
        })
        if cuda:
            out["stream_cuda_event_ms_per_batch"] = round(begin.elapsed_time(end) / batches, 4)

        # One call at a time on an idle GPU: the host's own cost of queueing a forward (no
        # back-pressure possible), then the wait until the GPU has run it.
        queue, queue_cpu, latency = [], [], []
        for _ in range(max(1, min(batches, 10))):
            sync(device)
            a, ca = time.perf_counter(), time.thread_time()
            module(x)
            b, cb = time.perf_counter(), time.thread_time()
            sync(device)
            e = time.perf_counter()
            queue.append(b - a)
            queue_cpu.append(cb - ca)
            latency.append(e - a)
        out.update({
            "idle_host_queue_ms_per_batch": ms(statistics.median(queue)),
            "idle_host_queue_thread_cpu_ms_per_batch": ms(statistics.median(queue_cpu)),
            "idle_call_to_done_ms_per_batch": ms(statistics.median(latency)),
        })
    return out


def top(rows, key, n, fields):
    rows = sorted(rows, key=key, reverse=True)[:n]
    return [{name: f(r) for name, f in fields.items()} for r in rows]


def profile(module, x: torch.Tensor, device: torch.device, batches: int) -> dict:
    """torch.profiler over `batches` forwards (executor optimisation off, as zoo-select)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile as torch_profile, record_function

    set_executor(False)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.no_grad():
        module(x)  # (already warm: one more so the profile opens on a settled allocator)
        sync(device)
        with torch_profile(activities=activities) as prof:
            for _ in range(batches):
                with record_function("zoo_batch"):
                    module(x)
            sync(device)
    events = prof.events()
    cpu = [e for e in events if e.device_type == DeviceType.CPU]
    gpu = [e for e in events if e.device_type != DeviceType.CPU and e.name != "zoo_batch"
           and not getattr(e, "is_user_annotation", False)]
    kernels = [e for e in gpu if not e.name.startswith(("Memcpy", "Memset"))]
    marks = [e for e in cpu if e.name == "zoo_batch"]
    # The closing synchronize waits for the GPU: host time, but not the host's work.
    waits = [e for e in cpu if "Synchronize" in e.name]
    out: dict = {
        "profiled_batches": batches,
        "events": len(events),
        # Inflated by the profiler's own overhead: compare with timing's idle_host_queue.
        "profiled_host_ms_per_batch": round(sum(e.cpu_time_total for e in marks) / 1000 / max(1, len(marks)), 4),
        "cpu_self_ms_per_batch": round(sum(e.self_cpu_time_total for e in cpu if e not in waits) / 1000 / batches, 4),
        "sync_wait_ms_total": round(sum(e.self_cpu_time_total for e in waits) / 1000, 4),
        "aten_op_events_per_forward": round(sum(1 for e in cpu if e.name.startswith("aten::")) / batches, 1),
        "launch_calls_per_forward": round(sum(1 for e in cpu if e.name in LAUNCH_CALLS) / batches, 1),
    }
    if cuda:
        busy = sum(e.device_time_total for e in gpu)
        span = (max(e.time_range.end for e in gpu) - min(e.time_range.start for e in gpu)) if gpu else 0
        out.update({
            "cuda_kernel_launches_per_forward": round(len(kernels) / batches, 1),
            "cuda_memcpy_memset_per_forward": round((len(gpu) - len(kernels)) / batches, 1),
            "cuda_time_ms_per_batch": round(busy / 1000 / batches, 4),
            "cuda_kernel_time_ms_per_batch": round(sum(e.device_time_total for e in kernels) / 1000 / batches, 4),
            # First kernel's start to last kernel's end: the rest of the span the GPU sat idle,
            # waiting for the host (under the profiler's overhead, so an upper bound on idling).
            "cuda_span_ms_per_batch": round(span / 1000 / batches, 4),
            "cuda_busy_fraction_of_span": round(busy / span, 4) if span else None,
        })
    avgs = prof.key_averages()
    cpu_avgs = [a for a in avgs if a.device_type == DeviceType.CPU and a.key != "zoo_batch"
                and "Synchronize" not in a.key]
    gpu_avgs = [a for a in avgs if a.device_type != DeviceType.CPU and a.key != "zoo_batch"
                and not getattr(a, "is_user_annotation", False)]
    name = lambda a: a.key[:160]  # noqa: E731 (kernel names run to hundreds of characters)
    if cuda:
        # Self CUDA time: the kernels an op launched itself, so nested aten ops are not counted
        # twice (aten::conv2d > aten::convolution > aten::cudnn_convolution).
        out["top_ops_by_cuda_time"] = top(cpu_avgs, lambda a: a.self_device_time_total, 10, {
            "name": name, "calls": lambda a: a.count,
            "cuda_self_ms_total": lambda a: round(a.self_device_time_total / 1000, 4),
            "cuda_ms_total": lambda a: round(a.device_time_total / 1000, 4),
            "cpu_self_ms_total": lambda a: round(a.self_cpu_time_total / 1000, 4)})
        out["top_kernels_by_cuda_time"] = top(gpu_avgs, lambda a: a.device_time_total, 10, {
            "name": name, "calls": lambda a: a.count,
            "cuda_ms_total": lambda a: round(a.device_time_total / 1000, 4)})
    out["top_ops_by_cpu_time"] = top(cpu_avgs, lambda a: a.self_cpu_time_total, 10, {
        "name": name, "calls": lambda a: a.count,
        "cpu_self_ms_total": lambda a: round(a.self_cpu_time_total / 1000, 4),
        "cpu_ms_total": lambda a: round(a.cpu_time_total / 1000, 4),
        **({"cuda_self_ms_total": lambda a: round(a.self_device_time_total / 1000, 4)} if cuda else {})})
    return out


def warm_up(module, x, device, batches) -> list:
    """Forwards one at a time, each waited for: ms each."""
    warm = []
    for _ in range(batches):
        t = time.perf_counter()
        module(x)
        sync(device)
        warm.append(ms(time.perf_counter() - t))
    return warm


def stream_only(module, x, device, batches, warmup) -> dict:
    """Wall ms a batch, back to back (for the variants of phase 4)."""
    set_executor(False)
    with torch.no_grad():
        warm = warm_up(module, x, device, warmup)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(batches):
            module(x)
        sync(device)
        t = time.perf_counter() - t0
    return {"warmup_ms": warm, "wall_ms_per_batch": ms(t / batches),
            "images_per_s": round(x.shape[0] * batches / t, 1)}


def with_cudnn_benchmark(module, x, device, batches, warmup) -> dict:
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        # The autotuner tries algorithms on each new shape's first call, inside the warm-up.
        return stream_only(module, x, device, batches, max(warmup, 2))
    finally:
        torch.backends.cudnn.benchmark = before


def with_channels_last_weights(pt, x, device, batches, warmup) -> dict:
    module, _ = load(pt, device)
    module = module.to(memory_format=torch.channels_last)
    return stream_only(module, x, device, batches, warmup)


def environment(device: torch.device) -> dict:
    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "gpu": None,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "defaults": {
            "graph_executor_optimize": torch._C._get_graph_executor_optimize(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        },
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_capability"] = list(torch.cuda.get_device_capability(device))
    return env


def fmt(v, width=7, digits=1):
    return guarded.fmt(v, width, digits)


def table(data: dict) -> str:
    """The human-readable summary (gpu-pass tees it into its log)."""
    env = data.get("environment", {})
    s = data.get("settings", {})
    lines = [f"gpu_profile: {env.get('gpu') or env.get('device')}, torch {env.get('torch')}, "
             f"batch {s.get('batch')}, {s.get('batches')} batches, {data.get('elapsed_s')} s; ms a batch"]
    lines.append(f"{'model':26s} {'layout':13s} {'exec':4s} {'wall':>7s} {'cudaEv':>7s} {'idleQ':>7s} "
                 f"{'idleCPU':>7s} {'strmQ':>7s} {'strmCPU':>7s} {'done':>7s}")
    for model, m in data.get("models", {}).items():
        if "load_s" not in m.get("inputs", {}):
            lines.append(f"{model:26s} {'(loading)':13s} {'':4s} {note(m.get('inputs', {'skipped': 'not reached'}))}")
        for ex in ("executor_off", "executor_on"):
            loading = m.get("timing", {}).get(ex, {}).get("load", {})
            if "load_s" not in loading and loading:
                lines.append(f"{model:26s} {'(loading)':13s} {ex[9:]:4s} {note(loading)}")
            for layout in LAYOUTS:
                t = m.get("timing", {}).get(ex, {}).get(layout)
                if t is None:
                    continue
                if "wall_ms_per_batch" not in t:
                    lines.append(f"{model:26s} {layout:13s} {ex[9:]:4s} {note(t)}")
                    continue
                lines.append(
                    f"{model:26s} {layout:13s} {ex[9:]:4s} {fmt(t['wall_ms_per_batch'])} "
                    f"{fmt(t.get('stream_cuda_event_ms_per_batch'))} {fmt(t['idle_host_queue_ms_per_batch'])} "
                    f"{fmt(t['idle_host_queue_thread_cpu_ms_per_batch'])} {fmt(t['stream_host_call_ms_per_batch'])} "
                    f"{fmt(t['stream_host_thread_cpu_ms_per_batch'])} {fmt(t['idle_call_to_done_ms_per_batch'])}")
    lines.append("  wall: back to back; cudaEv: CUDA events around the stream; idleQ/idleCPU: host return "
                 "time/thread CPU of one call on an idle GPU; strmQ/strmCPU: the same within the stream; "
                 "done: call to GPU done, alone")
    lines.append(f"{'profile (exec off)':26s} {'layout':13s} {'kernel':>7s} {'span':>7s} {'busy':>5s} "
                 f"{'launch':>6s} {'cpuSelf':>7s} {'host':>7s}  top kernels (ms over the profiled batches)")
    for model, m in data.get("models", {}).items():
        for layout in LAYOUTS:
            p = m.get("profile", {}).get(layout)
            if p is None:
                continue
            if "profiled_batches" not in p:
                lines.append(f"{model:26s} {layout:13s} {note(p)}")
                continue
            busy = p.get("cuda_busy_fraction_of_span")
            tops = p.get("top_kernels_by_cuda_time") or p.get("top_ops_by_cpu_time") or []
            tops_s = "; ".join(f"{r['name'][:40]} {r.get('cuda_ms_total', r.get('cpu_self_ms_total')):.1f}"
                               for r in tops[:3])
            lines.append(
                f"{model:26s} {layout:13s} {fmt(p.get('cuda_kernel_time_ms_per_batch'))} "
                f"{fmt(p.get('cuda_span_ms_per_batch'))} {fmt(busy, 5, 2)} "
                f"{fmt(p.get('cuda_kernel_launches_per_forward'), 6, 0)} {fmt(p['cpu_self_ms_per_batch'])} "
                f"{fmt(p['profiled_host_ms_per_batch'])}  {tops_s}")
    lines.append("  kernel: GPU kernel time; span: first kernel start to last end; busy: their ratio; "
                 "launch: kernels a forward; cpuSelf/host: host CPU time a batch under the profiler")
    for model, m in data.get("models", {}).items():
        extra = []
        for key in ("cudnn_benchmark", "channels_last_weights"):
            if key not in m:
                continue
            v = m[key]
            extra.append(f"{key} {fmt(v.get('wall_ms_per_batch'), 0)}" if "wall_ms_per_batch" in v
                         else f"{key}: {note(v)}")
        if extra:
            lines.append(f"{model:26s} channels_last input, exec off: " + "; ".join(extra))
    if data.get("errors"):
        lines.append(f"{len(data['errors'])} errors: see the JSON's `errors`")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="exported TorchScript files (.pt)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, help="input side (default: the manifest's, else 224)")
    ap.add_argument("--batches", type=int, default=20, help="timed batches for each setting")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches before each timing")
    ap.add_argument("--profile-batches", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=45.0,
                    help="start no measurement after this many seconds from launch")
    ap.add_argument("--out", type=Path, help="the JSON (default: none, table only)")
    args = ap.parse_args()

    run = Run(args.out, args.budget_s, "gpu_profile", START)
    data = run.data
    run.print_on_sigterm(table)
    warnings.filterwarnings("ignore", category=UserWarning)  # the profiler's, once per run
    data["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "models"}
    data["models"] = {}
    device = torch.device(args.device)
    run.guarded("environment", data, "environment", environment, device)
    run.save()

    # Phase 0: load every model once (executor off) and build its inputs.
    loaded = {}
    for pt in args.models:
        name = pt.stem
        m = data["models"][name] = {"file": str(pt)}
        meta = manifest_input(pt)
        size = args.size or meta.get("size", 224)
        mean, std = meta.get("mean", IMAGENET_MEAN), meta.get("std", IMAGENET_STD)
        m.update({"size": size, "mean": mean, "std": std})

        def prepare(pt=pt, size=size, mean=mean, std=std, name=name):
            module, seconds = load(pt, device)
            xs = {layout: make_input(layout, args.batch, size, mean, std, device) for layout in LAYOUTS}
            loaded[name] = (module, xs)
            return {"load_s": round(seconds, 3), **{k: describe_input(v) for k, v in xs.items()}}

        run.guarded(f"{name} load", m, "inputs", prepare)

    order = [(n, *loaded[n]) for n in data["models"] if n in loaded]

    # Phase 1: as zoo-select runs, both layouts.
    for name, module, xs in order:
        slot = data["models"][name].setdefault("timing", {}).setdefault("executor_off", {})
        for layout, x in xs.items():
            run.guarded(f"{name} executor off {layout}", slot, layout, timing, module, x, device,
                        args.batches, args.warmup, False)
    # Phase 2: the profiler, both layouts.
    for name, module, xs in order:
        slot = data["models"][name].setdefault("profile", {})
        for layout, x in xs.items():
            run.guarded(f"{name} profile {layout}", slot, layout, profile, module, x, device,
                        args.profile_batches)
    # Phase 3: the executor optimisation on, on a fresh copy (its plan is kept per module).
    for name, _, xs in order:
        slot = data["models"][name]["timing"].setdefault("executor_on", {})
        pt = Path(data["models"][name]["file"])
        fresh = {}

        def load_on(pt=pt):
            fresh["module"], seconds = load(pt, device)
            return {"load_s": round(seconds, 3)}

        run.guarded(f"{name} executor on load", slot, "load", load_on)
        if "module" in fresh:
            for layout, x in xs.items():
                # Profiling runs, then the optimised graph (and any fusion compiled): at least 3.
                run.guarded(f"{name} executor on {layout}", slot, layout, timing, fresh["module"], x,
                            device, args.batches, max(args.warmup, 3), True)
        fresh.clear()  # (one optimised copy on the GPU at a time)
    set_executor(False)
    # Phase 4: settings zoo-select does not use yet, on its own (channels-last) input.
    for name, module, xs in order:
        m = data["models"][name]
        if device.type == "cuda":
            run.guarded(f"{name} cudnn benchmark", m, "cudnn_benchmark", with_cudnn_benchmark, module,
                        xs["channels_last"], device, args.batches, args.warmup)
        else:
            m["cudnn_benchmark"] = {"skipped": "not a CUDA device"}
        run.guarded(f"{name} channels-last weights", m, "channels_last_weights", with_channels_last_weights,
                    Path(m["file"]), xs["channels_last"], device, args.batches, args.warmup)
    run.save()
    print(table(data), flush=True)


if __name__ == "__main__":
    main_or_table(main, table)
