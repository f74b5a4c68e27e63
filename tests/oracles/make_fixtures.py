#!/usr/bin/env python3
"""Make the committed test fixtures under tests/fixtures/.

Run in the project's .venv:  .venv/bin/python tests/oracles/make_fixtures.py
Everything is seeded, so re-running it rewrites the same numbers (up to the TorchScript
serialisation, which embeds no timestamps). The Rust tests never run Python: they read what
this script wrote.

  tests/fixtures/transrate/*.npz   feature sets with the reference TransRate (tests/oracles)
  tests/fixtures/taps/*.pt         tiny scripted/traced/frozen modules (one with depthwise convs)
  tests/fixtures/taps/expected.npz input batch and what PyTorch forward hooks saw
  tests/fixtures/jpeg/             JPEGs of several kinds and PIL's pixels of them (decoded, and
                                   through Resize + CenterCrop)
  tests/fixtures/images/           a tiny ImageFolder (plus broken files) for end-to-end runs
  tests/fixtures/metrics/*.npz     feature sets with every metric's reference value (NCTI: its
                                   raw terms per set, and its score with the sets as the zoo)
  tests/fixtures/zoo/grey.pt, fixed16.pt  models taking 1 channel, and one input size only
  tests/fixtures/e2e_expected.json TransRate of each (model, layer) on that folder (and every
                                   metric of `metrics: all`; NCTI over the run's 8 rows)
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics as ref  # noqa: E402
import sample_metrics as sample_ref  # noqa: E402
from transrate import transrate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"


# --------------------------------------------------------------------------- TransRate sets
def transrate_sets():
    out = FIX / "transrate"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20221)

    def blobs(n_per_class, d, classes, spread=1.0):
        means = rng.normal(size=(classes, d)) * 2.0
        xs, ys = [], []
        for c, n in enumerate(n_per_class):
            xs.append(means[c] + spread * rng.normal(size=(n, d)))
            ys.append(np.full(n, c))
        return np.concatenate(xs), np.concatenate(ys)

    sets = {}
    x, y = blobs([40, 35, 50], 6, 3)
    sets["well_conditioned"] = (x, y, 1e-4)
    x, y = blobs([5, 7, 6, 4], 24, 4)  # d > n_c: rank-deficient class scatter
    sets["d_gt_nc"] = (x, y, 1e-4)
    x, y = blobs([30, 1, 25], 5, 3)  # a class with a single image
    sets["singleton_class"] = (x, y, 1e-4)
    x, y = blobs([2, 2, 30], 4, 3)  # classes with two images
    sets["two_image_classes"] = (x, y, 1e-2)
    x, y = blobs([20, 30, 25], 8, 3)
    sets["large_offset"] = (x + 1.0e3, y, 1e-4)  # catches a missing centring
    x, y = blobs([20, 30, 25], 8, 3)
    sets["scaled_1000"] = (x * 1.0e3, y, 1e-4)  # catches scale bugs
    x, y = blobs([50, 40, 30, 45], 5, 4, spread=0.7)
    sets["eps_1"] = (x * 3.0, y, 1.0)  # a large eps: the log-determinants are far from singular
    for name, (x, y, eps) in sets.items():
        np.savez(
            out / f"{name}.npz",
            features=x.astype(np.float64),
            labels=y.astype(np.int64),
            eps=np.array(eps, dtype=np.float64),
            expected=np.array(transrate(x, y, eps), dtype=np.float64),
        )
    print(f"transrate: {len(sets)} sets")


# --------------------------------------------------------------------------- every metric
# TransRate option sets checked against the reference (name -> keyword arguments).
TRANSRATE_OPTIONS = {
    "plain": {},
    "trace": {"scale": "trace"},
    "per_rank": {"per_rank": True, "rank_of": "gram"},
    "count": {"class_weight": "count"},
    "l2": {"normalize": "l2"},
    # The normalisations of the TransRate authors' released code that stream exactly.
    "authors": {"scale": "trace", "per_rank": True, "rank_of": "gram", "class_weight": "count"},
    "all": {"normalize": "l2", "scale": "trace", "per_rank": True, "rank_of": "gram", "class_weight": "count"},
    # Rates in the top-3 principal directions (the cut recommendation's width-free comparison).
    "subspace": {"subspace": 3},
    "subspace_trace": {"scale": "trace", "subspace": 3},
}
SOURCE_CLASSES = 7


def softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# k-NN at the default k and at small ones, where votes tie more often.
KNN_KS = (1, 2, 3, 10)
# NCTI's raw terms, in the authors' order (sample_metrics.ncti_components).
NCTI_TERMS = ("seli", "ncc", "vc")


def metric_sets():
    """Feature sets with every metric's reference value (tests/oracles/metrics.py)."""
    out = FIX / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20230)

    def blobs(n_per_class, d, spread=1.0):
        means = rng.normal(size=(len(n_per_class), d)) * 2.0
        xs, ys = [], []
        for c, n in enumerate(n_per_class):
            xs.append(means[c] + spread * rng.normal(size=(n, d)))
            ys.append(np.full(n, c))
        return np.concatenate(xs), np.concatenate(ys)

    sets = {
        "well_conditioned": blobs([40, 35, 50], 6),
        "d_gt_nc": blobs([9, 11, 10, 8], 12),  # each class has fewer images than dimensions
        "n_lt_d": blobs([5, 7, 6, 4], 24),  # fewer images than dimensions overall
        "two_image_classes": blobs([2, 2, 30], 4),
    }
    x, y = blobs([20, 30, 25], 8)
    sets["large_offset"] = (x + 1.0e3, y)  # catches a missing centring
    x, y = blobs([20, 30, 25], 8)
    sets["scaled_1000"] = (x * 1.0e3, y)  # catches scale bugs
    # Classes that overlap: k-NN misclassifies a third of the images, and its votes tie.
    sets["overlapping"] = blobs([60, 50, 40, 30], 10, spread=3.0)
    files = []
    for name, (x, y) in sets.items():
        c = int(y.max()) + 1
        # Source logits that know a little about the target classes.
        mixing = rng.normal(size=(c, SOURCE_CLASSES)) * 2.0
        logits = mixing[y] + rng.normal(size=(len(y), SOURCE_CLASSES))
        probs = softmax(logits)
        expected = {
            "logme": ref.logme(x, y),
            "hscore": ref.hscore(x, y),
            "hscore_shrink": ref.hscore_shrink(x, y),
            "nce": ref.nce(probs, y),
            "leep": ref.leep(probs, y),
            "gbc": ref.gbc(x, y),
        }
        for k in KNN_KS:
            expected[f"knn/k{k}"] = sample_ref.knn(x, y, k=k)
        expected["sfda"] = sample_ref.sfda(x, y)
        expected["ncm"] = sample_ref.ncm(x, y)
        expected["cdnv"] = sample_ref.cdnv(x, y)
        expected["transrate_z"] = sample_ref.transrate_z(x, y)
        # NCTI's raw terms; its score is relative: the sets below are its candidates.
        for term, v in zip(NCTI_TERMS, sample_ref.ncti_components(x, y)):
            expected[f"ncti/{term}"] = v
        for option, kwargs in TRANSRATE_OPTIONS.items():
            expected[f"transrate/{option}"] = ref.transrate(x, y, eps=1e-4, **kwargs)
        files.append((name, x, y, logits, expected))
    # NCTI over all the sets as one zoo (min-max normalised across them).
    combined = sample_ref.ncti_combine([[e[f"ncti/{t}"] for t in NCTI_TERMS] for *_, e in files])
    for (name, x, y, logits, expected), score in zip(files, combined):
        expected["ncti"] = float(score)
        np.savez(
            out / f"{name}.npz",
            features=x.astype(np.float64),
            labels=y.astype(np.int64),
            source_logits=logits.astype(np.float64),
            **{f"expected/{k}": np.array(v, dtype=np.float64) for k, v in expected.items()},
        )
    per_set = len(files[0][4])
    print(f"metrics: {len(sets)} sets x {per_set} values")


# --------------------------------------------------------------------------- tap models
class Block(nn.Module):
    """A ResNet basic block: its ReLU is in place and called twice, its residual add in place."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


class Tokens(nn.Module):
    """(N, C, H, W) -> (N, H*W, C), the layout of a transformer's token sequence."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2) * 2.0


class TinyNet(nn.Module):
    def __init__(self, classes=5, width=8):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.block = Block(width)
        self.tokens = Tokens()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.block(x)
        t = self.tokens(x)
        x = self.pool(x).flatten(1) + t.mean(1) * 0.0
        return self.fc(x)


class Bad(nn.Module):
    def forward(self, x):
        return torch.log(x - 1.0e3)


class NanNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bad = Bad()

    def forward(self, x):
        return self.bad(self.conv(x)).mean((2, 3))


class LoopNet(nn.Module):
    """Submodules called inside a scripted loop and a data-dependent branch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.up = nn.ReLU()
        self.down = nn.Sigmoid()
        self.head = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        for _ in range(int(x.shape[0])):
            x = self.conv(x)
        if bool(x.sum() > 0):
            x = self.up(x)
        else:
            x = self.down(x)
        return self.head(x).mean((2, 3))


class BranchNet(nn.Module):
    """Branches fixed by the module (a flag attribute, `training`) and one that depends on data."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.extra = nn.Conv2d(4, 4, 1)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.use_extra = True
        self.use_skip = False

    def forward(self, x):
        x = self.act(self.conv(x))
        if self.use_extra:
            x = self.extra(x)
        if not self.use_skip:
            x = x * 2.0
        if self.training:
            x = self.drop(x)
        if bool(x.mean() > 100.0):  # never true here, but only data can tell
            x = self.act(x)
        return x.mean((2, 3))


class Scale(nn.Module):
    def forward(self, x):
        return x * 1.5


class StateNet(nn.Module):
    """Conditions that look fixed but are not: a flag forward assigns (lazy initialisation) and a
    None check on a Union value set by data."""

    def __init__(self):
        super().__init__()
        self.first = True
        self.a = Scale()
        self.b = Scale()
        self.c = Scale()

    def forward(self, x):
        if self.first:
            self.first = False
            x = self.a(x)
        else:
            x = self.b(x)
        y: Union[torch.Tensor, int, None] = None
        if bool(x.sum() > 0):
            y = 1
        if y is None:
            x = self.c(x)
        return x.mean((2, 3))


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def tiny_net(seed, classes=5, width=8):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = TinyNet(classes, width)
    with torch.no_grad():
        randomise_bn(model, gen)
    return model.eval()


TAP_NAMES = [
    "stem",
    "stem.1",  # BatchNorm whose output the next ReLU overwrites in place
    "block",
    "block.conv1",  # nested inside a requested module
    "block.bn1",
    "block.bn2",  # then `out += x` in place
    "block.relu",  # called twice: the last call
    "block.relu#1",  # the first call
    "tokens",  # 3-D output
    "fc",  # 2-D output
]


def hook_outputs(model, names, x):
    """What PyTorch forward hooks see, cloned at hook time: {name or name#k: tensor}."""
    calls = {}
    modules = dict(model.named_modules())
    handles = []
    for base in {n.split("#")[0] for n in names}:
        def hook(_m, _inp, out, base=base):
            calls.setdefault(base, []).append(out.detach().clone())

        handles.append(modules[base].register_forward_hook(hook))
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    got = {}
    for n in names:
        base, _, k = n.partition("#")
        got[n] = calls[base][int(k) - 1] if k else calls[base][-1]
    return logits, got


class DepthwiseNet(nn.Module):
    """A MobileNet-style block (depthwise then pointwise convolution): zoo-select leaves such
    graphs as they are rather than optimise them for oneDNN."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.pw(torch.relu(self.dw(torch.relu(self.stem(x)))))


def depthwise_fixture():
    torch.manual_seed(5)
    torch.jit.script(DepthwiseNet().eval()).save(str(FIX / "taps" / "depthwise_scripted.pt"))


def state_dict_fixture():
    # What users often have instead of TorchScript: a torch.save'd state dict.
    torch.save(tiny_net(7).state_dict(), str(FIX / "taps" / "state_dict.pt"))


def tap_fixtures():
    out = FIX / "taps"
    out.mkdir(parents=True, exist_ok=True)
    model = tiny_net(7)
    x = torch.randn(3, 3, 12, 12, generator=torch.Generator().manual_seed(11))
    logits, got = hook_outputs(model, TAP_NAMES, x)
    torch.jit.script(model).save(str(out / "tiny_scripted.pt"))
    torch.jit.trace(model, x).save(str(out / "tiny_traced.pt"))
    torch.jit.freeze(torch.jit.script(model)).save(str(out / "tiny_frozen.pt"))
    torch.jit.script(LoopNet().eval()).save(str(out / "loop_scripted.pt"))
    torch.manual_seed(3)
    branch = BranchNet().eval()
    torch.jit.script(branch).save(str(out / "branch_scripted.pt"))
    torch.jit.script(StateNet().eval()).save(str(out / "state_scripted.pt"))
    depthwise_fixture()
    state_dict_fixture()
    _, branch_taps = hook_outputs(branch, ["conv", "extra"], x)
    arrays = {"input": x.numpy(), "output": logits.numpy()}
    arrays.update({f"tap/{n}": t.numpy() for n, t in got.items()})
    arrays.update({f"branch/{n}": t.numpy() for n, t in branch_taps.items()})
    np.savez(out / "expected.npz", **arrays)
    (out / "names.txt").write_text("\n".join(TAP_NAMES) + "\n")
    print(f"taps: {len(TAP_NAMES)} names")


# --------------------------------------------------------------------------- preprocessing
RESIZE_CASES = [(256, 224, "bilinear"), (232, 224, "bicubic"), (256, 224, "nearest"), (60, 48, "bilinear")]


def resize_fixtures():
    """A lossless photo and what torchvision's Resize + CenterCrop (PIL) make of it."""
    from torchvision import transforms

    out = FIX / "resize"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(xx / 17 + c) * np.cos(yy / 23 - c) for c in range(3)], axis=2)
    img += rng.normal(scale=6, size=img.shape)
    photo = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    photo.save(out / "photo.png")
    modes = {m: getattr(transforms.InterpolationMode, m.upper()) for m in ("bilinear", "bicubic", "nearest")}
    arrays = {}
    for resize, size, mode in RESIZE_CASES:
        tf = transforms.Compose([transforms.Resize(resize, interpolation=modes[mode]), transforms.CenterCrop(size)])
        arrays[f"{resize}_{size}_{mode}"] = np.asarray(tf(Image.open(out / "photo.png")))
    np.savez(out / "expected.npz", **arrays)
    print(f"resize: {len(arrays)} cases")


# --------------------------------------------------------------------------- JPEG decoding
JPEG_KINDS = {
    # name: (size, mode, save options); odd sizes leave partial MCUs at the edges.
    "420": ((161, 117), "RGB", {"quality": 90, "subsampling": 2}),
    "422": ((161, 117), "RGB", {"quality": 90, "subsampling": 1}),
    "444": ((161, 117), "RGB", {"quality": 95, "subsampling": 0}),
    "progressive": ((161, 117), "RGB", {"quality": 85, "progressive": True}),
    "grey": ((161, 117), "L", {"quality": 90}),
    "cmyk": ((64, 48), "CMYK", {"quality": 90}),
    "photo": ((500, 375), "RGB", {"quality": 85}),
}


# JPEGs PIL cannot write, made by libjpeg-turbo's cjpeg (Debian: libjpeg-turbo-progs), whose
# crops must still decode as the whole: every component sampled 2x1, which TurboJPEG labels 4:4:4
# though its iMCU is 16 px wide; and a progressive JPEG whose scans leave coefficients unrefined
# (DC and AC never refined below 1 or 2 bits), which libjpeg decodes with block smoothing across
# a 5x5 neighbourhood of blocks.
UNREFINED_SCANS = "0,1,2: 0-0, 0, 1;\n0: 1-5, 0, 2;\n2: 1-63, 0, 1;\n1: 1-63, 0, 1;\n0: 6-63, 0, 2;\n"
CJPEG_KINDS = {
    "sampled-2x1": ["-sample", "2x1,2x1,2x1"],
    "sampled-2x1-progressive": ["-sample", "2x1,2x1,2x1", "-progressive"],
    "unrefined": ["-scans", "SCANS"],
}


def sine_picture(rng, w, h, channels=3):
    """Smooth colour waves with noise: chroma that varies, as in a photo."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(xx / 13 + c) * np.cos(yy / 19 - c) for c in range(channels)], axis=2)
    return np.clip(img + rng.normal(scale=8, size=img.shape), 0, 255).astype(np.uint8)


def jpeg_fixtures():
    """JPEGs of the kinds datasets hold, and what PIL decodes from them: convert('RGB') of the
    small ones (not the CMYK one, which zoo-select leaves to the `image` crate), and torchvision's
    Resize(256) + CenterCrop(224) of the 500x375 photo."""
    from torchvision import transforms

    out = FIX / "jpeg"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    arrays = {}
    for name, ((w, h), mode, options) in JPEG_KINDS.items():
        img = sine_picture(rng, w, h, channels=4)
        picture = Image.fromarray(img[:, :, :3]) if mode != "CMYK" else Image.fromarray(img, "CMYK")
        if mode == "L":
            picture = picture.convert("L")
        picture.save(out / f"{name}.jpg", **options)
        if mode != "CMYK" and name != "photo":
            arrays[f"decoded_{name}"] = np.asarray(Image.open(out / f"{name}.jpg").convert("RGB"))
    for name, options in CJPEG_KINDS.items():
        picture = Image.fromarray(sine_picture(rng, 301, 203))
        with tempfile.TemporaryDirectory() as tmp:
            ppm = Path(tmp) / "in.ppm"
            picture.save(ppm)
            (Path(tmp) / "scans.txt").write_text(UNREFINED_SCANS)
            args = [a.replace("SCANS", str(Path(tmp) / "scans.txt")) for a in options]
            try:
                subprocess.run(["cjpeg", "-quality", "90", *args, "-outfile", str(out / f"{name}.jpg"), str(ppm)], check=True)
            except FileNotFoundError:
                sys.exit("jpeg: cjpeg not found: apt-get install libjpeg-turbo-progs")
        arrays[f"decoded_{name}"] = np.asarray(Image.open(out / f"{name}.jpg").convert("RGB"))
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    arrays["fitted_photo_256_224"] = np.asarray(tf(Image.open(out / "photo.jpg").convert("RGB")))
    np.savez_compressed(out / "expected.npz", **arrays)
    print(f"jpeg: {len(JPEG_KINDS) + len(CJPEG_KINDS)} files, {len(arrays)} arrays")


# --------------------------------------------------------------------------- images + e2e
SIZE = 16
E2E_MEAN = [0.5, 0.4, 0.3]
E2E_STD = [0.25, 0.2, 0.3]
E2E_LAYERS = ["stem", "block", "tokens", "fc"]


def class_image(kind, rng):
    """A SIZE x SIZE RGB uint8 picture of one of three patterns, with noise."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    cy, cx = rng.uniform(5, 11, size=2)
    if kind == "circle":
        base = ((yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(9, 25)).astype(np.float64)
        colour = np.array([0.9, 0.3, 0.2])
    elif kind == "square":
        half = rng.uniform(3, 6)
        base = ((abs(yy - cy) < half) & (abs(xx - cx) < half)).astype(np.float64)
        colour = np.array([0.2, 0.8, 0.3])
    else:
        base = (np.sin(xx * rng.uniform(0.8, 1.6) + cy) > 0).astype(np.float64)
        colour = np.array([0.2, 0.3, 0.9])
    img = base[..., None] * colour + 0.15 * rng.normal(size=(SIZE, SIZE, 3)) + 0.1
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def image_fixtures():
    root = FIX / "images"
    rng = np.random.default_rng(5)
    counts = {"circle": 7, "square": 6, "stripes": 8}
    for kind, n in counts.items():
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(class_image(kind, rng)).save(folder / f"{kind}_{i:02d}.png")
    # A grey image: decoded as one channel, replicated to RGB.
    grey = class_image("square", rng)[..., 1]
    Image.fromarray(grey).save(root / "square" / "square_grey.png")
    # Bad input that must be skipped and reported, never scored.
    good = (root / "circle" / "circle_00.png").read_bytes()
    (root / "circle" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "stripes" / "notes.txt").write_text("not an image\n")
    (root / "empty_class").mkdir(exist_ok=True)
    (root / "empty_class" / ".gitkeep").write_text("")
    print("images:", {k: v for k, v in counts.items()}, "+ 1 grey, 2 broken, 1 empty class")


def load_png_folder(root):
    """Reads back the usable images exactly as zoo-select must see them (no resampling)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys, used = [], [], []
    for name in classes:
        files = sorted(p for p in (root / name).iterdir() if not p.name.startswith("."))
        images = []
        for f in files:
            try:
                images.append(np.asarray(Image.open(f).convert("RGB")))
            except Exception:
                continue
        if not images:
            continue
        label = len(used)
        used.append(name)
        for img in images:
            xs.append(img)
            ys.append(label)
    return np.stack(xs), np.array(ys), used


def listing_ids(root):
    """Each usable image's position in zoo-select's listing: every non-hidden file of the sorted
    class folders, sorted, counts (a file that fails to decode keeps its place)."""
    ids, position = [], 0
    for name in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for f in sorted(p for p in (root / name).iterdir() if not p.name.startswith(".")):
            try:
                Image.open(f).convert("RGB")
                ids.append(position)
            except Exception:
                pass
            position += 1
    return np.array(ids)


def pool(t):
    if t.dim() == 4:
        return t.mean((2, 3))
    if t.dim() == 3:
        return t.mean(1)
    return t


def params_after_reference(model, x, layers):
    """Parameter elements of the modules whose last forward call finishes after each layer's,
    from PyTorch forward hooks on the eager model (each module counts its own parameters)."""
    finished = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, n=n: finished.append(n))
               for n, m in model.named_modules() if n]
    with torch.no_grad():
        model.eval()(x[:1])
    for h in handles:
        h.remove()
    last = {n: i for i, n in enumerate(finished)}
    own = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in model.named_modules() if n}
    return {layer: int(sum(own[n] for n, i in last.items() if i > last[layer])) for layer in layers}


def e2e_params_fixture():
    """tests/fixtures/e2e_params.json: what fine-tuning re-trains above each layer of the e2e
    models (the models are rebuilt from their seeds; the committed .pt files are not touched)."""
    images, _, _ = load_png_folder(FIX / "images")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    models = {"tiny_a": tiny_net(101, classes=10, width=8), "tiny_b": tiny_net(202, classes=10, width=12)}
    out = {name: params_after_reference(m, x, E2E_LAYERS) for name, m in models.items()}
    (FIX / "e2e_params.json").write_text(json.dumps(out, indent=2) + "\n")
    print("e2e params:", out)


def e2e_fixture():
    out = FIX / "zoo"
    out.mkdir(parents=True, exist_ok=True)
    images, labels, classes = load_png_folder(FIX / "images")
    ids = listing_ids(FIX / "images")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    x = (x - torch.tensor(E2E_MEAN).view(1, 3, 1, 1)) / torch.tensor(E2E_STD).view(1, 3, 1, 1)
    expected = {"classes": classes, "images": int(len(labels)), "eps": 1e-4, "results": []}
    models = {"tiny_a": tiny_net(101, classes=10, width=8), "tiny_b": tiny_net(202, classes=10, width=12)}
    for name, model in models.items():
        traced = torch.jit.trace(model, x[:2]) if name == "tiny_a" else torch.jit.script(model)
        traced.save(str(out / f"{name}.pt"))
        logits, got = hook_outputs(model, E2E_LAYERS, x)
        probs = softmax(logits.double().numpy())
        for layer in E2E_LAYERS:
            feats = pool(got[layer]).double().numpy()
            expected["results"].append(
                {
                    "model": name,
                    "layer": layer,
                    "dim": int(feats.shape[1]),
                    "transrate": float(transrate(feats, labels, 1e-4)),
                    # `metrics: all`, the model's output as source logits.
                    "all": {
                        "transrate": float(transrate(feats, labels, 1e-4)),
                        "logme": ref.logme(feats, labels),
                        "hscore": ref.hscore(feats, labels),
                        "hscore_shrink": ref.hscore_shrink(feats, labels),
                        "nce": ref.nce(probs, labels),
                        "leep": ref.leep(probs, labels),
                        "gbc": ref.gbc(feats, labels),
                        "knn": sample_ref.knn(feats, labels, k=10),
                        "sfda": sample_ref.sfda(feats, labels),
                        "ncm": sample_ref.ncm(feats, labels),
                        "cdnv": sample_ref.cdnv(feats, labels),
                        "transrate_z": sample_ref.transrate_z(feats, labels, ids=ids),
                    },
                    "ncti_terms": dict(zip(NCTI_TERMS, sample_ref.ncti_components(feats, labels))),
                }
            )
    # NCTI is relative: every (model, layer) of the run is a candidate.
    rows = expected["results"]
    combined = sample_ref.ncti_combine([[r["ncti_terms"][t] for t in NCTI_TERMS] for r in rows])
    for r, score in zip(rows, combined):
        r["all"]["ncti"] = float(score)
    # A manifest for tiny_a, as scripts/export_zoo.py would write it.
    import hashlib

    sha = hashlib.sha256((out / "tiny_a.pt").read_bytes()).hexdigest()
    (out / "tiny_a.yaml").write_text(
        "\n".join(
            [
                "name: tiny_a",
                "file: tiny_a.pt",
                f"sha256: {sha}",
                "export: traced",
                "pretrained: false",
                "source_classes: 10",
                "input: {size: 16, mean: %s, std: %s}" % (E2E_MEAN, E2E_STD),
                "layers: [stem, block, tokens]",
                "head: fc",
                "export_command: .venv/bin/python tests/oracles/make_fixtures.py",
            ]
        )
        + "\n"
    )
    torch.manual_seed(9)
    featmap = nn.Sequential()
    featmap.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    featmap.add_module("act", nn.ReLU())
    torch.jit.trace(featmap.eval(), x[:2]).save(str(out / "featmap.pt"))
    nan_model = NanNet().eval()
    torch.jit.trace(nan_model, x[:2]).save(str(out / "nan.pt"))
    (FIX / "e2e_expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print("e2e:", len(expected["results"]), "scores over", len(labels), "images")


def input_fixtures():
    """Models whose first forward fails on zoo-select's input: grey.pt takes 1 channel, and
    fixed16.pt flattens its 16 x 16 feature map into a Linear, so it takes that size only."""
    out = FIX / "zoo"
    torch.manual_seed(13)
    grey = nn.Sequential()
    grey.add_module("conv", nn.Conv2d(1, 4, 3, padding=1))
    grey.add_module("act", nn.ReLU())
    torch.jit.trace(grey.eval(), torch.rand(2, 1, 16, 16)).save(str(out / "grey.pt"))
    fixed = nn.Sequential()
    fixed.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    fixed.add_module("act", nn.ReLU())
    fixed.add_module("flat", nn.Flatten())
    fixed.add_module("fc", nn.Linear(4 * 16 * 16, 10))
    torch.jit.trace(fixed.eval(), torch.rand(2, 3, 16, 16)).save(str(out / "fixed16.pt"))
    print("input fixtures: grey.pt, fixed16.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    os.chdir(ROOT)
    transrate_sets()
    metric_sets()
    resize_fixtures()
    jpeg_fixtures()
    tap_fixtures()
    image_fixtures()
    e2e_fixture()
    e2e_params_fixture()
    input_fixtures()
