"""Ranking.plot(): scores.svg's figure in matplotlib, for a notebook. One panel per model with
its own layer names, all on one y scale (comparing models is half the decision); the score is
the one the cuts were chosen by, with this run's standard errors where it has them; each
model's cut is a filled dot, the layers within noise of it hollow ones, the pick a star."""

import math


def plot(report: dict, ax=None):
    import matplotlib.pyplot as plt

    rec = report["recommendation"]
    metric = rec["cut_metric"]
    panels = {}
    for r in report["results"]:
        score = r["scores"].get(metric)
        p = panels.setdefault(r["model"], {"layers": [], "scores": [], "se": [], "random": False})
        p["layers"].append(r["layer"])
        p["scores"].append(score if score is not None and math.isfinite(score) else math.nan)
        p["se"].append(r.get("errors", {}).get(metric, 0.0))
        p["random"] |= r.get("pretrained") is False
    if ax is not None and len(panels) != 1:
        raise ValueError(f"plot(ax=): the report has {len(panels)} models and ax= holds one panel; leave ax out")
    cols = min(3, len(panels)) or 1
    rows = math.ceil(len(panels) / cols) or 1
    if ax is None:
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), sharey=True, squeeze=False)
        axes = [a for row in axes for a in row]
    else:
        fig, axes = ax.figure, [ax]
    cuts = report.get("layer_cuts", {})
    for i, (a, (model, p)) in enumerate(zip(axes, panels.items())):
        colour = f"C{i % 10}"
        x = list(range(len(p["layers"])))
        a.errorbar(x, p["scores"], yerr=p["se"], color=colour, marker="o", markersize=3, capsize=2, linewidth=1.5)
        cut = cuts.get(model)
        if cut:
            idx = p["layers"].index(cut["layer"])
            a.plot([idx], [p["scores"][idx]], "o", markersize=10, color=colour, markeredgecolor="black")
            for alt in cut.get("alternatives", []):
                j = p["layers"].index(alt)
                a.plot([j], [p["scores"][j]], "o", markersize=9, fillstyle="none", color=colour)
        if model == rec.get("model") and rec.get("layer") in p["layers"]:
            k = p["layers"].index(rec["layer"])
            a.plot([k], [p["scores"][k]], "*", markersize=18, color="gold", markeredgecolor="black", zorder=5)
        a.set_xticks(x, p["layers"], rotation=45, ha="right", fontsize=8)
        a.set_title(model + (" (random)" if p["random"] else ""), fontsize=10)
        a.grid(alpha=0.3)
    for a in axes[len(panels):]:
        a.set_visible(False)
    axes[0].set_ylabel(metric)
    title = f"{metric} along each model's layers: filled = its cut, hollow = within noise, star = the pick"
    note = model_note(rec)
    fig.suptitle(title + ("\n" + note if note else ""), fontsize=10)
    fig.tight_layout()
    return fig


def model_note(rec: dict):
    """What chose the model: the panels plot the cut's score, so the model's is said in words."""
    if rec.get("model") is None or rec.get("score") is None or rec.get("score_layer") is None:
        return None
    value = f"{rec['score']:.4f}" + (f" ± {rec['score_se']:.4f}" if rec.get("score_se") is not None else "")
    return f"the model was chosen by {rec['metric']}: {rec['model']} has the best, {value} at {rec['score_layer']}"
