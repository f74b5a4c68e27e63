"""zoo-select from Python: which pretrained model to fine-tune, and where to cut it.

    import zoo_select
    ranking = zoo_select.rank("configs/demo.yaml")          # a config, as the CLI reads it
    ranking = zoo_select.rank(images="data/pets", models=[torchvision.models.resnet18()],
                              metrics=["transrate", "knn"])  # or keywords: any config key
    ranking.table, ranking.recommendation, ranking.plot(), ranking.cut(model)

The same Rust engine as the `zoo-select` binary runs in this process (python/src); this
package turns keywords and models into its config, and its report into pandas and matplotlib.
"""

import os

# As the binary does before MKL starts (docs/reproducibility.md): one MKL code path per CPU, so
# a notebook and the CLI round alike. Only effective when torch has not run MKL yet.
os.environ.setdefault("MKL_CBWR", "AUTO")

__version__ = "0.1.0"
__all__ = ["rank", "Ranking"]


def __getattr__(name):
    # Lazy, so that `python -m zoo_select.export` (and scripts/export_zoo.py, which runs it from
    # the checkout without the native half built) needs only torch. The submodules `export`
    # (export(source, out_dir=...)) and `cut` (cut(module, layer)) load on first use.
    if name in ("rank", "Ranking"):
        from . import ranking

        return getattr(ranking, name)
    if name in ("export", "cut"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'zoo_select' has no attribute {name!r}")
