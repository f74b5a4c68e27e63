"""rank()'s `models=` items as the config's model entries. An nn.Module or a library name
("torchvision:resnet50", "timm:convnext_atto") is exported to TorchScript with its manifest
first (zoo_select.export), into `<output>/models/`; files, manifests and folders are used where
they are."""

import os
from pathlib import Path

NAMED = ("torchvision:", "timm:", "efficientnet-lite:", "module:")


def model_entries(models, *, out_dir: Path, input_size, random: bool, layers, base: Path):
    """(model entries, zoo folder or None, [(name, nn.Module)]) for `models`: one item, a list
    of items, or a mapping of names to items."""
    if isinstance(models, dict):
        items = list(models.items())
    elif isinstance(models, (list, tuple)):
        items = [(None, m) for m in models]
    else:
        items = [(None, models)]
    entries, zoo, modules, names = [], None, [], set()
    for name, item in items:
        entry, module = entry_for(item, name, out_dir=out_dir, input_size=input_size, random=random, layers=layers,
                                  base=base, taken=names)
        if entry is None:
            if zoo is not None:
                raise ValueError("models=: one zoo folder at most; list the others' manifests")
            zoo = {"dir": str(module)}
            continue
        entries.append(entry)
        if module is not None:
            modules.append((entry["name"], module))
    return entries, zoo, modules


def entry_for(item, name, *, out_dir, input_size, random, layers, base, taken):
    """(config entry, nn.Module or None); (None, folder) for a zoo folder."""
    from torch import nn

    from .export import IMAGENET_MEAN, IMAGENET_STD, ExportError, export, imagenet_resize

    def unique(n: str) -> str:
        stem, k = n, 2
        while n in taken:
            n, k = f"{stem}_{k}", k + 1
        taken.add(n)
        return n

    if isinstance(item, nn.Module):
        options = {"input_size": input_size, "random": random}
        try:
            default = type(item).__name__.lower() + ("_random" if random else "")
            manifest, _ = export(item, out_dir=out_dir, name=unique(name or default), force=True, **options)
        except ExportError as e:
            raise ValueError(f"models=: {type(item).__name__}: {e}") from None
        return {"manifest": str(manifest), "name": manifest.stem}, item
    if isinstance(item, dict):
        entry = dict(item)
        for key in ("path", "manifest"):
            if key in entry:
                entry[key] = os.path.normpath(base / Path(entry[key]).expanduser())
        if name:
            entry["name"] = name
        return entry, None
    if not isinstance(item, (str, Path)):
        raise TypeError(
            f"models=: cannot use a {type(item).__name__}: give nn.Modules, TorchScript files, manifests, a zoo folder "
            f"or names such as 'torchvision:resnet50'"
        )
    text = str(item)
    path = Path(os.path.normpath(base / Path(text).expanduser()))
    if text.startswith(NAMED) and not path.exists():
        return named_entry(text, name, out_dir=out_dir, input_size=input_size, random=random, unique=unique), None
    if random:
        # A file's weights are what they are; its manifest says whether they are trained.
        raise ValueError(
            f"models=: random=True builds library names with random weights and marks modules as random; "
            f"{path} is a file or folder whose weights it cannot change: give it without random=True"
        )
    if path.is_dir():
        return None, path
    if not path.exists():
        raise ValueError(f"models=: {path} does not exist")
    if path.suffix in (".yaml", ".yml") or path.with_suffix(".yaml").exists():
        entry = {"manifest": str(path if path.suffix in (".yaml", ".yml") else path.with_suffix(".yaml"))}
        if input_size is not None:
            entry["input"] = {"size": int(input_size)}  # the engine keeps the manifest's resize ratio
    else:
        # A TorchScript file without a manifest: its input and layers come from the arguments.
        if input_size is None or layers is None:
            raise ValueError(
                f"models=: {path} has no manifest beside it: give input_size= and layers= (`zoo-select layers "
                f"{path}` lists its layers), or export it with its manifest (python -m zoo_select.export)"
            )
        size = int(input_size)
        entry = {"path": str(path), "name": path.stem, "layers": layers,
                 "input": {"size": size, "resize": imagenet_resize(size), "mean": IMAGENET_MEAN, "std": IMAGENET_STD}}
    if name:
        entry["name"] = unique(name)
    return entry, None


def made_by(manifest: Path):
    import yaml

    try:
        return (yaml.safe_load(manifest.read_text()) or {}).get("export_command")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def named_entry(text, name, *, out_dir, input_size, random, unique):
    """A library model exported once per output folder: the manifest is reused while it was
    made from the same name and options and its file is there (its sha256 is checked by the
    engine)."""
    from .export import ExportError, export, name_of

    command = f"zoo_select.rank(models=[{text!r}], random={bool(random)}, input_size={input_size!r})"
    target = unique(name or name_of(text, random))
    manifest = out_dir / f"{target}.yaml"
    if (out_dir / f"{target}.pt").exists() and made_by(manifest) == command:
        return {"manifest": str(manifest)}
    try:
        manifest, _ = export(text, out_dir=out_dir, name=target, force=True, command=command, input_size=input_size, random=random)
    except ExportError as e:
        raise ValueError(f"models=: {text}: {e}") from None
    return {"manifest": str(manifest)}
