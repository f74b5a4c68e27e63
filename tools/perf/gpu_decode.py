#!/usr/bin/env python3
"""Whether decoding JPEGs on the GPU (nvJPEG) would free a pass from its CPU decoders, in numbers.

On a lent H200 with 16 cores, zoo-select's CPU workers (zune-jpeg, then PIL's integer resampling,
bit for bit) decoded 4,587-5,041 synthetic 500x375 photos a second on all cores, against
7,648-7,884 for ResNet-50's forward loop alone: a ResNet-50 pass cannot reach 0.95 of its forward
loop while the CPU decodes. Before building GPU decoding into the Rust side, this measures what
torchvision's nvJPEG path gives on the same photos, and how far its pixels are from the PIL
pipeline zoo-select matches:

    python3 tools/perf/gpu_decode.py PHOTOS --out gpu-decode.json   # on the GPU machine
    .venv/bin/python tools/perf/make_photos.py --out /tmp/gd/photos --images 300 --shapes
    .venv/bin/python tools/perf/gpu_decode.py /tmp/gd/photos --device cpu --images 300 \
        --out /tmp/gd/gpu-decode.json     # a dry run on a CPU: the CUDA items say "skipped: no CUDA"

PHOTOS is a folder of JPEGs (searched recursively, as tools/perf/gpu-pass's class-folder tree);
up to --images of them, spread over the sorted list, are read into memory first (not timed). In
this order (so that the time budget, --budget-s, cuts the least telling numbers first):
  1. torchvision.io.decode_jpeg(list of byte tensors, device='cuda') in batches of 128, the read
     mode unchanged and RGB: images/s over all images after a warm-up batch, synchronised, with
     the host's CPU time an image (the process's, all threads: nvJPEG's host-side work);
  2. the same decode, then a resize of the shorter side to 256 with antialiasing and a 224 centre
     crop on the GPU, stacked into a (B, 3, 224, 224) uint8 batch: one interpolate an image (any
     mix of sizes), and one a group of images of the same size (the best case);
  3. agreement on --agree-images: the GPU batch against PIL (convert('RGB'), torchvision's
     Resize(256) and CenterCrop(224), what zoo-select matches bit for bit), nvJPEG's decoded
     pixels against PIL's before any resize, and the GPU resize on PIL's decoded pixels against
     PIL's resize (the resampling's share of the difference; this one runs on a CPU too);
  4. CPU references on one core: PIL decode, PIL decode+resize+crop, torchvision's CPU
     decode_jpeg (libjpeg-turbo), images/s over --cpu-images;
  5. the libnvjpeg files torchvision loads and ships (paths, sizes, nvjpegGetProperty's version)
     and, in a child process (a crash there loses nothing), whether nvJPEG's hardware backend is
     available and its engine count; then batches of 32 and 512 (decode, decode+resize).
Every measurement is guarded: a failure is recorded as an error string and the rest goes on; the
JSON is rewritten after each, so a kill by an outer timeout keeps what was done. Prints a short
table. Not a test: a measurement.
"""

import argparse
import ctypes
import glob
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guarded import Run, fmt, main_or_table, note, sync  # noqa: E402

START = time.perf_counter()
RESIZE, CROP = 256, 224
NO_CUDA = {"skipped": "no CUDA"}

try:
    import torchvision
    from torchvision.io import ImageReadMode, decode_jpeg
    TV_ERROR = None
except Exception as e:  # noqa: BLE001 (an import error is a result here, not a stop)
    torchvision = None
    TV_ERROR = f"{type(e).__name__}: {e}"[:2000]


def need_torchvision():
    if torchvision is None:
        raise RuntimeError(f"torchvision did not import: {TV_ERROR}")


# ---- the photos -------------------------------------------------------------------------------

def read_photos(folder: Path, images: int) -> tuple[list[str], list[bytes], dict]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())
    if not files:
        raise FileNotFoundError(f"no JPEGs under {folder}")
    # Spread over the sorted list, so that every class folder is in a small sample too.
    step = max(1, len(files) / images)
    chosen = [files[int(i * step)] for i in range(min(images, len(files)))]
    blobs = [p.read_bytes() for p in chosen]
    sizes = {}
    for b in blobs[:50]:
        with Image.open(io.BytesIO(b)) as im:
            key = f"{im.size[0]}x{im.size[1]} {im.mode}"
            # Progressive files take nvJPEG's software path (one at a time, Huffman on the host).
            if im.info.get("progressive") or im.info.get("progression"):
                key += " progressive"
            sizes[key] = sizes.get(key, 0) + 1
    return [str(p) for p in chosen], blobs, {
        "found": len(files), "read": len(blobs), "mean_kb": round(sum(map(len, blobs)) / len(blobs) / 1024, 1),
        "shapes_of_first_50": sizes}


def byte_tensors(blobs: list[bytes]) -> list[torch.Tensor]:
    # bytearray: torch.frombuffer warns on read-only buffers, and decode_jpeg wants CPU uint8.
    return [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]


# ---- resize and crop as torchvision does on tensors ----------------------------------------------

def resized_size(h: int, w: int, size: int = RESIZE) -> tuple[int, int]:
    """torchvision's Resize(size) output (h, w): shorter side `size`, longer truncated."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def crop_origin(h: int, w: int, crop: int = CROP) -> tuple[int, int]:
    # Python's round (half to even), as torchvision's center_crop: 58.5 -> 58.
    return int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))


def resize_crop(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 of one size -> (N, C, 224, 224) uint8: bilinear with antialiasing in
    float, rounded and clamped back, as torchvision.transforms.v2 resizes uint8 tensors off the CPU
    (CUDA's antialiased kernels take floats only). The crop comes after the resize, as in the
    PIL pipeline, so that the resampling sees the same neighbourhood at the crop's edges."""
    h, w = x.shape[-2:]
    nh, nw = resized_size(h, w)
    y = torch.nn.functional.interpolate(x.float(), size=(nh, nw), mode="bilinear", align_corners=False,
                                        antialias=True)
    top, left = crop_origin(nh, nw)
    y = y[..., top:top + CROP, left:left + CROP]
    return y.round_().clamp_(0, 255).to(torch.uint8)


def gpu_batch_per_image(decoded: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([resize_crop(d[:3].unsqueeze(0))[0] for d in decoded])


def gpu_batch_grouped(decoded: list[torch.Tensor]) -> torch.Tensor:
    groups: dict = {}
    for i, d in enumerate(decoded):
        groups.setdefault(tuple(d.shape), []).append(i)
    out = torch.empty((len(decoded), 3, CROP, CROP), dtype=torch.uint8, device=decoded[0].device)
    for idx in groups.values():
        out[idx] = resize_crop(torch.stack([decoded[i][:3] for i in idx]))
    return out


# ---- the PIL pipeline zoo-select matches -----------------------------------------------------------

def pil_transform():
    """torchvision's Resize(256) + CenterCrop(224) on PIL images; the same by hand (PIL's bilinear
    resize, the same sizes and crop) when torchvision is missing, so the CPU numbers still come."""
    if torchvision is not None:
        from torchvision import transforms as T
        return T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP)]), "torchvision.transforms"

    def by_hand(img):
        nh, nw = resized_size(img.height, img.width)
        img = img.resize((nw, nh), Image.BILINEAR)
        top, left = crop_origin(nh, nw)
        return img.crop((left, top, left + CROP, top + CROP))

    return by_hand, "PIL by hand (torchvision missing)"


def pil_decode(blob: bytes) -> Image.Image:
    return Image.open(io.BytesIO(blob)).convert("RGB")


def chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


# ---- measurements ---------------------------------------------------------------------------------

def gpu_pass(tensors: list[torch.Tensor], batch: int, device: torch.device, mode: str, resize: str | None) -> dict:
    """All images through decode_jpeg on the GPU in batches (and a resize), after a warm-up batch."""
    need_torchvision()
    read_mode = {"unchanged": ImageReadMode.UNCHANGED, "rgb": ImageReadMode.RGB}[mode]
    finish = {None: None, "per_image": gpu_batch_per_image, "grouped": gpu_batch_grouped}[resize]
    chunks = [tensors[i:i + batch] for i in range(0, len(tensors), batch)]

    def one(chunk):
        decoded = decode_jpeg(chunk, mode=read_mode, device=device)
        return finish(decoded) if finish else decoded

    sync(device)
    t = time.perf_counter()
    first = one(chunks[0])
    sync(device)
    warm = time.perf_counter() - t
    shape = list(first.shape) if isinstance(first, torch.Tensor) else [list(first[0].shape), len(first)]
    del first
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    per_batch = []
    t0, c0 = time.perf_counter(), time.process_time()
    for chunk in chunks:
        a = time.perf_counter()
        one(chunk)
        per_batch.append(time.perf_counter() - a)
    sync(device)
    t1, c1 = time.perf_counter(), time.process_time()
    n = len(tensors)
    return {
        "batch": batch, "mode": mode, "resize": resize, "images": n, "batches": len(chunks),
        "warmup_s": round(warm, 4), "seconds": round(t1 - t0, 4),
        "images_per_s": round(n / (t1 - t0), 1),
        "ms_per_batch": round((t1 - t0) / len(chunks) * 1000, 3),
        # The host's return time a call: decode_jpeg waits for its own stream, so close to the above.
        "host_call_ms_median": round(sorted(per_batch)[len(per_batch) // 2] * 1000, 3),
        # The process's CPU time, all threads: what GPU decoding still costs the host's cores.
        "host_cpu_ms_per_image": round((c1 - c0) / n * 1000, 4),
        "host_cores_busy": round((c1 - c0) / (t1 - t0), 2),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        "first_output": shape,
    }


def diff_stats(pairs) -> dict:
    """Over (a, b) uint8 (C, H, W) pairs of the same shape: 8-bit level differences."""
    n = values = pixels = differ = differ_gt1 = pix_differ = identical = 0
    total, worst = 0, 0
    hist = [0, 0, 0, 0]  # |d| = 0, 1, 2, 3 or more
    for a, b in pairs:
        if a.shape != b.shape:
            raise ValueError(f"shapes differ: {list(a.shape)} against {list(b.shape)}")
        d = (a.to(torch.int16) - b.to(torch.int16)).abs()
        n += 1
        values += d.numel()
        pixels += d[0].numel()
        total += int(d.sum())
        worst = max(worst, int(d.max()))
        differ += int((d > 0).sum())
        differ_gt1 += int((d > 1).sum())
        pix_differ += int((d.amax(dim=0) > 0).sum())
        identical += int(d.max()) == 0
        for k in range(3):
            hist[k] += int((d == k).sum())
        hist[3] += int((d >= 3).sum())
    return {"images": n, "images_identical": identical, "max_abs": worst,
            "mean_abs": round(total / values, 5),
            "frac_values_differ": round(differ / values, 6),
            "frac_values_differ_gt1": round(differ_gt1 / values, 6),
            "frac_pixels_differ": round(pix_differ / pixels, 6),
            "abs_histogram_0_1_2_3plus": hist}


def agreement(blobs: list[bytes], what: str, device: torch.device) -> dict:
    tf, ref = pil_transform()
    decoded_pil = [pil_decode(b) for b in blobs]
    expect = [chw(tf(im)) for im in decoded_pil]
    if what == "resize_only":
        # The resampling alone: PIL's decoded pixels through the GPU (or CPU) resize.
        got = [resize_crop(chw(im).unsqueeze(0).to(device))[0].cpu() for im in decoded_pil]
        return {"reference": ref, "device": str(device), **diff_stats(zip(got, expect))}
    if what == "cpu_decode_only":
        # torchvision's bundled libjpeg against Pillow's: both libjpeg-turbo, perhaps not the same build.
        need_torchvision()
        got = [decode_jpeg(t, mode=ImageReadMode.RGB) for t in byte_tensors(blobs)]
        return diff_stats(zip(got, [chw(im) for im in decoded_pil]))
    need_torchvision()
    decoded = decode_jpeg(byte_tensors(blobs), mode=ImageReadMode.RGB, device=device)
    if what == "decode_only":
        return diff_stats(zip([d.cpu() for d in decoded], [chw(im) for im in decoded_pil]))
    got = gpu_batch_per_image(decoded).cpu()
    return {"reference": ref, **diff_stats(zip(got, expect))}


def cpu_one_core(blobs: list[bytes], what: str) -> dict:
    """images/s on one core; torch's own threads pinned to one for torchvision's decode."""
    tf, ref = pil_transform()
    if what == "pil_decode":
        fn = lambda b: pil_decode(b).load()  # noqa: E731 (convert already loads; kept explicit)
    elif what == "pil_decode_resize_crop":
        fn = lambda b: np.asarray(tf(pil_decode(b)))  # noqa: E731
    else:
        need_torchvision()
        tensors = byte_tensors(blobs)
        lookup = {id(b): t for b, t in zip(blobs, tensors)}
        fn = lambda b: decode_jpeg(lookup[id(b)], mode=ImageReadMode.RGB)  # noqa: E731
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fn(blobs[0])
        t0, c0 = time.perf_counter(), time.process_time()
        for b in blobs:
            fn(b)
        t, c = time.perf_counter() - t0, time.process_time() - c0
    finally:
        torch.set_num_threads(threads)
    out = {"images": len(blobs), "seconds": round(t, 4), "images_per_s": round(len(blobs) / t, 1),
           "ms_per_image": round(t / len(blobs) * 1000, 4), "cpu_over_wall": round(c / t, 3)}
    if what == "pil_decode_resize_crop":
        out["reference"] = ref
    return out


# ---- where libnvjpeg lives ------------------------------------------------------------------------

def loaded_libraries(word: str) -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if word in line and "/" in line})
    except OSError:
        return []


def nvjpeg_version(path: str) -> dict:
    lib = ctypes.CDLL(path)
    out = {}
    for name, prop in (("major", 0), ("minor", 1), ("patch", 2)):  # libraryPropertyType
        v = ctypes.c_int(-1)
        status = lib.nvjpegGetProperty(prop, ctypes.byref(v))
        out[name] = v.value if status == 0 else f"status {status}"
    return out


def libraries() -> dict:
    candidates = set()
    roots = []
    if torchvision is not None:
        tv = Path(torchvision.__file__).parent
        roots += [tv, tv.parent / "torchvision.libs"]
    import site
    roots += [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    roots.append(Path(torch.__file__).parent)
    for root in roots:
        if root.is_dir():
            candidates.update(glob.glob(str(root / "**" / "libnvjpeg*"), recursive=True))
    for pattern in ("/usr/local/cuda*/lib64/libnvjpeg*", "/usr/lib/x86_64-linux-gnu/libnvjpeg*"):
        candidates.update(glob.glob(pattern))
    files = [{"path": p, "bytes": os.path.getsize(p), "symlink_to": os.path.realpath(p) if os.path.islink(p) else None}
             for p in sorted(candidates)]
    loaded = loaded_libraries("nvjpeg")
    out = {"files": files, "loaded_in_process": loaded,
           "torchvision_image_so": [p for p in loaded_libraries("torchvision") if p.endswith(".so")],
           "cudart_loaded": loaded_libraries("libcudart")}
    version_from = loaded[0] if loaded else (files[0]["path"] if files else None)
    if version_from:
        try:
            out["version"] = {"of": version_from, **nvjpeg_version(version_from)}
        except Exception as e:  # noqa: BLE001 (a version is a nicety; the paths are the point)
            out["version"] = {"of": version_from, "error": f"{type(e).__name__}: {e}"}
    return out


# In a child process: creating a handle goes through the driver, and a crash there must not take
# the measurements with it. Enum values from nvjpeg.h (NVJPEG_BACKEND_HARDWARE = 3; status 7 is
# NVJPEG_STATUS_ARCH_MISMATCH, which torchvision takes as "no hardware decoder").
HW_PROBE = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
out = {}
for name, backend in (("hardware", 3), ("default", 0)):
    h = ctypes.c_void_p()
    st = lib.nvjpegCreateEx(backend, None, None, 0, ctypes.byref(h))
    r = {"create_status": st}
    if st == 0 and backend == 3:
        try:
            engines, cores = ctypes.c_uint(0), ctypes.c_uint(0)
            s2 = lib.nvjpegGetHardwareDecoderInfo(h, ctypes.byref(engines), ctypes.byref(cores))
            r.update(info_status=s2, engines=engines.value, cores_per_engine=cores.value)
        except AttributeError as e:
            r["info_error"] = str(e)
    if st == 0:
        lib.nvjpegDestroy(h)
    out[name] = r
print(json.dumps(out))
"""


def hardware_probe(path: str) -> dict:
    p = subprocess.run([sys.executable, "-c", HW_PROBE, path], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"probe exited {p.returncode}: {p.stderr.strip()[-500:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    hw = out.get("hardware", {})
    out["hardware_backend"] = ("available" if hw.get("create_status") == 0 else
                               "arch mismatch (no hardware decoder)" if hw.get("create_status") == 7 else
                               f"status {hw.get('create_status')}")
    return out


def environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "torchvision": getattr(torchvision, "__version__", None),
           "torchvision_error": TV_ERROR, "cuda": torch.version.cuda, "pillow": Image.__version__,
           "numpy": np.__version__, "device": str(device), "gpu": None, "cores": os.cpu_count(),
           "python": sys.version.split()[0]}
    try:
        from PIL import features
        env["pillow_libjpeg_turbo"] = features.version("libjpeg_turbo")
    except Exception:  # noqa: BLE001
        pass
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["gpu_capability"] = list(torch.cuda.get_device_capability(device))
        env["driver_cuda"] = getattr(torch._C, "_cuda_getDriverVersion", lambda: None)()
    return env


# ---- the table ------------------------------------------------------------------------------------

def table(data: dict) -> str:
    env = data.get("environment", {})
    ph = data.get("photos", {})
    s = data.get("settings", {})
    cpu = data.get("cpu_one_core", {})
    per_core = (cpu.get("pil_decode_resize_crop") or {}).get("images_per_s")
    lines = [f"gpu_decode: {env.get('gpu') or env.get('device')}, torch {env.get('torch')}, torchvision "
             f"{env.get('torchvision')}, CUDA {env.get('cuda')}, {ph.get('read')} photos "
             f"({ph.get('mean_kb')} KB each, {ph.get('shapes_of_first_50')}), {data.get('elapsed_s')} s"]
    lines.append(f"{'GPU (decode_jpeg device=cuda)':34s} {'batch':>5s} {'img/s':>8s} {'ms/bat':>8s} "
                 f"{'cpuMs/im':>8s} {'cores':>6s} {'peakMiB':>8s} {'xCore':>6s}")
    for key, r in data.get("gpu", {}).items():
        if "images_per_s" not in r:
            lines.append(f"{key:34s} {note(r)}")
            continue
        x = r["images_per_s"] / per_core if per_core else None
        lines.append(f"{key:34s} {r['batch']:5d} {fmt(r['images_per_s'])} {fmt(r['ms_per_batch'], 8, 2)} "
                     f"{fmt(r['host_cpu_ms_per_image'], 8, 3)} {fmt(r['host_cores_busy'], 6, 2)} "
                     f"{fmt(r['peak_gpu_mib'])} {fmt(x, 6, 1)}")
    lines.append("  cpuMs/im: the process's CPU time an image; cores: CPU time over wall; "
                 "xCore: img/s over one core's PIL decode+resize+crop")
    lines.append(f"{'CPU, one core':34s} {'':5s} {'img/s':>8s} {'ms/im':>8s}")
    for key, r in cpu.items():
        if "images_per_s" not in r:
            lines.append(f"{key:34s} {note(r)}")
            continue
        lines.append(f"{key:34s} {'':5s} {fmt(r['images_per_s'])} {fmt(r['ms_per_image'], 8, 3)}")
    lines.append(f"{'agreement (8-bit levels)':34s} {'imgs':>5s} {'max':>5s} {'mean':>8s} {'fracVal':>8s} "
                 f"{'frac>1':>8s} {'fracPix':>8s} {'same':>5s}")
    for key, r in data.get("agreement", {}).items():
        if "max_abs" not in r:
            lines.append(f"{key:34s} {note(r)}")
            continue
        lines.append(f"{key:34s} {r['images']:5d} {r['max_abs']:5d} {fmt(r['mean_abs'], 8, 4)} "
                     f"{fmt(r['frac_values_differ'], 8, 4)} {fmt(r['frac_values_differ_gt1'], 8, 4)} "
                     f"{fmt(r['frac_pixels_differ'], 8, 4)} {r['images_identical']:5d}")
    lib = data.get("nvjpeg", {})
    if "files" in lib:
        v = lib.get("version", {})
        lines.append(f"libnvjpeg {v.get('major')}.{v.get('minor')}.{v.get('patch')}; loaded: "
                     f"{', '.join(lib['loaded_in_process']) or '-'}; files: "
                     + "; ".join(f"{f['path']} ({f['bytes'] / 2**20:.1f} MiB)" for f in lib["files"]))
    elif lib:
        lines.append(f"libnvjpeg: {note(lib)}")
    hw = data.get("nvjpeg_hardware")
    if hw:
        hwd = hw.get("hardware", {})
        lines.append(f"nvJPEG hardware backend: {hw.get('hardware_backend') or note(hw)}"
                     + (f", {hwd.get('engines')} engines x {hwd.get('cores_per_engine')} cores" if "engines" in hwd else ""))
    lines.append(f"settings: {s}")
    if data.get("errors"):
        lines.append(f"{len(data['errors'])} errors: see the JSON's `errors`")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", type=Path, help="a folder of JPEGs (searched recursively)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--images", type=int, default=4000, help="images read into memory and decoded a pass")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--more-batches", default="32,512", help="further batch sizes, if time allows ('' for none)")
    ap.add_argument("--agree-images", type=int, default=64)
    ap.add_argument("--cpu-images", type=int, default=200, help="images for each one-core CPU reference")
    ap.add_argument("--budget-s", type=float, default=45.0,
                    help="start no measurement after this many seconds from launch")
    ap.add_argument("--out", type=Path, help="the JSON (default: none, table only)")
    args = ap.parse_args()

    run = Run(args.out, args.budget_s, "gpu_decode", START)
    data = run.data
    run.print_on_sigterm(table)
    data["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if TV_ERROR:
        data["errors"].append(f"import torchvision: {TV_ERROR}")
    device = torch.device(args.device)
    cuda = device.type == "cuda" and torch.cuda.is_available()
    for key in ("environment", "photos", "gpu", "agreement", "cpu_one_core", "nvjpeg", "nvjpeg_hardware"):
        data[key] = {}
    run.guarded("environment", data, "environment", environment, device if cuda else torch.device("cpu"))

    loaded = {}

    def read():
        names, blobs, info = read_photos(args.photos, args.images)
        loaded.update(names=names, blobs=blobs, tensors=byte_tensors(blobs))
        return info

    run.guarded("photos", data, "photos", read)
    if "blobs" not in loaded:
        print(table(data), flush=True)
        sys.exit(1)
    blobs, tensors = loaded["blobs"], loaded["tensors"]
    step = max(1, len(blobs) // max(1, args.agree_images))
    agree = blobs[::step][:args.agree_images]
    cpu_blobs = blobs[:args.cpu_images]

    gpu = data["gpu"]

    def gpu_item(key, *a):
        if cuda:
            run.guarded(f"gpu {key}", gpu, key, gpu_pass, tensors, *a)
        else:
            gpu[key] = NO_CUDA
            run.save()

    # 1-2: the main batch size.
    b = args.batch
    gpu_item(f"decode unchanged b{b}", b, device, "unchanged", None)
    gpu_item(f"decode rgb b{b}", b, device, "rgb", None)
    gpu_item(f"decode+resize per image b{b}", b, device, "rgb", "per_image")
    gpu_item(f"decode+resize grouped b{b}", b, device, "rgb", "grouped")

    # 3: agreement with the PIL pipeline.
    ag = data["agreement"]
    for what in ("full_pipeline", "decode_only"):
        if cuda:
            run.guarded(f"agreement {what}", ag, what, agreement, agree, what, device)
        else:
            ag[what] = NO_CUDA
    run.guarded("agreement resize_only", ag, "resize_only", agreement, agree, "resize_only",
                device if cuda else torch.device("cpu"))
    run.guarded("agreement cpu_decode_only", ag, "cpu_decode_only", agreement, agree, "cpu_decode_only",
                torch.device("cpu"))

    # 4: one core on the CPU.
    for what in ("pil_decode", "pil_decode_resize_crop", "torchvision_cpu_decode"):
        run.guarded(f"cpu {what}", data["cpu_one_core"], what, cpu_one_core, cpu_blobs, what)

    # 5: the library, then the other batch sizes.
    run.guarded("nvjpeg libraries", data, "nvjpeg", libraries)
    lib = data["nvjpeg"]
    path = (lib.get("loaded_in_process") or [None])[0] if isinstance(lib, dict) else None
    if not cuda:
        data["nvjpeg_hardware"] = NO_CUDA
        run.save()
    elif path:
        run.guarded("nvjpeg hardware probe", data, "nvjpeg_hardware", hardware_probe, path)
    else:
        data["nvjpeg_hardware"] = {"skipped": "no libnvjpeg loaded in this process"}
    for more in [int(x) for x in args.more_batches.split(",") if x.strip()]:
        gpu_item(f"decode rgb b{more}", more, device, "rgb", None)
        gpu_item(f"decode+resize grouped b{more}", more, device, "rgb", "grouped")
    run.save()
    print(table(data), flush=True)


if __name__ == "__main__":
    main_or_table(main, table)
