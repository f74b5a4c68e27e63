"""The graded benchmark's networks: research/benchmark/smallnet.py's SmallNet at a chosen width
and class count. `w16c10` is SmallNet(classes=10, width=16); export_zoo.py's
`--module nets:w16c10` builds one (with this folder on PYTHONPATH)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from smallnet import SmallNet  # noqa: E402


def build(classes: int, width: int) -> SmallNet:
    return SmallNet(classes, width)


def __getattr__(name: str):
    if name.startswith("w") and "c" in name:
        width, classes = name[1:].split("c", 1)
        if width.isdigit() and classes.isdigit():
            return lambda: SmallNet(int(classes), int(width))
    raise AttributeError(name)
