#!/usr/bin/env python3
"""Write benchmark image folders: photo-sized JPEGs and exact-size PNGs, from Fashion-MNIST.

    .venv/bin/python tools/perf/make_photos.py --out data/bench/photos-300 --images 300
    .venv/bin/python tools/perf/make_photos.py --out data/bench/png-300 --images 300 --png-photo

The photos are 500 x 375 (a typical photo of ImageNet or Pascal VOC): the garment upscaled and
tinted over a textured, noisy background, so decoding costs what a real photo costs. JPEG at
quality 90 by default; with --png-photo, the same pictures as lossless PNG, on which zoo-select
and a PIL/torchvision pipeline see identical pixels (zoo-select resamples as PIL does). Classes
are Fashion-MNIST's labels; images are taken in file order from the training split, the same
on every machine.
"""

import argparse
import gzip
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def photo(garment: np.ndarray, rng: np.random.Generator, w: int = 500, h: int = 375) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    slope = rng.normal(scale=0.15, size=(2, 3))
    background = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    texture = Image.fromarray(rng.integers(0, 256, size=(h // 4, w // 4), dtype=np.uint8))
    texture = np.asarray(texture.resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2)), np.float32)
    background += (texture[..., None] - 128) * 0.35
    side = int(h * rng.uniform(0.6, 0.95))
    item = np.asarray(Image.fromarray(garment).resize((side, side), Image.BICUBIC), np.float32) / 255.0
    tint = rng.uniform(0.3, 1.0, size=3) * 255
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    patch = background[top : top + side, left : left + side]
    background[top : top + side, left : left + side] = patch * (1 - item[..., None]) + tint * item[..., None]
    background += rng.normal(scale=6.0, size=background.shape)
    return Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=int, required=True, help="in all, spread evenly over the 10 classes")
    ap.add_argument("--png-photo", action="store_true", help="lossless PNG instead of JPEG")
    ap.add_argument("--shapes", action="store_true", help="draw ellipses (one size per class) instead of "
                    "Fashion-MNIST garments, for machines without Debian's dataset-fashion-mnist")
    args = ap.parse_args()

    rng = np.random.default_rng(7)
    if args.shapes:
        per = args.images // len(CLASSES) + 1
        yy, xx = np.mgrid[0:28, 0:28]
        images, labels = [], []
        for c in range(len(CLASSES)):
            for _ in range(per):
                ry, rx = 3 + c + rng.uniform(0, 2), 12 - c + rng.uniform(0, 2)
                images.append((((yy - 14) / ry) ** 2 + ((xx - 14) / rx) ** 2 < 1).astype(np.uint8) * 255)
                labels.append(c)
        images, labels = np.stack(images), np.array(labels)
    else:
        images = read_idx(SOURCE / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        labels = read_idx(SOURCE / "train-labels-idx1-ubyte.gz", 8)
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    per_class = args.images // len(CLASSES)
    for c, name in enumerate(CLASSES):
        folder = tmp / name
        folder.mkdir(parents=True)
        for i in np.flatnonzero(labels == c)[:per_class]:
            img = photo(images[i], rng)
            if args.png_photo:
                img.save(folder / f"{i:05d}.png")
            else:
                img.save(folder / f"{i:05d}.jpg", quality=90)
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"wrote {per_class * len(CLASSES)} images under {args.out}")


if __name__ == "__main__":
    main()
