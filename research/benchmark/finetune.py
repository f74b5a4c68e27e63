"""One fine-tuning run of the benchmark's protocol (common.PROTOCOL): a source model of the zoo,
cut at a layer (everything after it re-initialised), a new head, fine-tuned on a target's
training split of one regime; the checkpoint with the best validation accuracy is kept and its
test accuracy is the ground truth.
"""

from __future__ import annotations

import json
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import smallnet  # noqa: E402

P = common.PROTOCOL


@lru_cache(maxsize=None)
def split_tensors(task_name: str, split: str, mean: float = 0.5, std: float = 0.5):
    """A split of a target as zoo-select reads it: the PNG tree, PIL-bilinear resized to the
    benchmark resolution, normalised."""
    root = common.DATA / "targets" / task_name / split
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            img = Image.open(f).convert("RGB")
            if img.size != (P.resolution, P.resolution):
                img = img.resize((P.resolution, P.resolution), Image.BILINEAR)
            xs.append(np.asarray(img))
            ys.append(label)
    # Contiguous NCHW: backward through torch 2.11's CPU convolutions crashes on channels-last input.
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous().float().div(255.0)
    return (x - mean) / std, torch.tensor(ys), len(classes)


# Where runs happen and where the weights come from. ground_truth.py sets both: --device cuda on
# a lent GPU, and --payload for a machine without the benchmark's zoo (see gpu_payload.py).
DEVICE = torch.device("cpu")
PAYLOAD: Path | None = None


def eager_model(src: common.Source) -> nn.Module:
    """The zoo model as an eager module with its exported weights."""
    if PAYLOAD is not None:
        return payload_model(src)
    manifest = yaml.safe_load((common.ZOO / f"{src.name}.yaml").read_text())
    scripted = torch.jit.load(str(common.ZOO / manifest["file"]), map_location="cpu")
    if src.kind == "lite":
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name(f"efficientnet-lite{src.arg}")
    else:
        model = smallnet.SmallNet(scripted.state_dict()["fc.weight"].shape[0])
    model.load_state_dict(scripted.state_dict())
    return model


def payload_model(src: common.Source) -> nn.Module:
    """The same weights as eager_model without the zoo: pretrained Lite bodies from the payload
    (their ImageNet heads are replaced anyway), random Lites re-drawn as export_zoo.py drew them
    (seed 0, checked against the payload's checksums), SmallNets from the committed sources.
    Draws from the global generator exactly as eager_model does, so the new heads are the same."""
    if src.kind == "small":
        state = {k: v.float() if v.is_floating_point() else v for k, v in torch.load(common.SOURCES / f"{src.arg}.pt").items()}
        model = smallnet.SmallNet(state["fc.weight"].shape[0])
        model.load_state_dict(state)
        return model
    from efficientnet_lite_pytorch import EfficientNet

    arch = f"efficientnet-lite{src.arg}"
    model = EfficientNet.from_name(arch)
    if src.pretrained:
        missing, unexpected = model.load_state_dict(torch.load(PAYLOAD / f"{src.name}.pt"), strict=False)
        if unexpected or any(not k.startswith("_fc.") for k in missing):
            raise ValueError(f"payload weights of {src.name} do not fit {arch}")
    else:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model.load_state_dict(EfficientNet.from_name(arch).state_dict())
        expected = json.loads((PAYLOAD / "checksums.json").read_text())[src.name]
        if abs(checksum(model) - expected) > 1e-9 * abs(expected):
            raise ValueError(f"re-drawn {src.name} differs from the exported one (torch version?)")
    return model


def checksum(model: nn.Module) -> float:
    return sum(float(v.double().abs().sum()) for v in model.state_dict().values() if v.is_floating_point())


def head_name(src: common.Source) -> str:
    return "_fc" if src.kind == "lite" else "fc"


def execution_order(model: nn.Module, size: int) -> list[str]:
    """Names of the leaf modules and of the modules holding parameters themselves (a Conv2d
    subclass with a padding child), in the order their forward calls finish (a shared module at
    its last call)."""
    order: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if not list(m.children()) or any(True for _ in m.parameters(recurse=False)):
            handles.append(m.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name)))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    last = {name: i for i, name in enumerate(order)}
    return sorted(last, key=last.get)


def reinitialise_after(model: nn.Module, cut: str, size: int) -> int:
    """Resets every parameterised leaf module that runs after the cut layer's (last) output;
    returns how many were reset."""
    order = execution_order(model, size)
    inside = [i for i, name in enumerate(order) if name == cut or name.startswith(cut + ".")]
    if not inside:
        raise ValueError(f"no module `{cut}`")
    reset = 0
    modules = dict(model.named_modules())
    for name in order[max(inside) + 1 :]:
        m = modules[name]
        if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
            m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
            reset += 1
    return reset


def build(src: common.Source, cut: str | None, classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = eager_model(src)
    if cut is not None and cut != src.cuts[-1]:
        reinitialise_after(model, cut, P.resolution)
    head = getattr(model, head_name(src))
    setattr(model, head_name(src), nn.Linear(head.in_features, classes))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1  # EfficientNet-Lite keeps TensorFlow's 0.01: see the protocol
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 256):
            correct += (model(x[i : i + 256].to(DEVICE)).argmax(1).cpu() == y[i : i + 256]).sum().item()
    return correct / len(y)


def run(task: common.Task, regime: str, src: common.Source, cut: str | None, seed: int, lr: float) -> dict:
    start = time.time()
    x, y, classes = split_tensors(task.name, f"train_{regime}")
    xv, yv, _ = split_tensors(task.name, "val")
    xt, yt, _ = split_tensors(task.name, "test")
    model = build(src, cut, classes, seed).to(DEVICE)
    x, y = x.to(DEVICE), y.to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(y) / P.batch_size)
    epochs = P.epochs_for(regime)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    checkpoints = {max(1, round(f * epochs)) for f in P.checkpoints}
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best_val, best_state, best_epoch = -1.0, None, 0
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), P.batch_size):
            idx = perm[i : i + P.batch_size].to(DEVICE)
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if epoch + 1 not in checkpoints:
            continue
        val = accuracy(model, xv, yv)
        if val > best_val:
            best_val, best_epoch = val, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {
        "val_acc": best_val,
        "test_acc": accuracy(model, xt, yt),
        "best_epoch": best_epoch,
        "seconds": round(time.time() - start, 1),
    }
