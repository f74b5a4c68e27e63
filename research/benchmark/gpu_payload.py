#!/usr/bin/env python3
"""Pack what the ground truth needs onto a lent GPU machine, which has torch but neither the
benchmark's zoo (135 MB of TorchScript, over the 64 MiB a device call carries) nor the
efficientnet-lite packages: the pretrained Lite bodies without their ImageNet heads (the
fine-tuning replaces them), checksums of the random Lites (re-drawn there from the export's
seed), the architecture package and the target trees. SmallNets come from the committed sources.

    .venv/bin/python research/benchmark/gpu_payload.py        # writes gpu/ (git-ignored)
    run(command="bash research/benchmark/gpu_ground_truth", carry=["gpu"], timeout_s=...)
"""

import json
import shutil
import sys
import tarfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import finetune  # noqa: E402

OUT = common.ROOT / "gpu"


def main():
    payload = OUT / "payload"
    payload.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for src in common.ZOO_MODELS:
        if src.kind != "lite":
            continue
        model = finetune.eager_model(src)
        if src.pretrained:
            body = {k: v for k, v in model.state_dict().items() if not k.startswith("_fc.")}
            torch.save(body, payload / f"{src.name}.pt")
        else:
            checksums[src.name] = finetune.checksum(model)
    (payload / "checksums.json").write_text(json.dumps(checksums, indent=1))
    import efficientnet_lite_pytorch

    site = OUT / "site" / "efficientnet_lite_pytorch"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(Path(efficientnet_lite_pytorch.__file__).parent, site, ignore=shutil.ignore_patterns("__pycache__"))
    with tarfile.open(OUT / "targets.tar", "w") as tar:
        tar.add(common.DATA / "targets", arcname="targets")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
