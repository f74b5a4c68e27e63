#!/usr/bin/env python3
"""Write the benchmark's target tasks as ImageFolder trees:

    data/benchmark/targets/<task>/{train_scarce,train_full,val,test}/<class>/<index>.png

(a train_<regime> folder for each regime of the task; train_scarce holds the first images of
train_full).

Images keep their own size (28 x 28 Fashion-MNIST, 8 x 8 digits); every model resizes them to
common.RESOLUTION, zoo-select and the fine-tuning alike. Idempotent: existing trees are kept.
"""

import shutil
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def write(task: common.Task, force: bool = False) -> Path:
    root = common.DATA / "targets" / task.name
    if root.exists() and not force:
        return root
    return write_tree(root, common.class_names(task), common.task_split(task))


def write_tree(root: Path, names: list[str], splits: dict) -> Path:
    """Writes `splits` ({split: (images, labels)}) as <root>/<split>/<class name>/<i>.png,
    through a temporary folder renamed at the end, so a killed write leaves no half tree."""
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, (images, labels) in splits.items():
        for i, (img, label) in enumerate(zip(images, labels)):
            folder = tmp / split / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}.png")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def main():
    for task in common.TASKS:
        root = write(task, force="--force" in sys.argv)
        splits = [f"train_{r}" for r in task.regimes] + ["val", "test"]
        counts = {s: sum(1 for _ in (root / s).rglob("*.png")) for s in splits}
        print(f"{task.name}: {counts} under {root}")


if __name__ == "__main__":
    main()
