#!/usr/bin/env python3
"""The benchmark's zoo: pre-train the small source networks (once; their weights are committed
in research/benchmark/sources/ as float16) and export every model of common.ZOO_MODELS to
TorchScript with manifests in data/benchmark/zoo/, at common.RESOLUTION.

    .venv/bin/python research/benchmark/sources.py            # export (pre-trains what is missing)
    .venv/bin/python research/benchmark/sources.py --retrain  # pre-train the small networks again

Sources of the small networks, chosen to be related or unrelated to the targets:
  fmnist_5to9   Fashion-MNIST training split, classes 5-9 (sandal .. ankle boot): related to
                fmnist5 (the other five classes) and part of fmnist10_fewshot;
  fmnist_all    Fashion-MNIST training split, all ten classes: the same domain as both
                Fashion-MNIST targets (their images come from the test split);
  digits_0to4   scikit-learn digits 0-4: related to digits5 (the other five digits);
  noise         uniform noise with random labels: a network that learned nothing useful.
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
import common  # noqa: E402
import smallnet  # noqa: E402

SIZE = common.RESOLUTION


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, h, w) grey -> (N, 3, SIZE, SIZE) float, PIL bilinear resize, normalised by
    mean = std = 0.5, as zoo-select feeds these networks."""
    out = np.stack([np.asarray(Image.fromarray(img).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for img in images])
    # Contiguous NCHW: backward through torch 2.11's CPU convolutions crashes on channels-last input.
    x = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().float().div(255.0)
    return (x - 0.5) / 0.5


def source_data(name: str, rng: np.random.Generator):
    if name == "fmnist_5to9":
        images, labels = common.fmnist("train")
        idx = np.concatenate([np.flatnonzero(labels == c)[:300] for c in range(5, 10)])
        return images[idx], labels[idx] - 5, 5, 4
    if name == "fmnist_all":
        images, labels = common.fmnist("train")
        idx = np.concatenate([np.flatnonzero(labels == c)[:200] for c in range(10)])
        return images[idx], labels[idx], 10, 4
    if name == "digits_0to4":
        images, labels = common.digits()
        idx = np.flatnonzero(labels < 5)
        return images[idx], labels[idx], 5, 10
    if name == "noise":
        return rng.integers(0, 256, size=(1500, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=1500), 10, 4
    raise ValueError(name)


def pretrain(name: str, out: Path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images, labels, classes, epochs = source_data(name, rng)
    x, y = to_tensor(images), torch.from_numpy(np.asarray(labels)).long()
    model = smallnet.SmallNet(classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
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
        print(f"  {name} epoch {epoch + 1}/{epochs}: train accuracy {correct / len(y):.3f}", flush=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)


def export(src: common.Source):
    manifest = common.ZOO / f"{src.name}.yaml"
    if manifest.exists():
        return
    size = ["--input-size", str(SIZE), "--resize", str(SIZE)]
    if src.kind == "lite":
        cmd = ["--efficientnet-lite", src.arg, *([] if src.pretrained else ["--random"])]
    else:
        weights = common.SOURCES / f"{src.arg}.pt"
        state = {k: v.float() if v.is_floating_point() else v for k, v in torch.load(weights).items()}
        full = common.DATA / "weights" / f"{src.arg}.pth"
        full.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, full)
        classes = state["fc.weight"].shape[0]
        cmd = ["--module", f"smallnet:build{classes}", "--weights", str(full), "--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5", "0.5"]
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent)}
    subprocess.run(
        [sys.executable, str(common.ROOT / "scripts" / "export_zoo.py"), *cmd, *size, "--name", src.name, "--out-dir", str(common.ZOO)],
        check=True,
        env={**os.environ, **env},
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--models", default="", help="comma-separated model names (default: all)")
    args = ap.parse_args()
    wanted = {m for m in args.models.split(",") if m}
    unknown = wanted - {s.name for s in common.ZOO_MODELS}
    if unknown:
        ap.error(f"unknown models {sorted(unknown)}; the zoo is {[s.name for s in common.ZOO_MODELS]}")
    models = [s for s in common.ZOO_MODELS if not wanted or s.name in wanted]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    torch.use_deterministic_algorithms(True)
    for src in models:
        if src.kind == "small":
            weights = common.SOURCES / f"{src.arg}.pt"
            if args.retrain or not weights.exists():
                print(f"pre-training {src.name}", flush=True)
                pretrain(src.arg, weights)
    for src in models:
        export(src)
    print(f"zoo: {len(models)} models in {common.ZOO}")


if __name__ == "__main__":
    main()
