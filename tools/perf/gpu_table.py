#!/usr/bin/env python3
"""Writes docs/performance.md's GPU sections from what tools/gpu-check and tools/perf/gpu-pass
made on a lent GPU.

    python3 tools/perf/gpu_table.py [docs/data/gpu-check.json]

Replaces what lies between <!-- gpu:start --> and <!-- gpu:end --> (gpu-check's JSON, and its
Nsight Compute summary docs/data/gpu-kernels.csv when there is one), between
<!-- gpu-pass:start --> and <!-- gpu-pass:end --> (docs/data/gpu-pass.json, and the -v log of a
run from the module cache, docs/data/gpu-pass-zoo-warm.log), between <!-- gpu-profile:start -->
and <!-- gpu-profile:end --> and between <!-- gpu-decode:start --> and <!-- gpu-decode:end --> (the
tables tools/perf/gpu_profile.py and gpu_decode.py print of docs/data/gpu-profile.json and
gpu-decode.json, where those exist), and the README's GPU sentence.
"""

import csv

import json
import pathlib
import re
import subprocess
import sys


def kernel_shares(path: pathlib.Path) -> list[str]:
    """GPU time by kind of kernel in Nsight Compute's per-kernel summary of a 200-image run."""
    rows = list(csv.reader(path.open()))
    head = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
    h = rows[head]
    name, count, mean = h.index("Kernel Name"), h.index("Invocations"), h.index("Average")
    kinds = [
        ("f64 statistics and scoring (eigenvalues, log-determinants, scatters)",
         lambda k: "double" in k or "f64" in k),
        ("BatchNorm (left unfolded on the GPU by that binary)", lambda k: "bn_fw" in k),
        ("convolutions and matrix products", lambda k: any(w in k for w in ("fprop", "gemm", "conv", "Nhwc", "nhwc"))),
        ("element-wise (ReLU as clamp, residual adds, copies)", lambda k: "elementwise" in k or "copy" in k),
    ]
    total = {label: 0.0 for label, _ in kinds}
    other = 0.0
    for r in rows[head + 1:]:
        if len(r) < len(h):
            continue
        ms = int(r[count].replace(",", "")) * float(r[mean].replace(",", "")) / 1e6
        label = next((label for label, test in kinds if test(r[name])), None)
        if label:
            total[label] += ms
        else:
            other += ms
    whole = sum(total.values()) + other
    parts = ", ".join(f"{label} {ms:.1f} ms" for label, ms in total.items())
    return [
        "",
        f"GPU time of every kernel of a 200-image run (ResNet-50, TransRate and k-NN; `PROFILE=1`, "
        f"Nsight Compute, `{path}`): {whole:.1f} ms in all: {parts}, other {other:.1f} ms.",
    ]


def pass_section(path: pathlib.Path, log: pathlib.Path) -> str:
    r = json.loads(path.read_text())
    loops = r["forward_loop"]
    lines = [
        f"`{'QUICK=1 ' if r.get('quick', True) else ''}tools/perf/gpu-pass` on a lent {r['gpu'].split(',')[0]} ({r['cores']} CPU cores), "
        f"the same images and models as above, f32; figures in `{path}`. Each step of the device "
        "thread on the wall clock and on that thread's CPU clock (report.json `timing.devices`, "
        "`cpu`): a step far longer on the wall was waiting for something, not working.",
        "",
        "| run | pass images/s | forward loop images/s | pass / loop | waiting for batches (s) | "
        "uploads (s) | forwards (s) | statistics (s) | filing rows (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "r50": "ResNet-50, defaults",
        "r50-again": "ResNet-50, defaults, again",
        "r50-threads": f"ResNet-50, `threads: {r['cores']}`",
        "r50-fewer": "ResNet-50, two workers fewer",
        "r50-arenas": "ResNet-50, glibc's arena per thread (`ZS_GLIBC_ARENAS=1`)",
        "r50-b256": "ResNet-50, batches of 256",
        "zoo3": "three models, defaults",
        "zoo3-threads": f"three models, `threads: {r['cores']}`",
    }
    for name, run in r["runs"].items():
        d = run["timing"]["devices"][0]
        c = d["cpu"]
        loop = loops["zoo3" if name.startswith("zoo3") else name if name in loops else "r50"]["images_per_s"]
        step = lambda k: f"{d[k]:.2f} / {c[k]:.2f}"
        lines.append(
            f"| {names.get(name, name)} | {run['timing']['images_per_s']:,.0f} | {loop:,.0f} | "
            f"{run['pass_over_forward_loop']:.2f} | {d['waiting_for_batches_s']:.2f} | {step('uploading_s')} | "
            f"{step('forwards_s')} | {step('statistics_s')} | {step('settling_s')} |"
        )
    sides = [(n, run["timing"]["decoding"], run["timing"]["pass_s"]) for n, run in r["runs"].items()
             if run["timing"].get("decoding")]
    if sides:
        lines += ["", "The decoding side (report.json `timing.decoding`): " + "; ".join(
            f"{names.get(n, n)}: its {d['workers']} workers busy {d['decoding_s'] / d['workers']:.2f} s "
            f"each of a {p:.2f} s pass, staging memory {d['staging_s']:.2f} s, handing over waited "
            f"{d['waiting_for_workers_s']:.2f} s for the workers and {d['waiting_for_devices_s']:.2f} s "
            "for the device" for n, d, p in sides) + "."]
    if r.get("loader"):
        lines += ["", "Decoding alone (`tools/probes/loader_rate`, batch 128): " + "; ".join(
            f"{l['workers']} workers, {l.get('allocator', 'glibc arenas')}: {l['images_per_s']:,.0f} images/s"
            for l in r["loader"]) + "."]
    z = {m["model"]: m["seconds"] for m in loops["zoo3"]["models"]}
    lines += [
        "",
        "Steps are wall / CPU seconds over the pass's batches (63 of 128 images, 32 of 256). Forward loops alone, per model, for the "
        "8,000 images: " + ", ".join(f"{m} {s:.2f} s" for m, s in z.items()) + ".",
    ]
    if log.exists():
        kept = re.findall(r"load\{model=([^}]+)\}.*kept module: ([0-9.]+) s deserialising", log.read_text())
        read = re.findall(r"load\{model=([^}]+)\}.*\(([0-9.]+) s reading and checking it\)", log.read_text())
        if kept:
            lines += [
                "",
                "Where a kept module's load goes (`-v` log of a run from the module cache, "
                f"`{log}`): " + "; ".join(
                    f"{m} {float(t):.3f} s deserialising onto the GPU"
                    + "".join(f", {float(x):.3f} s reading and checking the file" for n, x in read if n == m)
                    for m, t in kept) + ".",
            ]
    return "<!-- gpu-pass:start -->\n" + "\n".join(lines) + "\n<!-- gpu-pass:end -->"


def script_section(text: str, name: str, script: str, saved: pathlib.Path) -> str:
    """`text` with the section between <!-- NAME:start --> and <!-- NAME:end --> replaced by the
    table the script prints of its saved JSON (the scripts need torch: the project's .venv)."""
    if f"<!-- {name}:start -->" not in text:
        sys.exit(f"docs/performance.md has no <!-- {name}:start --> marker")
    table = subprocess.run([".venv/bin/python", f"tools/perf/{script}", "--table", str(saved)],
                           check=True, capture_output=True, text=True).stdout.rstrip()
    part = (f"<!-- {name}:start -->\n`tools/perf/{script}`, from `{saved}`:\n\n```\n{table}\n```\n"
            f"<!-- {name}:end -->")
    return re.sub(f"<!-- {name}:start -->.*<!-- {name}:end -->", lambda _: part, text, flags=re.S)


def main() -> None:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/data/gpu-check.json")
    r = json.loads(src.read_text())
    gpu = r["gpu"].split(",")[0].strip()
    f32 = r["precision"]["f32"]
    t = f32["timing"]
    lines = [
        f"`tools/gpu-check` on a lent {r['gpu']} ({r['cores']} CPU cores), the binary built on the",
        "CPU machine (stripped; libtorch 2.11.0+cu130 from the machine's torch), random-weight",
        f"torchvision networks, {r['images']:,} synthetic 500x375 JPEGs, batch 128, TransRate; figures",
        f"in `{src}`.",
        "",
        "| ResNet-50 at 224 px, five stage layers | images/s | note |",
        "|---|---|---|",
        f"| zoo-select end to end | {f32['end_to_end_images_per_s']:,.0f} | {f32['wall_s']:.2f} s: load "
        f"{t['load_s']:.2f} s, pass {t['pass_s']:.2f} s, scoring {t['score_s']:.2f} s |",
        f"| zoo-select, the pass | {f32['pass_images_per_s']:,.0f} | decoding on the CPU cores, pinned "
        "uploads, taps, pooling, statistics on the GPU |",
        f"| forward loop alone | {f32['forward_loop_images_per_s']:,.0f} | `tools/probes/forward_limit`: "
        "decoded batches resident in pinned memory, model loading excluded |",
        f"| the Python peer, end to end | {r['peer_images_per_s']:,.0f} | DataLoader with a worker per "
        "core, hooks, NumPy TransRate |",
        "",
        f"The pass runs at {f32['pass_over_forward_loop']:.2f} of the forward loop alone (goal: 0.95).",
    ]
    for d in t.get("devices", []):
        per = lambda v: 1000 * v / max(d["batches"], 1)
        lines.append(
            f"Where the device thread's {t['pass_s']:.2f} s went ({d['batches']} batches; report.json "
            f"`timing.devices`): waiting for decoded batches {d['waiting_for_batches_s']:.2f} s, queueing "
            f"its own per-batch work {d['queueing_s']:.2f} s ({per(d['queueing_s']):.0f} ms a batch), "
            f"waiting for the GPU {d['waiting_for_device_s']:.2f} s ({per(d['waiting_for_device_s']):.0f} ms "
            f"a batch), against {1000 * 128 / f32['forward_loop_images_per_s']:.0f} ms a batch for the "
            "forward loop alone."
        )
        if "uploading_s" in d:
            lines[-1] += (
                f" Of the queueing: uploads {per(d['uploading_s']):.1f} ms a batch, the forwards "
                f"{per(d['forwards_s']):.1f} ms, the statistics {per(d['statistics_s']):.1f} ms; filing "
                f"the rows that came back {per(d['settling_s']):.1f} ms a batch."
            )
    if "loader" in r:
        one, all_ = r["loader"][0], r["loader"][-1]
        lines.append(
            f"Decoding alone (`tools/probes/loader_rate`, batch 128): {one['images_per_s']:,.0f} images/s "
            f"with one worker, {all_['images_per_s']:,.0f} with {all_['workers']} (efficiency "
            f"{all_['efficiency']:.2f}): the most the pass can reach on these cores, "
            f"{all_['images_per_s'] / f32['forward_loop_images_per_s']:.2f} of the forward loop."
        )
    lines += [
        "",
        "| precision | pass images/s | forward loop images/s | loop / f32 loop | pass / loop | TransRate moves by at most | ranking |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in ["f32", "bf16", "fp16"]:
        e = r["precision"][p]
        moved = "" if p == "f32" else f"{100 * e['transrate_worst_relative_change']:.2f} %"
        rank = "" if p == "f32" else ("unchanged" if e["ranking_unchanged"] else "changed")
        lines.append(
            f"| {p} | {e['pass_images_per_s']:,.0f} | {e['forward_loop_images_per_s']:,.0f} | "
            f"{e['forward_loop_images_per_s'] / f32['forward_loop_images_per_s']:.2f} | "
            f"{e['pass_over_forward_loop']:.2f} | {moved} | {rank} |"
        )
    load = r["loading"]
    lines += [
        "",
        "Loading three models (the first run rewrites them and keeps the modules in the cache "
        "folder; the second, over other images, computes the statistics again from the kept modules):",
        "",
        "| model | rewritten (s) | from the module cache (s) | faster |",
        "|---|---|---|---|",
    ]
    warm = {m["model"]: m for m in load["warm"]}
    for m in load["cold"]:
        w = warm.get(m["model"])
        cached = f"{w['seconds']:.2f}" + ("" if w and w["cached_module"] else " (not cached)") if w else "-"
        faster = f"{m['seconds'] / w['seconds']:.1f}x" if w else "-"
        lines.append(f"| {m['model']} | {m['seconds']:.2f} | {cached} | {faster} |")
    lines += [
        "",
        f"Each model's time excludes the device's start (CUDA context, cuDNN and cuBLAS handles: "
        f"`device::start`, once per run); the whole loading step took {load['cold_load_s']:.2f} s, then "
        f"{load['warm_load_s']:.2f} s (goal: 0.3 s per cached model).",
        "",
    ]
    c = r["cuda_vs_cpu"]
    knn_same = sum(1 for k, v in c["knn_cuda"].items() if v == c["knn_cpu"][k])
    lines.append(
        f"`device: cuda` against `device: cpu` on {c['images']} images: TransRate agrees to "
        f"{c['transrate_worst_relative_difference']:.1e} relative (worst layer; bar 1e-4; cuDNN's TF32 "
        f"convolutions account for it), and k-NN's accuracy, whose rows come back from the GPU "
        f"through pinned staging memory, is equal at {knn_same} of {len(c['knn_cpu'])} layers"
        + ("." if knn_same == len(c["knn_cpu"]) else
           f" (largest difference {max(abs(v - c['knn_cpu'][k]) for k, v in c['knn_cuda'].items()):.3f}, "
           f"{round(c['images'] * max(abs(v - c['knn_cpu'][k]) for k, v in c['knn_cuda'].items()))} image(s): "
           "the rounding of TF32 convolutions reorders near-equal neighbours).")
    )
    if "fewer_workers" in r:
        fw = r["fewer_workers"]
        lines.append(
            f"With {fw['workers']} decoding workers instead of {r['cores']}: {fw['pass_images_per_s']:,.0f} "
            "images/s during the pass."
        )
    kernels = src.parent / "gpu-kernels.csv"
    if kernels.exists():
        lines += kernel_shares(kernels)
    section = "<!-- gpu:start -->\n" + "\n".join(lines) + "\n<!-- gpu:end -->"
    doc = pathlib.Path("docs/performance.md")
    text = doc.read_text()
    if "<!-- gpu:start -->" not in text:
        sys.exit("docs/performance.md has no <!-- gpu:start --> marker")
    text = re.sub(r"<!-- gpu:start -->.*<!-- gpu:end -->", lambda _: section, text, flags=re.S)
    passes = src.parent / "gpu-pass.json"
    if passes.exists():
        if "<!-- gpu-pass:start -->" not in text:
            sys.exit("docs/performance.md has no <!-- gpu-pass:start --> marker")
        part = pass_section(passes, src.parent / "gpu-pass-zoo-warm.log")
        text = re.sub(r"<!-- gpu-pass:start -->.*<!-- gpu-pass:end -->", lambda _: part, text, flags=re.S)
    for name, script in (("gpu-profile", "gpu_profile.py"), ("gpu-decode", "gpu_decode.py")):
        saved = src.parent / f"{name}.json"
        if saved.exists():
            text = script_section(text, name, script, saved)
    doc.write_text(text)
    readme = pathlib.Path("README.md")
    passes = json.loads((src.parent / "gpu-pass.json").read_text()) if (src.parent / "gpu-pass.json").exists() else None
    if passes:  # the later measurement, at the current defaults
        run = passes["runs"]["r50"]
        pass_rate, ratio, by = run["timing"]["images_per_s"], run["pass_over_forward_loop"], "`tools/perf/gpu-pass`"
    else:
        pass_rate, ratio, by = f32["pass_images_per_s"], f32["pass_over_forward_loop"], "`tools/gpu-check`"
    summary = (
        f"<!-- gpu-readme:start -->\nOn a lent {gpu} (ResNet-50 at 224 px, {r['images']:,} JPEGs): "
        f"{pass_rate:,.0f} images/s during the pass ({by}), "
        f"{ratio:.2f} of the forward loop alone (the goal is 0.95: "
        "docs/performance.md says where the time goes and why it is not reached), "
        f"{f32['end_to_end_images_per_s'] / r['peer_images_per_s']:.1f} times the Python pipeline end "
        f"to end (`tools/gpu-check`), and `device: cuda` scores equal to the CPU's to "
        f"{r['cuda_vs_cpu']['transrate_worst_relative_difference']:.1e} relative.\n<!-- gpu-readme:end -->"
    )
    text = readme.read_text()
    readme.write_text(re.sub(r"<!-- gpu-readme:start -->.*<!-- gpu-readme:end -->", lambda _: summary,
                             text, flags=re.S))
    print(f"docs/performance.md: GPU section written from {src} ({gpu})")


if __name__ == "__main__":
    main()
