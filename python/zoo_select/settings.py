"""A run's config from rank()'s arguments: the same YAML the CLI reads, written to
`<output>/config.yaml` so that `zoo-select --config <output>/config.yaml` repeats the run.

Paths in it are absolute: relative ones given as keywords resolve against the working
directory, those of a config file against its folder (as the CLI resolves them)."""

import os
from pathlib import Path

import yaml

from .models import model_entries


def load(config) -> dict:
    """A config file's keys with its relative paths made absolute against its folder."""
    path = Path(config)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"config {path}: cannot read it ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"config {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config {path}: expected a mapping of keys, found {type(raw).__name__}")
    base = path.resolve().parent
    raw.setdefault("output", str(Path("runs") / path.stem))
    return absolute(raw, base)


def absolute(config: dict, base: Path) -> dict:
    """`config` with the paths the CLI resolves made absolute against `base`."""
    out = dict(config)

    def fix(value):
        # Lexically, as the engine resolves a config's paths: `configs/../data` would be
        # another dataset to the statistics cache than `data`.
        if isinstance(value, (str, Path)) and str(value):
            return os.path.normpath(base / Path(value).expanduser())
        return value

    dataset = out.get("dataset")
    if isinstance(dataset, dict) and "root" in dataset:
        out["dataset"] = {**dataset, "root": fix(dataset["root"])}
    zoo = out.get("zoo")
    if isinstance(zoo, dict) and "dir" in zoo:
        out["zoo"] = {**zoo, "dir": fix(zoo["dir"])}
    elif isinstance(zoo, (str, Path)):
        out["zoo"] = fix(zoo)
    if isinstance(out.get("models"), list):
        out["models"] = [
            {k: fix(v) if k in ("path", "manifest") else v for k, v in m.items()} if isinstance(m, dict) else m
            for m in out["models"]
        ]
    for key in ("cache", "output"):
        if key in out and out[key] is not None:
            out[key] = fix(out[key])
    return out


def merge(base: dict, extra: dict) -> dict:
    """`extra` over `base`, mappings merged key by key (dataset={"max_per_class": 50} keeps the
    root)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def compose(config, *, images, models, layers, metrics, device, input_size, output, random, settings) -> tuple[dict, list]:
    """The run's config, and the nn.Modules that were handed over, by model name."""
    cwd = Path.cwd()
    run = load(config) if config is not None else {}
    keys = {k: v for k, v in settings.items()}
    if images is not None:
        given = {"root": str(images)} if not isinstance(images, dict) else images
        keys["dataset"] = merge(keys.get("dataset") or {}, given)
    for key, value in (("metrics", metrics), ("device", device), ("output", output)):
        if value is not None:
            keys[key] = value
    if isinstance(keys.get("metrics"), str) and keys["metrics"] != "all":
        keys["metrics"] = [keys["metrics"]]
    run = merge(run, absolute(keys, cwd))
    if not run.get("output"):
        run["output"] = str(cwd / "runs" / "rank")
    modules = []
    if models is not None:
        entries, zoo, modules = model_entries(
            models, out_dir=Path(run["output"]) / "models", input_size=input_size, random=random, layers=layers, base=cwd
        )
        run["models"] = entries
        if zoo is not None:
            run["zoo"] = zoo
        elif "zoo" not in settings:
            run.pop("zoo", None)  # models= replaces the config's models, whichever way it named them
    elif input_size is not None or random:
        raise ValueError("input_size= and random= describe the models given with models=; give them there")
    if layers is not None:  # every model's, as the keyword says, over the config's
        for entry in run.get("models", []):
            entry["layers"] = layers
        if isinstance(run.get("zoo"), dict):
            run["zoo"]["layers"] = layers
        elif isinstance(run.get("zoo"), str):
            run["zoo"] = {"dir": run["zoo"], "layers": layers}
    return run, modules


def write(run: dict) -> Path:
    """Writes the config where the run's results go, and returns its path."""
    out = Path(run["output"])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    header = "# Written by zoo_select.rank: `zoo-select --config <this file>` repeats the run.\n"
    path.write_text(header + yaml.safe_dump(run, sort_keys=False))
    return path
