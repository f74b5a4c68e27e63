"""What the transferability benchmark is made of: its target tasks, its zoo of source models and
its fine-tuning protocol. Everything else in scripts/benchmark/ imports these definitions, so the
protocol hash in the ground-truth CSV changes whenever any of them does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "data" / "benchmark"
ZOO = DATA / "zoo"
SOURCES = Path(__file__).resolve().parent / "sources"  # committed small-network weights
GROUND_TRUTH = Path(__file__).resolve().parent / "ground_truth.csv"
FMNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]

# Every model sees RESOLUTION x RESOLUTION images, scored and fine-tuned alike: the sources are
# 28 x 28 or 8 x 8 pictures, and a common, modest resolution keeps the ground truth affordable
# on a CPU.
RESOLUTION = 96


@dataclass(frozen=True)
class Task:
    name: str
    source: str  # "fmnist" or "digits"
    classes: tuple[int, ...]
    train: int  # images per class
    val: int
    test: int


TASKS = [
    Task("fmnist5", "fmnist", (0, 1, 2, 3, 4), train=50, val=20, test=100),
    Task("digits5", "digits", (5, 6, 7, 8, 9), train=50, val=20, test=100),
    Task("fmnist10_fewshot", "fmnist", tuple(range(10)), train=20, val=10, test=100),
]


@dataclass(frozen=True)
class Source:
    """A model of the zoo. `kind` is lite (EfficientNet-Lite, variant in `arg`) or small (the
    benchmark's own SmallNet, pre-trained on `arg`); `weights` says pretrained, random or the
    source task."""

    name: str
    kind: str
    arg: str
    pretrained: bool
    cuts: tuple[str, ...]  # candidate layers, shallow to deep; the last keeps everything


# The blocks closing stages 2, 3, 5 and 7, and the head's activation (as scripts/export_zoo.py).
LITE_CUTS = {
    "0": ("_blocks.2", "_blocks.4", "_blocks.10", "_blocks.15", "_swish"),
    "1": ("_blocks.3", "_blocks.6", "_blocks.14", "_blocks.20", "_swish"),
    "2": ("_blocks.3", "_blocks.6", "_blocks.14", "_blocks.20", "_swish"),
}
SMALL_CUTS = ("stage1", "stage2", "stage3", "stage4")

ZOO_MODELS = [
    *(Source(f"lite{v}", "lite", v, True, LITE_CUTS[v]) for v in "012"),
    *(Source(f"lite{v}_random", "lite", v, False, LITE_CUTS[v]) for v in "012"),
    Source("small_fmnist_5to9", "small", "fmnist_5to9", True, SMALL_CUTS),
    Source("small_fmnist_all", "small", "fmnist_all", True, SMALL_CUTS),
    Source("small_digits_0to4", "small", "digits_0to4", True, SMALL_CUTS),
    Source("small_noise", "small", "noise", True, SMALL_CUTS),
]

# Layer selection is measured on one ImageNet network and on the two SmallNets whose source task
# is far from one target and near the other; each cut costs a fine-tuning run per learning rate
# and seed, so the deeper Lite1/2 are measured whole only.
LAYER_MODELS = ["lite0", "small_fmnist_5to9", "small_digits_0to4"]


@dataclass(frozen=True)
class Protocol:
    resolution: int = RESOLUTION
    optimizer: str = "SGD momentum 0.9, nesterov, weight decay 1e-4"
    learning_rates: tuple[float, ...] = (0.01, 0.001)
    epochs: int = 10
    batch_size: int = 32
    schedule: str = "cosine over all steps"
    batchnorm: str = "momentum 0.1 in every BatchNorm (EfficientNet-Lite keeps TF's 0.01, with which re-initialised layers keep their initial running statistics)"
    selection: str = "the epoch and learning rate with the best validation accuracy; its test accuracy is the ground truth"
    seeds: tuple[int, ...] = (0, 1)
    cut: str = "keep the pretrained layers up to the cut, re-initialise every later parameterised layer and the head"
    tasks: tuple = tuple(asdict(t) for t in TASKS)
    zoo: tuple = tuple(asdict(s) for s in ZOO_MODELS)
    layer_models: tuple = tuple(LAYER_MODELS)


PROTOCOL = Protocol()


def protocol_hash() -> str:
    text = json.dumps(asdict(PROTOCOL), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------- data
def _idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def fmnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = _idx(FMNIST / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(FMNIST / f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return images, labels


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8 x 8 handwritten digits, scaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    return images, d.target.astype(np.int64)


def task_split(task: Task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint train / val / test images of a task, labels renumbered 0..C-1, in a fixed order.
    Fashion-MNIST tasks draw from its test split (the small sources pre-train on its training
    split); digits 5-9 are disjoint from the digits 0-4 a source pre-trains on."""
    images, labels = fmnist("test") if task.source == "fmnist" else digits()
    rng = np.random.default_rng(12345)
    out = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for new, old in enumerate(task.classes):
        idx = np.flatnonzero(labels == old)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for split, count in (("train", task.train), ("val", task.val), ("test", task.test)):
            chosen = idx[start : start + count]
            if len(chosen) < count:
                raise SystemExit(f"{task.name}: class {old} has too few images for {split}")
            out[split][0].append(images[chosen])
            out[split][1].append(np.full(count, new))
            start += count
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


def class_names(task: Task) -> list[str]:
    if task.source == "fmnist":
        return [f"{i}-{FMNIST_CLASSES[c]}" for i, c in enumerate(task.classes)]
    return [f"{i}-digit{c}" for i, c in enumerate(task.classes)]
