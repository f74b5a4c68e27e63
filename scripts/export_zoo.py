#!/usr/bin/env python3
"""Export a model to TorchScript for zoo-select: python/zoo_select/export.py's command, run from
this checkout without installing the package (`--help` says everything)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from zoo_select.export import main  # noqa: E402

if __name__ == "__main__":
    main(prog=".venv/bin/python scripts/export_zoo.py", default_out_dir=ROOT / "zoo")
