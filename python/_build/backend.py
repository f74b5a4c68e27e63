"""maturin's PEP 517 backend, with LIBTORCH set to the torch of the environment being
installed into, unless the caller set it.

pip builds in an isolated environment where `import torch` fails, so tch's own way of finding
torch (LIBTORCH_USE_PYTORCH) cannot work there; the target environment's site-packages is still
sys.prefix's, and torch/ in it is a libtorch folder (include/, lib/)."""

import os
import sysconfig
from pathlib import Path

import maturin


def _libtorch() -> None:
    if os.environ.get("LIBTORCH"):
        return
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib"):
        torch = Path(paths[key]) / "torch"
        if (torch / "lib").is_dir() and (torch / "include").is_dir():
            os.environ["LIBTORCH"] = str(torch)
            return
    raise RuntimeError(
        f"zoo-select is built against the torch of the environment it is installed into, and "
        f"{paths['purelib']} has none: pip install torch==2.11.0 first, or set LIBTORCH to a "
        f"libtorch 2.11 folder"
    )


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _libtorch()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _libtorch()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return maturin.build_sdist(sdist_directory, config_settings)


get_requires_for_build_wheel = maturin.get_requires_for_build_wheel
get_requires_for_build_editable = maturin.get_requires_for_build_editable
get_requires_for_build_sdist = maturin.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = maturin.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = maturin.prepare_metadata_for_build_editable
