#!/usr/bin/env python3
"""Writes docs/performance.md's GPU section from the JSON that scripts/gpu-check made on a lent GPU.

    python3 scripts/perf/gpu_table.py docs/data/gpu-check.json

Replaces what lies between <!-- gpu:start --> and <!-- gpu:end -->.
"""

import json
import pathlib
import re
import sys


def main() -> None:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "docs/data/gpu-check.json")
    r = json.loads(src.read_text())
    gpu = r["gpu"].split(",")[0].strip()
    f32 = r["precision"]["f32"]
    t = f32["timing"]
    lines = [
        f"`scripts/gpu-check` on a lent {r['gpu']} ({r['cores']} CPU cores), the binary built on the",
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
        f"| forward loop alone | {f32['forward_loop_images_per_s']:,.0f} | `examples/forward_limit`: "
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
            f"Decoding alone (`examples/loader_rate`, batch 128): {one['images_per_s']:,.0f} images/s "
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
    section = "<!-- gpu:start -->\n" + "\n".join(lines) + "\n<!-- gpu:end -->"
    doc = pathlib.Path("docs/performance.md")
    text = doc.read_text()
    if "<!-- gpu:start -->" not in text:
        sys.exit("docs/performance.md has no <!-- gpu:start --> marker")
    doc.write_text(re.sub(r"<!-- gpu:start -->.*<!-- gpu:end -->", lambda _: section, text, flags=re.S))
    readme = pathlib.Path("README.md")
    summary = (
        f"<!-- gpu-readme:start -->\nOn a lent {gpu} (ResNet-50 at 224 px, {r['images']:,} JPEGs, "
        f"`scripts/gpu-check`): {f32['pass_images_per_s']:,.0f} images/s during the pass, "
        f"{f32['pass_over_forward_loop']:.2f} of the forward loop alone (the goal is 0.95: "
        "docs/performance.md says where the time goes), "
        f"{f32['end_to_end_images_per_s'] / r['peer_images_per_s']:.1f} times the Python pipeline end "
        f"to end, and `device: cuda` scores equal to the CPU's to "
        f"{r['cuda_vs_cpu']['transrate_worst_relative_difference']:.1e} relative.\n<!-- gpu-readme:end -->"
    )
    text = readme.read_text()
    readme.write_text(re.sub(r"<!-- gpu-readme:start -->.*<!-- gpu-readme:end -->", lambda _: summary,
                             text, flags=re.S))
    print(f"docs/performance.md: GPU section written from {src} ({gpu})")


if __name__ == "__main__":
    main()
