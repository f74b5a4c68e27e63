"""What the transferability benchmark is made of: its target tasks, its zoo of source models and
its fine-tuning protocol. Everything else in research/benchmark/ imports these definitions, so the
protocol hash in the ground-truth CSV changes whenever any of them does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import asdict, dataclass
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
# on a CPU (64 px: a Lite0 training step costs half of one at 96 px, an evaluation 40 %).
RESOLUTION = 64


# The two amounts of target data a recommendation must tell apart (the TransRate paper's
# Figure 1(b): the best cut moves with n). Training sets are nested: the scarce one is the first
# images of the full one.
REGIMES = {"scarce": 20, "full": 300}


@dataclass(frozen=True)
class Task:
    """A target task. `regimes` are the training-set sizes (images per class) it is fine-tuned
    and scored at; a (task, regime) pair is one target of the tables, and leave-one-target-out
    holds out a task with all its regimes."""

    name: str
    source: str  # "fmnist" or "digits"
    classes: tuple[int, ...]
    regimes: tuple[str, ...]
    val: int  # images per class
    test: int

    def train(self, regime: str) -> int:
        return REGIMES[regime]

    def target(self, regime: str) -> str:
        return f"{self.name}/{regime}"


# Fashion-MNIST targets take their test images from its test split (1,000 per class, all of
# them) and their training and validation images from its training split after the first 300 of
# each class, which the SmallNet sources pre-train on. The digits have ~180 images per class:
# scarce only, and the test set is what is left.
TASKS = [
    Task("fmnist5", "fmnist", (0, 1, 2, 3, 4), ("scarce", "full"), val=200, test=1000),
    Task("fmnist5to9", "fmnist", (5, 6, 7, 8, 9), ("scarce", "full"), val=200, test=1000),
    Task("digits5", "digits", (5, 6, 7, 8, 9), ("scarce",), val=50, test=100),
    Task("fmnist10", "fmnist", tuple(range(10)), ("scarce",), val=200, test=1000),
]
# First image of each class's training split that targets may use: the sources read 300 at most.
FMNIST_SOURCE_IMAGES = 300


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
    # The earlier protocol (c0ce98174d927abf) also tried 0.001: 0.01 had the better validation
    # accuracy in all 60 of its configurations, so the grid's second point bought nothing.
    learning_rates: tuple[float, ...] = (0.01,)
    # The same number of optimiser steps in both regimes would starve the scarce one of passes
    # over its few images; these give 120 steps (scarce, 5 classes) and 282 (full).
    epochs: tuple = (("scarce", 30), ("full", 6))
    batch_size: int = 32
    schedule: str = "cosine over all steps"
    batchnorm: str = "momentum 0.1 in every BatchNorm (EfficientNet-Lite keeps TF's 0.01, with which re-initialised layers keep their initial running statistics)"
    # Validation at half, three quarters and all of training (a pass over 1,000 validation images
    # after every epoch would cost more than the training itself on a CPU).
    checkpoints: tuple[float, ...] = (0.5, 0.75, 1.0)
    selection: str = "the checkpoint (and learning rate) with the best validation accuracy; its test accuracy is the ground truth"
    seeds: tuple = (("scarce", (0, 1, 2, 3, 4)), ("full", (0, 1, 2)))
    cut: str = "keep the pretrained layers up to the cut, re-initialise every later parameterised layer and the head"
    regimes: tuple = tuple(REGIMES.items())
    tasks: tuple = tuple(asdict(t) for t in TASKS)
    zoo: tuple = tuple(asdict(s) for s in ZOO_MODELS)
    layer_models: tuple = tuple(LAYER_MODELS)
    source_images: int = FMNIST_SOURCE_IMAGES

    def epochs_for(self, regime: str) -> int:
        return dict(self.epochs)[regime]

    def seeds_for(self, regime: str) -> tuple[int, ...]:
        return dict(self.seeds)[regime]


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
    """Disjoint images of a task, labels renumbered 0..C-1, in a fixed order: `test`, `val` and
    one training split per regime (`train_scarce` is the first images of `train_full`).
    Fashion-MNIST tasks draw test images from its test split and the rest from its training
    split past the images the SmallNet sources pre-train on; digits 5-9 are disjoint from the
    digits 0-4 a source pre-trains on."""
    rng = np.random.default_rng(12345)
    largest = max(task.train(r) for r in task.regimes)
    out: dict[str, tuple[list, list]] = {"val": ([], []), "test": ([], [])}
    for r in task.regimes:
        out[f"train_{r}"] = ([], [])
    if task.source == "fmnist":
        pool_images, pool_labels = fmnist("train")
        test_images, test_labels = fmnist("test")
    else:
        pool_images, pool_labels = digits()
        test_images = test_labels = None
    for new, old in enumerate(task.classes):
        idx = np.flatnonzero(pool_labels == old)
        if task.source == "fmnist":
            idx = idx[FMNIST_SOURCE_IMAGES:]
        idx = idx[rng.permutation(len(idx))]
        need = largest + task.val + (0 if test_images is not None else task.test)
        if len(idx) < need:
            raise SystemExit(f"{task.name}: class {old} has {len(idx)} images, {need} needed")
        train, rest = idx[:largest], idx[largest:]
        chosen = {"val": (pool_images, rest[: task.val])}
        for r in task.regimes:
            chosen[f"train_{r}"] = (pool_images, train[: task.train(r)])
        if test_images is not None:
            t = np.flatnonzero(test_labels == old)
            chosen["test"] = (test_images, t[rng.permutation(len(t))][: task.test])
            if len(chosen["test"][1]) < task.test:
                raise SystemExit(f"{task.name}: class {old} has too few test images")
        else:
            chosen["test"] = (pool_images, rest[task.val : task.val + task.test])
        for split, (images, picked) in chosen.items():
            out[split][0].append(images[picked])
            out[split][1].append(np.full(len(picked), new))
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in out.items()}


def class_names(task: Task) -> list[str]:
    if task.source == "fmnist":
        return [f"{i}-{FMNIST_CLASSES[c]}" for i, c in enumerate(task.classes)]
    return [f"{i}-digit{c}" for i, c in enumerate(task.classes)]


def write_section(doc: Path, begin: str, end: str, text: str) -> None:
    """Replaces what stands between the markers `begin` and `end` of `doc` with `text` (generated
    tables live between such markers, so a rerun never touches the prose around them)."""
    body = doc.read_text()
    if begin not in body or end not in body:
        raise SystemExit(f"{doc} lacks the markers {begin} and {end}")
    doc.write_text(body[: body.index(begin)] + f"{begin}\n{text}{end}" + body[body.index(end) + len(end):])
