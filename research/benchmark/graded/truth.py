#!/usr/bin/env python3
"""The graded benchmark's ground truth: every fine-tuning run of suite.PROTOCOL, one line each
in runs.csv beside this file (committed, so that a later session resumes where this one
stopped). Runs already there under the current protocol hash are skipped.

    .venv/bin/python research/benchmark/graded/truth.py [--shard i/n] [--limit N]

Two workers may share the file (--shard 0/2 and 1/2): each line is one append. The plan is
ordered so that a run stopped part-way leaves the most useful part done: every (target, source,
cut) with seeds 0 and 1 first (a mean and a seed-to-seed ceiling), then seed 2, then seeds 3-4
of the scarce regime; within a seed, scarce before full.
"""

import argparse
import csv
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nets  # noqa: E402
import prepare  # noqa: E402
import suite  # noqa: E402

P = suite.PROTOCOL
FIELDS = ["protocol", "task", "regime", "source", "cut", "lr", "seed", "val_acc", "test_acc", "best_epoch", "seconds"]


def planned() -> list[tuple]:
    plan = []
    for task in suite.TASKS:
        for regime in task.regimes:
            for src in suite.SOURCES:
                cuts = suite.CUTS if src.pretrained else suite.CUTS[-1:]
                for cut in cuts:
                    for lr in P.learning_rates:
                        for seed in P.seeds_for(regime):
                            plan.append((task, regime, src, cut, lr, seed))

    def priority(p):
        task, regime, src, cut, lr, seed = p
        tier = 0 if seed < 2 else 1 if seed < 3 else 2
        return (tier, seed, regime != "scarce", suite.TASKS.index(task), suite.SOURCES.index(src), suite.CUTS.index(cut), lr)

    return sorted(plan, key=priority)


@lru_cache(maxsize=None)
def tensors(task_name: str, split: str):
    task = next(t for t in suite.TASKS if t.name == task_name)
    images, labels = suite.task_split(task)[split]
    return prepare.to_tensor(images), torch.from_numpy(labels).long(), task.n_classes


@lru_cache(maxsize=None)
def source_state(name: str) -> dict:
    return prepare.load_state(next(s for s in suite.SOURCES if s.name == name))


def build(src: suite.Source, cut: str, classes: int, seed: int) -> nn.Module:
    """The source cut at `cut`: its layers up to the cut, every later stage and a new head drawn
    from `seed` (scratch: everything drawn from `seed`)."""
    torch.manual_seed(seed)
    model = nets.build(classes, src.width)
    if src.pretrained:
        state = {k: v for k, v in source_state(src.name).items() if not k.startswith("fc.")}
        keep = suite.CUTS[: suite.CUTS.index(cut) + 1]
        kept = {k: v for k, v in state.items() if k.startswith("stem.") or k.split(".")[0] in keep}
        missing, unexpected = model.load_state_dict(kept, strict=False)
        assert not unexpected, unexpected
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 500):
            correct += (model(x[i : i + 500]).argmax(1) == y[i : i + 500]).sum().item()
    return correct / len(y)


def run(task: suite.Task, regime: str, src: suite.Source, cut: str, lr: float, seed: int) -> dict:
    start = time.time()
    x, y, classes = tensors(task.name, f"train_{regime}")
    xv, yv, _ = tensors(task.name, "val")
    xt, yt, _ = tensors(task.name, "test")
    model = build(src, cut, classes, seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = math.ceil(len(y) / 32)
    epochs = P.epochs_for(regime)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    checkpoints = {max(1, round(f * epochs)) for f in P.checkpoints}
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best_val, best_state, best_epoch = -1.0, None, 0
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 32):
            idx = perm[i : i + 32]
            if len(idx) < 2:
                continue  # BatchNorm cannot train on one image
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch + 1 not in checkpoints:
            continue
        val = accuracy(model, xv, yv)
        if val > best_val:
            best_val, best_epoch = val, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {"val_acc": best_val, "test_acc": accuracy(model, xt, yt), "best_epoch": best_epoch, "seconds": round(time.time() - start, 1)}


def key(task, regime, source, cut, lr, seed) -> tuple:
    return (task, regime, source, cut, float(lr), int(seed))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shard", default="0/1", help="i/n: every n-th planned run, from the i-th")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many runs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    protocol = suite.protocol_hash()
    done = set()
    if suite.RUNS.exists():
        with open(suite.RUNS) as f:
            done = {key(r["task"], r["regime"], r["source"], r["cut"], r["lr"], r["seed"]) for r in csv.DictReader(f) if r["protocol"] == protocol}
    shard, shards = (int(v) for v in args.shard.split("/"))
    todo = [p for p in planned() if key(p[0].name, p[1], p[2].name, *p[3:]) not in done][shard::shards]
    if args.limit:
        todo = todo[: args.limit]
    print(f"protocol {protocol}: {len(done)} runs done, {len(todo)} to go in this shard", flush=True)
    if not suite.RUNS.exists():
        with open(suite.RUNS, "w", newline="") as f:
            csv.DictWriter(f, fieldnames=FIELDS).writeheader()
    started = time.time()
    for i, (task, regime, src, cut, lr, seed) in enumerate(todo):
        result = run(task, regime, src, cut, lr, seed)
        row = {"protocol": protocol, "task": task.name, "regime": regime, "source": src.name, "cut": cut, "lr": lr, "seed": seed, **result}
        with open(suite.RUNS, "a", newline="") as f:  # one line, one append: shards can share the file
            csv.DictWriter(f, fieldnames=FIELDS).writerow(row)
        left = (time.time() - started) / (i + 1) * (len(todo) - i - 1)
        print(f"[{i + 1}/{len(todo)}] {task.name}/{regime} {src.name} {cut} seed {seed}: val {result['val_acc']:.3f} "
              f"test {result['test_acc']:.3f} ({result['seconds']} s; ~{left / 60:.0f} min left)", flush=True)


if __name__ == "__main__":
    main()
