#!/usr/bin/env python3
"""Make what the graded benchmark reads: the targets as ImageFolder trees for zoo-select
(data/graded/targets/<task>/<split>/<class>/<i>.png), the pre-trained sources (committed in
weights/ as float16; pre-trained here only when missing or with --retrain) and the zoo of
TorchScript models with manifests (data/graded/zoo). Idempotent.

    .venv/bin/python research/benchmark/graded/prepare.py [--retrain] [--no-zoo]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nets  # noqa: E402
import suite  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import targets  # noqa: E402


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, h, w) grey -> (N, 3, R, R) float as zoo-select feeds these networks: RGB, PIL
    bilinear to the resolution, mean = std = 0.5. Contiguous NCHW (torch 2.11's CPU backward
    crashes on channels-last input)."""
    r = suite.RESOLUTION
    out = np.stack([np.asarray(Image.fromarray(img).convert("RGB").resize((r, r), Image.BILINEAR)) for img in images])
    x = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().float().div(255.0)
    return (x - 0.5) / 0.5


def source_data(data: str, rng: np.random.Generator):
    """(images, labels, classes, epochs) a source is pre-trained on."""
    if data == "fm10":
        images, labels = suite.fmnist_pool(1000)
        return images, labels, 10, 6
    if data == "fm_tops":
        images, labels = suite.fmnist_pool(2000)
        keep = np.isin(labels, (0, 2, 3, 4, 6))
        return images[keep], np.searchsorted(np.array([0, 2, 3, 4, 6]), labels[keep]), 5, 6
    if data == "fm_coarse":
        images, labels = suite.fmnist_pool(1000)
        return images, np.array(suite.COARSE)[labels], 3, 6
    if data == "fm10_rot":
        images, labels = suite.fmnist_pool(1000)
        return suite.transform(images, "rot90"), labels, 10, 6
    if data == "digits_0to4":
        images, labels = suite.digits()
        keep = labels < 5
        return images[keep], labels[keep], 5, 15
    if data == "fm_shuffled":
        images, _ = suite.fmnist_pool(100)
        return images, rng.integers(0, 10, size=len(images)), 10, 120
    raise ValueError(data)


def pretrain(src: suite.Source, out: Path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images, labels, classes, epochs = source_data(src.data, rng)
    x, y = to_tensor(images), torch.from_numpy(np.asarray(labels)).long()
    model = nets.build(classes, src.width)
    # Memorising shuffled labels needs no weight decay; the others are ordinary supervised runs.
    decay = 0.0 if src.data == "fm_shuffled" else 5e-4
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=decay)
    steps = epochs * ((len(y) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(y))
        correct = 0
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += (logits.argmax(1) == y[idx]).sum().item()
        if epoch + 1 == epochs or (epoch + 1) % 10 == 0:
            print(f"  {src.name} epoch {epoch + 1}/{epochs}: train accuracy {correct / len(y):.3f}", flush=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)


def load_state(src: suite.Source) -> dict:
    """The source's weights as float32: the committed pre-training, or seed 0's initialisation
    for scratch."""
    if not src.pretrained:
        torch.manual_seed(0)
        return nets.build(10, src.width).state_dict()
    state = torch.load(suite.WEIGHTS / f"{src.name}.pt")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def write_targets(task: suite.Task):
    root = suite.DATA / "targets" / task.name
    if not root.exists():
        targets.write_tree(root, suite.class_names(task), suite.task_split(task))


def export(src: suite.Source):
    zoo = suite.DATA / "zoo"
    if (zoo / f"{src.name}.yaml").exists():
        return
    state = load_state(src)
    full = suite.DATA / "weights" / f"{src.name}.pth"
    full.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, full)
    classes = state["fc.weight"].shape[0]
    r = str(suite.RESOLUTION)
    flags = ["--weights", str(full)] if src.pretrained else ["--random"]
    cmd = [sys.executable, str(suite.ROOT / "scripts" / "export_zoo.py"), "--module", f"nets:w{src.width}c{classes}", *flags,
           "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5", "0.5", "--input-size", r, "--resize", r,
           "--name", src.name, "--out-dir", str(zoo)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--no-zoo", action="store_true", help="skip the TorchScript export (fine-tuning does not need it)")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    for src in suite.SOURCES:
        weights = suite.WEIGHTS / f"{src.name}.pt"
        if src.pretrained and (args.retrain or not weights.exists()):
            print(f"pre-training {src.name} (width {src.width}) on {src.data}", flush=True)
            pretrain(src, weights)
    for task in suite.TASKS:
        write_targets(task)
    if not args.no_zoo:
        for src in suite.SOURCES:
            export(src)
    print(f"graded benchmark: {len(suite.TASKS)} tasks, {len(suite.SOURCES)} sources, protocol {suite.protocol_hash()}")


if __name__ == "__main__":
    main()
