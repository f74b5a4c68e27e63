"""Shared fixtures: the checkout's demo data, zoo and binary, which ./scripts/test makes first
(bootstrap), and one run of each kind reused by the tests that read it."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "target" / "release" / "zoo-select"
DEMO = ROOT / "configs" / "demo.yaml"
IMAGES = ROOT / "data" / "fashion-mnist-demo"


def cli(*args, check=True):
    """The binary's exit code, stdout and stderr."""
    done = subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"zoo-select {' '.join(map(str, args))} failed: {done.stderr}")
    return done


@pytest.fixture(scope="session", autouse=True)
def prerequisites():
    missing = [p for p in (BINARY, IMAGES, ROOT / "zoo" / "efficientnet_lite0.yaml") if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(map(str, missing))}: run ./scripts/bootstrap first")


@pytest.fixture(scope="session")
def objects_run(tmp_path_factory):
    """An in-memory torchvision ResNet-18 and the same architecture by name, random weights,
    ranked on the demo images at 64 px: the two ways models arrive without an export step."""
    import torch
    import torchvision

    import zoo_select

    torch.manual_seed(0)
    module = torchvision.models.resnet18()
    out = tmp_path_factory.mktemp("objects")
    ranking = zoo_select.rank(
        images=IMAGES,
        models=[module, "torchvision:resnet18"],
        random=True,
        input_size=64,
        metrics=["transrate", "knn"],
        dataset={"max_per_class": 12},
        output=out,
        no_cache=True,
        progress=False,
    )
    return ranking, module, out
