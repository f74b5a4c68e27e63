"""The graded benchmark: targets, sources and fine-tuning protocol of the ground truth that
chooses zoo-select's recommendation rules (issue: advice that holds with few images, wide layers
and harmful sources).

Small residual networks at 32 px (one fine-tuning run takes seconds on one core), pre-trained
on sources graded the way users meet them, relative to Fashion-MNIST and digits targets:

  the target's own classes (other images)   src_fm10 for fm_tops, fm_shoes, fm10
  a coarser grouping of them                src_fm_coarse (3 groups; wide)
  other classes of the same domain          src_fm_tops for fm_shoes; src_digits for digits
  a transformed domain                      src_fm_rot (rotated 90 degrees) for unrotated
                                            targets, src_fm10 for fm10_rot and fm10_inv
  shuffled labels, memorised                src_shuffled (wide)
  nothing (scratch)                         scratch (wide, random weights)

Width is a trap laid on purpose: the harmful wide networks (shuffled, scratch) have 4x the
features of the useful narrow ones, as raw TransRate prefers width.

Every source's pre-training images are disjoint from every target's: Fashion-MNIST sources read
the first SOURCE_POOL images of each class of its training split, targets the rest (train and
validation) and its test split (test, 1,000 a class); the digits source reads digits 0-4, the
digits target digits 5-9.

Everything here enters the protocol hash, so a change to any definition starts a new ground
truth rather than mixing runs of two protocols.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import digits, fmnist  # noqa: E402  (the same images as the first benchmark reads)

ROOT = HERE.parent.parent.parent
DATA = ROOT / "data" / "graded"  # targets as PNG trees, exported zoo (not committed)
WEIGHTS = HERE / "weights"  # pre-trained sources, float16 (committed)
RUNS = HERE / "runs.csv"  # the ground truth, one fine-tuning run a line (committed)

RESOLUTION = 32
SOURCE_POOL = 3000  # first images of each Fashion-MNIST training class reserved for sources
REGIMES = {"scarce": 20, "full": 300}
COARSE = (0, 1, 0, 1, 0, 2, 0, 2, 1, 2)  # upper body / other (trouser, dress, bag) / footwear


@dataclass(frozen=True)
class Task:
    name: str
    source: str  # fmnist or digits
    classes: tuple[int, ...]  # original labels; `groups` maps them to target labels
    transform: str = "none"  # none, rot90, invert
    groups: tuple[int, ...] | None = None
    regimes: tuple[str, ...] = ("scarce", "full")
    val: int = 100  # images per class
    test: int = 1000

    @property
    def n_classes(self) -> int:
        return len(set(self.groups)) if self.groups else len(self.classes)


TASKS = [
    Task("fm_tops", "fmnist", (0, 2, 3, 4, 6)),  # fine-grained: t-shirt, pullover, dress, coat, shirt
    Task("fm_shoes", "fmnist", (1, 5, 7, 8, 9)),  # easy: trouser, sandal, sneaker, bag, boot
    Task("fm10", "fmnist", tuple(range(10))),
    Task("fm_coarse", "fmnist", tuple(range(10)), groups=COARSE),
    Task("fm10_rot", "fmnist", tuple(range(10)), transform="rot90"),
    Task("fm10_inv", "fmnist", tuple(range(10)), transform="invert"),
    Task("digits", "digits", (5, 6, 7, 8, 9), regimes=("scarce",), val=40, test=0),  # test: the rest
]


@dataclass(frozen=True)
class Source:
    name: str
    width: int  # SmallNet width: features 2w, 4w, 8w, 16w at the four stages
    data: str  # what it is pre-trained on (see pretrain.source_data); "none" is scratch

    @property
    def pretrained(self) -> bool:
        return self.data != "none"


SOURCES = [
    Source("src_fm10", 8, "fm10"),
    Source("src_fm_tops", 8, "fm_tops"),
    Source("src_fm_coarse", 16, "fm_coarse"),
    Source("src_fm_rot", 8, "fm10_rot"),
    Source("src_digits", 8, "digits_0to4"),
    Source("src_shuffled", 16, "fm_shuffled"),
    Source("scratch", 16, "none"),
]
CUTS = ("stage1", "stage2", "stage3", "stage4")  # shallow to deep; stage4 keeps every layer


@dataclass(frozen=True)
class Protocol:
    resolution: int = RESOLUTION
    optimizer: str = "SGD momentum 0.9, nesterov, weight decay 5e-4, batch 32, cosine over all steps"
    learning_rates: tuple[float, ...] = (0.02,)
    epochs: tuple = (("scarce", 40), ("full", 6))
    seeds: tuple = (("scarce", (0, 1, 2, 3, 4)), ("full", (0, 1, 2)))
    checkpoints: tuple[float, ...] = (0.5, 0.75, 1.0)
    selection: str = "the checkpoint with the best validation accuracy; its test accuracy is the ground truth"
    cut: str = "keep the pre-trained layers up to the cut, re-initialise every later layer and the head, train all"
    scratch: str = "one run a seed, standing for every cut (all of its layers are random either way)"
    normalise: str = "mean 0.5, std 0.5; grey images repeated to RGB; PIL bilinear to the resolution"
    regimes: tuple = tuple(REGIMES.items())
    tasks: tuple = tuple(asdict(t) for t in TASKS)
    sources: tuple = tuple(asdict(s) for s in SOURCES)
    cuts: tuple = CUTS
    source_pool: int = SOURCE_POOL

    def epochs_for(self, regime: str) -> int:
        return dict(self.epochs)[regime]

    def seeds_for(self, regime: str) -> tuple[int, ...]:
        return dict(self.seeds)[regime]


PROTOCOL = Protocol()


def protocol_hash() -> str:
    text = json.dumps(asdict(PROTOCOL), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------- data
def transform(images: np.ndarray, how: str) -> np.ndarray:
    if how == "rot90":
        return np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2)))
    if how == "invert":
        return 255 - images
    if how == "none":
        return images
    raise ValueError(how)


def fmnist_pool(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The sources' Fashion-MNIST images: the first `per_class` (<= SOURCE_POOL) of each class."""
    assert per_class <= SOURCE_POOL
    images, labels = fmnist("train")
    idx = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return images[idx], labels[idx]


def task_split(task: Task) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Disjoint images of a task in a fixed order, labels renumbered 0..C-1 (or grouped):
    `test`, `val` and `train_<regime>` (train_scarce is the first images of train_full)."""
    rng = np.random.default_rng(20261206)
    largest = max(REGIMES[r] for r in task.regimes)
    if task.source == "fmnist":
        pool_images, pool_labels = fmnist("train")
        test_images, test_labels = fmnist("test")
    else:
        pool_images, pool_labels = digits()
    parts: dict[str, list] = {}
    for new, old in enumerate(task.classes):
        label = task.groups[old] if task.groups else new
        idx = np.flatnonzero(pool_labels == old)
        if task.source == "fmnist":
            idx = idx[SOURCE_POOL:]
        idx = idx[rng.permutation(len(idx))]
        if len(idx) < largest + task.val + 10:
            raise SystemExit(f"{task.name}: class {old} has {len(idx)} images")
        chosen = {f"train_{r}": (pool_images, idx[: REGIMES[r]]) for r in task.regimes}
        chosen["val"] = (pool_images, idx[largest : largest + task.val])
        if task.source == "fmnist":
            t = np.flatnonzero(test_labels == old)
            chosen["test"] = (test_images, t[rng.permutation(len(t))][: task.test])
        else:
            chosen["test"] = (pool_images, idx[largest + task.val :])
        for split, (images, picked) in chosen.items():
            parts.setdefault(split, []).append((transform(images[picked], task.transform), np.full(len(picked), label)))
    return {k: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v])) for k, v in parts.items()}


FMNIST_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def class_names(task: Task) -> list[str]:
    if task.groups:
        return ["0-upper", "1-other", "2-footwear"]
    if task.source == "fmnist":
        return [f"{i}-{FMNIST_NAMES[c]}" for i, c in enumerate(task.classes)]
    return [f"{i}-digit{c}" for i, c in enumerate(task.classes)]
