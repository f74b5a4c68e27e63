#!/usr/bin/env python3
"""The pipeline users write today, for tools/bench to compare zoo-select with.

    .venv/bin/python tools/perf/peer.py CONFIG.yaml [--workers N] [--json OUT]

For each model of a zoo-select config (manifest entries or a `zoo:` folder): a torchvision
ImageFolder with the model's own transforms (PIL decode, Resize, CenterCrop, ToTensor,
Normalize), a DataLoader with one worker per core, the eager torchvision model with the weights
of the exported TorchScript file and forward hooks on its stage layers, its own pass over the
data with every pooled feature vector kept in memory, then TransRate in NumPy (the published
formula, tests/oracles/transrate.py). Prints one JSON object: images, seconds, images/s, and
each (model, layer)'s TransRate.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import yaml
from torch.utils.data import DataLoader
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "oracles"))
from transrate import transrate  # noqa: E402

INTERPOLATION = {
    "bilinear": transforms.InterpolationMode.BILINEAR,
    "bicubic": transforms.InterpolationMode.BICUBIC,
    "nearest": transforms.InterpolationMode.NEAREST,
}


def manifests(config: dict, base: Path) -> list[tuple[Path, dict]]:
    """The manifests a config names, with each entry's `input` keys applied over the manifest's."""
    out = []
    for entry in config.get("models", []):
        path = (base / entry["manifest"]).resolve()
        m = yaml.safe_load(path.read_text())
        m["input"].update(entry.get("input", {}))
        m["name"] = entry.get("name", m["name"])
        out.append((path, m))
    zoo = config.get("zoo")
    if zoo:
        spec = {"dir": zoo} if isinstance(zoo, str) else zoo
        folder = (base / spec["dir"]).resolve()
        for path in sorted(folder.glob("*.yaml")):
            m = yaml.safe_load(path.read_text())
            name = m.get("name", "")
            import fnmatch

            include = spec.get("include") or ["*"]
            if any(fnmatch.fnmatch(name, p) for p in include) and not any(
                fnmatch.fnmatch(name, p) for p in spec.get("exclude", [])
            ):
                out.append((path, m))
    return out


def eager_model(manifest_path: Path, m: dict) -> torch.nn.Module:
    """The eager twin of an exported model, with the TorchScript file's weights."""
    if m["library"].startswith("torchvision"):
        model = torchvision.models.get_model(m["architecture"], weights=None)
    elif m["library"].startswith("efficientnet-lite-pytorch"):
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(m["architecture"])
    else:
        raise SystemExit(f"peer.py builds torchvision and EfficientNet-Lite models, not {m['library']} ({m['name']})")
    scripted = torch.jit.load(str(manifest_path.parent / m["file"]), map_location="cpu")
    model.load_state_dict(scripted.state_dict())
    return model.eval()


def run_model(manifest_path: Path, m: dict, root: Path, batch_size: int, workers: int, device: str):
    inp = m["input"]
    tf = transforms.Compose(
        [
            transforms.Resize(inp.get("resize", inp["size"]), interpolation=INTERPOLATION[inp.get("interpolation", "bilinear")]),
            transforms.CenterCrop(inp["size"]),
            transforms.ToTensor(),
            transforms.Normalize(inp["mean"], inp["std"]),
        ]
    )
    data = torchvision.datasets.ImageFolder(str(root), transform=tf)
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, shuffle=False)
    model = eager_model(manifest_path, m).to(device)
    layers = m["layers"]
    modules = dict(model.named_modules())
    features = {name: [] for name in layers}
    current = {}

    def hook(name):
        # The usual `features[name] = output`: a module called twice keeps its last output.
        def save(_module, _inputs, output):
            pooled = output.mean((2, 3)) if output.dim() == 4 else output.mean(1) if output.dim() == 3 else output
            current[name] = pooled.detach().double().cpu().numpy()

        return save

    handles = [modules[name].register_forward_hook(hook(name)) for name in layers]
    labels = []
    with torch.no_grad():
        for x, y in loader:
            current.clear()
            model(x.to(device))
            for name in layers:
                features[name].append(current[name])
            labels.append(y.numpy())
    for h in handles:
        h.remove()
    y = np.concatenate(labels)
    return {name: float(transrate(np.concatenate(features[name]), y, 1e-4)) for name in layers}, len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    config = yaml.safe_load(args.config.read_text())
    base = args.config.resolve().parent
    root = (base / config["dataset"]["root"]).resolve()
    if config["dataset"].get("max_per_class"):
        raise SystemExit("peer.py reads whole folders: drop dataset.max_per_class")
    batch_size = config.get("batch_size", 64)
    start = time.perf_counter()
    scores, n = {}, 0
    for path, m in manifests(config, base):
        per_layer, n = run_model(path, m, root, batch_size, args.workers, args.device)
        scores[m["name"]] = per_layer
    seconds = time.perf_counter() - start
    result = {"images": n, "seconds": seconds, "images_per_s": n / seconds, "transrate": scores}
    text = json.dumps(result)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
