#!/usr/bin/env python3
"""Write the demo's target task: Fashion-MNIST images as an ImageFolder tree of PNG files.

    .venv/bin/python scripts/make_demo_data.py [--per-class 100] [--split test] [--out data/fashion-mnist-demo]
        [--groups G]

With --groups G, each class is split into G pseudo-classes (`<class>-<g>`, image j of the class
in group j mod G): 10 G classes, for measuring many-class targets (tools/many_classes).

Reads Debian's package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, MIT licence,
(c) Zalando SE); takes the first N images of each class in file order, so the tree is the same on
every machine. 28 x 28 greyscale, one sub-folder per class.
"""

import argparse
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
ROOT = Path(__file__).resolve().parent.parent


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--split", choices=["train", "test"], default="test")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "fashion-mnist-demo")
    ap.add_argument("--groups", type=int, default=1)
    args = ap.parse_args()

    prefix = "train" if args.split == "train" else "t10k"
    images_gz, labels_gz = SOURCE / f"{prefix}-images-idx3-ubyte.gz", SOURCE / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_gz.exists():
        sys.exit(f"error: {images_gz} not found; install it with: apt-get install dataset-fashion-mnist")
    images = read_idx(images_gz, 16).reshape(-1, 28, 28)
    labels = read_idx(labels_gz, 8)
    # Written beside the target and renamed at the end, so an interrupted run leaves no half tree.
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    written = 0
    for c, name in enumerate(CLASSES):
        for j, i in enumerate(np.flatnonzero(labels == c)[: args.per_class]):
            folder = tmp / (name if args.groups == 1 else f"{name}-{j % args.groups:03d}")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{args.split}_{i:05d}.png")
            written += 1
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"wrote {written} images in {len(CLASSES) * args.groups} classes under {args.out}")


if __name__ == "__main__":
    main()
