#!/usr/bin/env python3
"""Turn the runs of tools/bench into docs/performance.md (printed on stdout)."""

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

out, n = Path(sys.argv[1]), int(sys.argv[2])


def time_v(label):
    text = (out / f"{label}.time").read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", text).group(1).strip()
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return seconds, rss / 1024


def last_json(label):
    for line in reversed((out / f"{label}.out").read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no JSON in {out}/{label}.out: see {out}/{label}.err")


def run(name):
    zs_wall, zs_rss = time_v(f"{name}.zoo-select")
    report = json.loads((out / f"{name}-report" / "report.json").read_text())
    images = report["dataset"]["images"]
    peer_wall, peer_rss = time_v(f"{name}.peer")
    peer = last_json(f"{name}.peer")
    _, limit_rss = time_v(f"{name}.limit")
    limit = last_json(f"{name}.limit")
    return {
        "name": name,
        "images": images,
        "zs": (zs_wall, images / zs_wall, zs_rss),
        "pass_ips": report["timing"]["images_per_s"],
        "score_share": report["timing"]["score_s"] / zs_wall,
        "peer": (peer_wall, images / peer_wall, peer_rss),
        "limit": (limit["seconds"], limit["images_per_s"], limit_rss),
        "limit_models": limit["models"],
        "report": report,
        "peer_scores": peer["transrate"],
    }


def cpu():
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s+(.+)", info).group(1)
    except Exception:
        model = platform.processor()
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    import os

    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


runs = [run(f"jpeg-{n}"), run(f"jpeg-{4 * n}"), run(f"png-{n}"), run("demo"), run("small")]
titles = {
    f"jpeg-{n}": f"{n} JPEG photos 500x375",
    f"jpeg-{4 * n}": f"{4 * n} JPEG photos 500x375",
    f"png-{n}": f"{n} PNG photos 500x375",
    "demo": "1000 demo PNGs 28x28",
    "small": "1000 JPEG photos 500x375, three ResNet-18 at 112 px",
}
import torch  # noqa: E402

print(f"Measured by `./tools/bench {n}` on {cpu()}; libtorch {torch.__version__}, CPU only.")
print("Zoo: resnet18 (random weights), mobilenet_v3_large (random weights), EfficientNet-Lite0")
print("(ImageNet weights), each at 224 x 224 with its own resize (256, 232, 256), interpolation and")
print("normalisation; 5 stage layers each; TransRate; batch 32.\n")
print("- **zoo-select**: `zoo-select --config ...`, end to end (start, model loading, the pass, scoring, report).")
print("- **peer**: `tools/perf/peer.py`, the pipeline users write today: a torchvision ImageFolder")
print("  (PIL decode, Resize, CenterCrop, ToTensor, Normalize), a DataLoader with one worker per core,")
print("  each eager model with forward hooks in its own pass, every pooled feature kept, TransRate in NumPy.")
print("- **limit**: `tools/probes/forward_limit.rs`, the same models' own forward (no taps, no statistics)")
print("  on images already decoded and resized in memory, channels-last as zoo-select feeds them.\n")
print("images/s is images / wall time for zoo-select and the peer, images / forward time for the limit.\n")
print("| images | pipeline | wall s | images/s | peak RSS MB | zoo-select / this |")
print("|---|---|---:|---:|---:|---:|")
for r in runs:
    zs_ips = r["zs"][1]
    for label, key in [("zoo-select", "zs"), ("peer", "peer"), ("forward-only limit", "limit")]:
        wall, ips, rss = r[key]
        ratio = "" if key == "zs" else f"{zs_ips / ips:.2f}"
        print(f"| {titles[r['name']]} | {label} | {wall:.1f} | {ips:.1f} | {rss:.0f} | {ratio} |")
print()

small, large = runs[0], runs[1]
bf16_wall, bf16_rss = time_v(f"bf16-{4 * n}.zoo-select")
bf16 = json.loads((out / f"bf16-{4 * n}-report" / "report.json").read_text())
f32 = large["report"]
diffs = [
    abs(a["scores"]["transrate"] - b["scores"]["transrate"]) / abs(b["scores"]["transrate"])
    for a, b in zip(bf16["results"], f32["results"])
    if abs(b["scores"]["transrate"]) > 0.01
]
same_order = [r["model"] + r["layer"] for r in sorted(bf16["results"], key=lambda r: -r["scores"]["transrate"])] == [
    r["model"] + r["layer"] for r in sorted(f32["results"], key=lambda r: -r["scores"]["transrate"])
]
print("## Opt-in reduced precision\n")
flags = Path("/proc/cpuinfo").read_text()
native = "avx512_bf16" in flags or "amx_bf16" in flags
cpu_bf16 = "this CPU has AVX-512 BF16" if native else "this CPU has no bf16 instructions (no avx512_bf16 or amx_bf16 flag), so libtorch emulates them"
print(f"`precision: bf16` ({cpu_bf16}) on the {4 * n} JPEGs: {bf16_wall:.1f} s wall, "
      f"{large['images'] / bf16_wall:.1f} images/s ({large['zs'][0] / bf16_wall:.2f} times the f32 run, "
      f"{large['images'] / bf16_wall / large['peer'][1]:.2f} times the peer), peak RSS {bf16_rss:.0f} MB.")
print(f"TransRate moves by at most {100 * max(diffs):.2f} % (scores above 0.01); the ranking of the "
      f"{len(f32['results'])} (model, layer) pairs is {'unchanged' if same_order else 'changed'}.")
print("Statistics stay f64; only the networks run in bf16. `fp16` is the same switch for GPUs.\n")

print("## The bars\n")
print(f"- zoo-select / peer throughput: {small['zs'][1] / small['peer'][1]:.2f} at N = {n}, "
      f"{large['zs'][1] / large['peer'][1]:.2f} at 4N (bar: 2).")
print(f"- zoo-select / forward-only limit: {small['zs'][1] / small['limit'][1]:.2f} at N, "
      f"{large['zs'][1] / large['limit'][1]:.2f} at 4N end to end; during the pass alone "
      f"{small['pass_ips'] / small['limit'][1]:.2f} and {large['pass_ips'] / large['limit'][1]:.2f} (bar: 0.85).")
small_inputs = runs[4]
print(f"- small inputs (three ResNet-18 at 112 px, 1000 JPEGs): zoo-select / peer throughput "
      f"{small_inputs['zs'][1] / small_inputs['peer'][1]:.2f} (bar: 2).")
t = small_inputs["report"]["timing"]
forward = sum(m["seconds"] for m in small_inputs["limit_models"])
dev = t["devices"][0] if t.get("devices") else None
optimised = sum(m.get("optimized", False) for m in t.get("models", []))
bar_wall = small_inputs["peer"][0] / 2
if small_inputs["zs"][0] <= bar_wall:
    verdict = f": met, with {bar_wall - small_inputs['zs'][0]:.1f} s to spare."
elif bar_wall < forward + t["load_s"]:
    verdict = (": less than the forwards plus loading, so on this machine it cannot be met without "
               "cheaper preprocessing than torchvision's (decoding JPEGs at reduced DCT scale would "
               "change the pixels the models see) or a faster forward.")
else:
    verdict = (", within reach of the forwards plus loading, but not met in this run (decoding "
               "shares the two cores with the forwards).")
print(f"  Where its {small_inputs['zs'][0]:.1f} s went: loading {t['load_s']:.1f} s (three cold "
      f"rewrites; {optimised} of 3 modules optimised for oneDNN), the pass {t['pass_s']:.1f} s"
      + (f" (the device thread waited only {dev['waiting_for_batches_s']:.2f} s for decoded "
         "batches)" if dev else "")
      + f". The three forwards alone, on images decoded beforehand, take {forward:.1f} s; the pass's "
      f"{t['pass_s'] - forward:.1f} s beyond them is decoding (on the same cores), taps, pooling and "
      f"the statistics. The bar needs a wall time of {bar_wall:.1f} s" + verdict)
print(f"- peak RSS at 4N / at N: zoo-select {large['zs'][2] / small['zs'][2]:.3f}, "
      f"peer {large['peer'][2] / small['peer'][2]:.3f} (bar: 1.10 for zoo-select).")
print(f"- scoring step: {100 * max(r['score_share'] for r in runs):.2f} % of the wall time at most (bar: 5 %).")

def agreement(r):
    """Worst relative difference of TransRate against the peer over scores above 0.01, and worst
    absolute difference over the rest."""
    worst_rel, worst_abs = 0.0, 0.0
    for row in r["report"]["results"]:
        ours = row["scores"]["transrate"]
        theirs = r["peer_scores"][row["model"]][row["layer"]]
        if abs(theirs) > 0.01:
            worst_rel = max(worst_rel, abs(ours - theirs) / abs(theirs))
        else:
            worst_abs = max(worst_abs, abs(ours - theirs))
    return worst_rel, worst_abs


worst_rel, worst_abs = agreement(runs[2])
print(f"- TransRate on the PNG photos, where both pipelines see identical pixels: worst relative")
print(f"  difference {worst_rel:.1e} over the scores above 0.01, worst absolute difference {worst_abs:.1e}")
print(f"  on the rest (the random networks' deep features are nearly constant) (bar: 1e-4 relative).")
worst_rel, worst_abs = agreement(runs[0])
print(f"- On the {n} JPEG photos, which zoo-select decodes with libjpeg-turbo as Pillow does: worst "
      f"relative")
print(f"  difference {worst_rel:.1e}, worst absolute difference {worst_abs:.1e} on the rest.")
