"""rank(): the CLI's run from Python, and the Ranking it returns."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import settings


@dataclass
class Recommendation:
    """What to fine-tune: `model`, cut after `layer`; `alternatives` are the model's other layers
    the scores cannot tell from it, `models_within_noise` the other models; `text` is the CLI's
    sentence, `details` report.json's whole entry."""

    model: str | None
    layer: str | None
    alternatives: list = field(default_factory=list)
    models_within_noise: list = field(default_factory=list)
    text: str = ""
    details: dict = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return self.text


class Ranking:
    """One run's results: `.table` (pandas), `.recommendation`, `.report` (report.json as a
    dict), `.files`, `.plot()` and `.cut(model)`."""

    def __init__(self, report: dict, files: dict, modules: dict):
        self.report = report
        self.files = files
        self._modules = modules
        rec = report["recommendation"]
        self.recommendation = Recommendation(
            model=rec.get("model"),
            layer=rec.get("layer"),
            alternatives=list(rec.get("alternatives", [])),
            models_within_noise=list(rec.get("models_within_noise", [])),
            text=rec.get("text", ""),
            details=rec,
        )

    @property
    def table(self):
        """One row per (model, layer), in the report's order: dim, pretrained, params_after, n,
        every metric's score, and `<metric>_se` where this run has a standard error."""
        import pandas as pd

        rows = []
        for r in self.report["results"]:
            row = {
                "model": r["model"],
                "layer": r["layer"],
                "dim": r["dim"],
                "pretrained": r.get("pretrained"),
                "params_after": r.get("params_after"),
                "n": r["n"],
            }
            row.update({m: r["scores"].get(m) for m in self.report["metrics"]})
            row.update({f"{m}_se": se for m, se in r.get("errors", {}).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, ax=None):
        """Each model's layer curve of the score that chose the cut, its cut marked, titled by
        the score that chose the model: scores.svg's content, as a matplotlib Figure."""
        from .plot import plot

        return plot(self.report, ax=ax)

    def cut(self, model=None):
        """The nn.Module handed to rank() (by name, or the recommended one) cut after its
        recommended layer; see zoo_select.cut.cut for exactly what it keeps."""
        from .cut import cut

        if model is None:
            name = self.recommendation.model
        elif isinstance(model, str):
            name = model
        else:
            name = self._name_of(model)
            if name is None:
                raise ValueError("cut(): this module was not handed to rank(); pass one that was, or its name")
        if name not in self._modules:
            raise ValueError(
                f"cut(): {name!r} was not handed to rank() as an nn.Module (modules: "
                f"{sorted(self._modules) or 'none'}); load it and call zoo_select.cut.cut(module, layer)"
            )
        chosen = self.report["layer_cuts"].get(name)
        if chosen is None:
            raise ValueError(f"cut(): no layer of {name!r} has the score the cut is chosen by (report.json: layer_cuts)")
        return cut(self._modules[name], chosen["layer"])

    def _name_of(self, module):
        return next((n for n, m in self._modules.items() if m is module), None)

    def __repr__(self) -> str:
        return f"<Ranking of {len(self.report['results'])} (model, layer) rows: {self.recommendation.text.splitlines()[0]}>"


def rank(
    config=None,
    *,
    images=None,
    models=None,
    layers=None,
    metrics=None,
    device=None,
    input_size=None,
    output=None,
    random=False,
    no_cache=False,
    progress=True,
    **settings_,
) -> Ranking:
    """Ranks models and their layers for the labelled images, as `zoo-select --config` does.

    config:     a config file, read as the CLI reads it; keywords then override its keys.
    images:     the dataset folder (one sub-folder per class), or the whole `dataset` mapping.
    models:     an item, a list, or a mapping of names to items; an item is an nn.Module, a
                TorchScript file, a manifest, a zoo folder or a name ("torchvision:resnet50",
                "timm:convnext_atto"; weights from the local caches, `random=True` for random
                weights and to mark modules as random).
    layers:     every model's layer selection (`stages`, `all`, a list of names...).
    input_size: the input side of nn.Modules without metadata and of bare TorchScript files.
    output:     where report.json, scores.csv, scores.svg and config.yaml go (runs/rank).
    progress:   a progress bar (tqdm) while images are read, or a callable(total, done).
    Any other keyword is a config key (batch_size=64, folds=0, recommend={"cut": "deepest"}).
    """
    import torch  # noqa: F401  loaded first, so the engine links to the same libtorch

    from . import _native

    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"config {config}: no such file")

    plain = all(v is None for v in (images, models, layers, metrics, device, input_size, output))
    if config is not None and plain and not settings_ and not random:
        path, modules = Path(config), []
    else:
        run, modules = settings.compose(
            config, images=images, models=models, layers=layers, metrics=metrics, device=device,
            input_size=input_size, output=output, random=random, settings=settings_,
        )
        path = settings.write(run)
    bar = progress if callable(progress) else _Bar() if progress else None
    try:
        files = _native.rank(str(path), no_cache=no_cache, progress=bar)
    finally:
        if isinstance(bar, _Bar):
            bar.close()
    files = {Path(f).name: Path(f) for f in files}
    report = json.loads(files["report.json"].read_text())
    return Ranking(report, files, dict(modules))


class _Bar:
    """tqdm's bar, made at the first count: a widget in Jupyter where ipywidgets is installed
    (tqdm.auto), text lines, which notebooks show too, elsewhere."""

    def __init__(self):
        self.bar = None

    def __call__(self, total, done):
        if self.bar is None:
            try:
                import ipywidgets  # noqa: F401  tqdm.auto warns and falls back to text without it
                from tqdm.auto import tqdm
            except ImportError:
                from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="zoo-select")
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
