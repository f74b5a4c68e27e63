#!/usr/bin/env python3
"""Regenerate the benchmark's ground truth: every fine-tuning run of the protocol, written to
research/benchmark/ground_truth.csv (committed). Resumable: finished runs are kept in
data/benchmark/runs.csv and skipped, so the job can be stopped and restarted.

    .venv/bin/python research/benchmark/ground_truth.py [--tasks fmnist5,...] [--models lite0,...]

On a lent GPU (no zoo there: see gpu_payload.py) shards of the plan run side by side, appending
to one runs file:

    python3 research/benchmark/ground_truth.py --device cuda --payload gpu/payload --shard 3/12 --runs runs.csv

Model selection: every zoo model on every target (task and regime), fine-tuned whole (cut = its
last layer). Layer selection: the networks of common.LAYER_MODELS cut at each of their candidate
layers. Each at every learning rate of the grid and every seed of the regime.

The plan is ordered so that a run stopped part-way (a CPU budget) leaves the most useful part
done: first the layer networks' cuts in both regimes with two seeds (enough for a mean and a
seed-to-seed ceiling), then their third seed, then the other pretrained models in the scarce
regime with three seeds, then everything else; within a tier seed by seed, scarce before full,
SmallNets before Lites. --cheap-full skips Lites in the full regime except the
layer network (the full regime costs ~15x the scarce one per run).
"""

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import finetune  # noqa: E402

FIELDS = ["protocol", "task", "regime", "model", "cut", "lr", "seed", "val_acc", "test_acc", "best_epoch", "seconds", "device"]


def planned(tasks, models, cheap_full: bool = False):
    by_name = {s.name: s for s in common.ZOO_MODELS}
    P = common.PROTOCOL
    plan = []
    for task in common.TASKS:
        if tasks and task.name not in tasks:
            continue
        for regime in task.regimes:
            for src in common.ZOO_MODELS:
                if models and src.name not in models:
                    continue
                if cheap_full and regime == "full" and src.kind == "lite" and src.name not in common.LAYER_MODELS:
                    continue
                cuts = src.cuts if src.name in common.LAYER_MODELS else src.cuts[-1:]
                for cut in cuts:
                    for lr in P.learning_rates:
                        for seed in P.seeds_for(regime):
                            plan.append((task, regime, by_name[src.name], cut, lr, seed))

    def priority(p):
        task, regime, src, cut, lr, seed = p
        layer_net = src.name in common.LAYER_MODELS
        tier = (0 if layer_net and seed < 2 else 1 if layer_net and seed < 3 else
                2 if regime == "scarce" and seed < 3 and src.pretrained else 3)
        return (tier, seed, regime != "scarce", src.kind != "small", common.TASKS.index(task), src.name, src.cuts.index(cut), lr)

    return sorted(plan, key=priority)


def key(row) -> tuple:
    return (row["protocol"], row["task"], row.get("regime") or "", row["model"], row["cut"], float(row["lr"]), int(row["seed"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    ap.add_argument("--models", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--cheap-full", action="store_true", help="in the full regime, fine-tune only the layer networks' Lite (CPU budget)")
    ap.add_argument("--payload", type=Path, help="weights folder made by gpu_payload.py, instead of the zoo")
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th planned run, starting at the i-th")
    ap.add_argument("--merge", type=Path, help="add the runs of another runs file (a GPU machine's) not done here")
    ap.add_argument("--runs", type=Path, default=common.DATA / "runs.csv", help="the resumable runs file")
    args = ap.parse_args()
    finetune.DEVICE = torch.device(args.device)
    finetune.PAYLOAD = args.payload
    shard, shards = (int(v) for v in args.shard.split("/"))
    tasks = {t for t in args.tasks.split(",") if t}
    models = {m for m in args.models.split(",") if m}
    protocol = common.protocol_hash()
    runs_path = args.runs
    done = {}
    if runs_path.exists():
        with open(runs_path) as f:
            reader = csv.DictReader(f)
            done = {key(r): {**r, "device": r.get("device") or "cpu"} for r in reader}  # runs from before the column
            header = reader.fieldnames
        if header != FIELDS:
            with open(runs_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(done.values())
    if args.merge:
        with open(args.merge) as f:
            new = [r for r in csv.DictReader(f) if key(r) not in done]
        with open(runs_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=FIELDS).writerows(new)
        done.update((key(r), r) for r in new)
        print(f"merged {len(new)} runs from {args.merge}")
    todo = [p for p in planned(tasks, models, args.cheap_full) if (protocol, p[0].name, p[1], p[2].name, p[3], p[4], p[5]) not in done]
    todo = todo[shard::shards]
    print(f"protocol {protocol}: {len(done)} runs done, {len(todo)} to go", flush=True)
    new_file = not runs_path.exists()
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(runs_path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for i, (task, regime, src, cut, lr, seed) in enumerate(todo):
            result = finetune.run(task, regime, src, cut, seed, lr)
            row = {"protocol": protocol, "task": task.name, "regime": regime, "model": src.name, "cut": cut, "lr": lr, "seed": seed, **result,
                   "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"}
            writer.writerow(row)
            f.flush()
            done[key(row)] = row
            left = (time.time() - started) / (i + 1) * (len(todo) - i - 1)
            print(f"[{i + 1}/{len(todo)}] {task.name}/{regime} {src.name} {cut} lr {lr} seed {seed}: "
                  f"val {result['val_acc']:.3f} test {result['test_acc']:.3f} ({result['seconds']} s; ~{left / 60:.0f} min left)",
                  flush=True)
    rows = sorted((r for r in done.values() if r["protocol"] == protocol),
                  key=lambda r: (r["task"], r["regime"], r["model"], r["cut"], float(r["lr"]), int(r["seed"])))
    if shards > 1:
        return  # the shards' runs file is merged where the zoo lives
    with open(common.GROUND_TRUTH, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} runs to {common.GROUND_TRUTH}")


if __name__ == "__main__":
    main()
