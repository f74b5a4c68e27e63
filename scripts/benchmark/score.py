#!/usr/bin/env python3
"""Score the benchmark zoo with zoo-select on every target's training split and measure how well
each metric's ranking agrees with the cached fine-tuned ground truth
(scripts/benchmark/ground_truth.csv). Prints the tables; with --write, also puts them and a
figure into docs/benchmark.md and docs/benchmark.svg.

    .venv/bin/python scripts/benchmark/score.py [--write]
    .venv/bin/python scripts/benchmark/score.py --fast     # one target, three models, checks

Model selection: each model's score at its last candidate layer (the features the new head
reads) against its whole-network fine-tuned test accuracy. Layer selection: one network's
scores at its candidate cuts against the accuracy of fine-tuning it cut there. Per task (and
per network for layers): Pearson r, Kendall tau, weighted Kendall tau (scipy.stats.weightedtau,
hyperbolic weights on both rankings), top-1 hit and regret (best accuracy minus the accuracy of
the top-scored choice, in points); then the mean over tasks (and networks).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BINARY = common.ROOT / "target" / "release" / "zoo-select"
METRICS = ["transrate", "logme", "hscore", "hscore_shrink", "nce", "leep", "gbc"]
# TransRate configurations scored from the same pass: an eps grid, and each normalisation alone
# and together, each on the plain formula's eps.
EPS_GRID = [1e-1, 1e-2, 1e-3, 1e-5]
VARIANTS = {
    **{f"transrate_eps{e:g}": {"eps": e} for e in EPS_GRID},
    "transrate_trace": {"scale": "trace"},
    "transrate_rank": {"per_rank": True},
    "transrate_count": {"class_weight": "count"},
    "transrate_l2": {"normalize": "l2"},
    "transrate_trace_rank": {"scale": "trace", "per_rank": True},
    "transrate_authors": {"scale": "trace", "per_rank": True, "class_weight": "count"},
    "transrate_all": {"scale": "trace", "per_rank": True, "class_weight": "count", "normalize": "l2"},
    **{f"transrate_authors_eps{e:g}": {"scale": "trace", "per_rank": True, "class_weight": "count", "eps": e} for e in EPS_GRID},
}
# ... and the remaining combinations of the four options, so that all sixteen are scored.
OPTIONS = {"trace": ("scale", "trace"), "rank": ("per_rank", True), "count": ("class_weight", "count"), "l2": ("normalize", "l2")}
for combo in itertools.chain.from_iterable(itertools.combinations(OPTIONS, k) for k in (2, 3)):
    if dict(OPTIONS[o] for o in combo) not in VARIANTS.values():
        VARIANTS["transrate_" + "_".join(combo)] = dict(OPTIONS[o] for o in combo)


# ------------------------------------------------------------------------------ statistics
def agreement(scores: list[float], accuracies: list[float]) -> dict:
    """How well `scores` rank choices whose fine-tuned accuracies (0..1) are `accuracies`."""
    s, a = np.asarray(scores, float), np.asarray(accuracies, float)
    best = int(np.argmax(s))
    constant = np.ptp(s) == 0 or np.ptp(a) == 0
    return {
        "pearson": float("nan") if constant else float(stats.pearsonr(s, a)[0]),
        "kendall": float("nan") if constant else float(stats.kendalltau(s, a)[0]),
        "wtau": float("nan") if constant else float(stats.weightedtau(s, a)[0]),
        "hit": float(a[best] == a.max()),
        "regret": float(100 * (a.max() - a[best])),
    }


def check_agreement():
    """The statistics on a case worked out by hand: four choices, scores 1..4, accuracies
    10, 20, 40, 30 %. One discordant pair of six: Kendall tau = (5 - 1) / 6. The top score picks
    30 % where 40 % was possible: no hit, regret 10 points."""
    got = agreement([1, 2, 3, 4], [0.1, 0.2, 0.4, 0.3])
    pearson = np.corrcoef([1, 2, 3, 4], [1, 2, 4, 3])[0, 1]  # = 0.8
    assert abs(got["kendall"] - 4 / 6) < 1e-12, got
    assert abs(got["pearson"] - pearson) < 1e-12 and abs(pearson - 0.8) < 1e-12, got
    assert got["hit"] == 0.0 and abs(got["regret"] - 10.0) < 1e-9, got
    # A perfect ranking: every coefficient 1, a hit, no regret.
    perfect = agreement([3, 1, 2], [0.9, 0.5, 0.7])
    assert all(abs(perfect[k] - 1) < 1e-12 for k in ("pearson", "kendall", "wtau")) and perfect["regret"] == 0, perfect
    # A reversed ranking: -1, and the worst choice.
    reverse = agreement([1, 2, 3], [0.9, 0.7, 0.5])
    assert abs(reverse["wtau"] + 1) < 1e-12 and abs(reverse["regret"] - 40) < 1e-9, reverse
    print("agreement statistics: the hand-made cases check out")


# ------------------------------------------------------------------------------ ground truth
def ground_truth(path: Path = common.GROUND_TRUTH, seed: int | None = None) -> dict:
    """(task, model, cut) -> test accuracy at the learning rate with the best validation
    accuracy (the protocol's selection, never looking at the test split): the mean over seeds,
    or one seed's run at that learning rate."""
    runs = defaultdict(dict)
    protocol = common.protocol_hash()
    with open(path) as f:
        rows = list(csv.DictReader(f))
    stale = {r["protocol"] for r in rows} - {protocol}
    if stale:
        print(f"warning: ground truth rows of other protocols {sorted(stale)} are ignored", file=sys.stderr)
    for r in rows:
        if r["protocol"] == protocol:
            runs[(r["task"], r["model"], r["cut"], float(r["lr"]))][int(r["seed"])] = (float(r["val_acc"]), float(r["test_acc"]))
    best = {}
    for (task, model, cut, lr), by_seed in runs.items():
        if seed is not None and seed not in by_seed:
            continue
        val = np.mean([v for v, _ in by_seed.values()])
        test = by_seed[seed][1] if seed is not None else np.mean([t for _, t in by_seed.values()])
        k = (task, model, cut)
        if k not in best or val > best[k][0]:
            best[k] = (val, test)
    return {k: v[1] for k, v in best.items()}


# ------------------------------------------------------------------------------ scoring
def score_task(task: common.Task, models: list[common.Source]) -> dict:
    """Runs zoo-select on the task's training split: (model, layer) -> {metric: score}."""
    out = common.DATA / "scores" / task.name
    config = common.DATA / "configs" / f"{task.name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"dataset: {{root: {common.DATA / 'targets' / task.name / 'train'}}}",
        "models:",
        *[f"  - {{manifest: {common.ZOO / (m.name + '.yaml')}, layers: [{', '.join(m.cuts)}]}}" for m in models],
        "metrics: all",
        "transrate_variants:",
        *[f"  {name}: {json.dumps(opts)}" for name, opts in VARIANTS.items()],
        "batch_size: 64",
        f"output: {out}",
    ]
    config.write_text("\n".join(lines) + "\n")
    subprocess.run([str(BINARY), "--config", str(config), "-q"], check=True)
    report = json.loads((out / "report.json").read_text())
    return {(r["model"], r["layer"]): r["scores"] for r in report["results"]}


SEED_CEILING = "(seed 0 predicting seed 1)"


def evaluate(tasks, models, truth, scores, ceiling=None):
    """For every metric: model-selection and layer-selection agreement per task and the means.
    With `ceiling` ((seed-0 truth, seed-1 truth)), also how well one seed's fine-tuned accuracies
    rank the other's: the best any score could hope for under the ground truth's own noise."""
    metrics = METRICS + list(VARIANTS)
    if ceiling is not None:
        scores = {t.name: {k: {**v, SEED_CEILING: ceiling[0].get((t.name, *k))} for k, v in scores[t.name].items()} for t in tasks}
        truth = {k: v for k, v in ceiling[1].items()}
        metrics = [SEED_CEILING]
    layer_models = [m for m in models if m.name in common.LAYER_MODELS]
    result = {}
    for metric in metrics:
        per_task_model, per_task_layer = {}, {}
        for task in tasks:
            s = scores[task.name]
            chosen = [m for m in models if (task.name, m.name, m.cuts[-1]) in truth and s.get((m.name, m.cuts[-1]), {}).get(metric) is not None]
            if len(chosen) >= 2:
                per_task_model[task.name] = agreement(
                    [s[(m.name, m.cuts[-1])][metric] for m in chosen], [truth[(task.name, m.name, m.cuts[-1])] for m in chosen]
                )
            layer_stats = []
            for m in layer_models:
                cuts = [c for c in m.cuts if (task.name, m.name, c) in truth and s.get((m.name, c), {}).get(metric) is not None]
                # NCE and LEEP read the source head, the same whatever the cut: nothing to rank.
                if len(cuts) >= 2 and len({s[(m.name, c)][metric] for c in cuts}) > 1:
                    layer_stats.append(agreement([s[(m.name, c)][metric] for c in cuts], [truth[(task.name, m.name, c)] for c in cuts]))
            if layer_stats:
                per_task_layer[task.name] = {k: float(np.nanmean([x[k] for x in layer_stats])) for k in layer_stats[0]}
        result[metric] = {"model": per_task_model, "layer": per_task_layer}
    return result


def mean(per_task: dict, key: str) -> float:
    values = [v[key] for v in per_task.values() if not math.isnan(v[key])]
    return float(np.mean(values)) if values else float("nan")


def tables(result, tasks, metrics) -> str:
    out = []
    for kind, title in (("model", "Model selection"), ("layer", "Layer selection")):
        out.append(f"### {title}\n")
        header = "| metric | " + " | ".join(f"{t.name} wtau" for t in tasks) + " | mean wtau | mean tau | mean Pearson | hits | mean regret (points) |"
        out.append(header)
        out.append("|---" * (len(tasks) + 6) + "|")
        for metric in metrics:
            per_task = result[metric][kind]
            if not per_task:
                continue
            cells = [f"{per_task[t.name]['wtau']:.2f}" if t.name in per_task else "-" for t in tasks]
            hits = sum(v["hit"] for v in per_task.values())
            out.append(
                f"| {metric} | " + " | ".join(cells)
                + f" | **{mean(per_task, 'wtau'):.2f}** | {mean(per_task, 'kendall'):.2f} | {mean(per_task, 'pearson'):.2f}"
                + f" | {hits:.1f}/{len(per_task)} | {mean(per_task, 'regret'):.2f} |"
            )
        out.append("")
    return "\n".join(out)


def figure(tasks, models, truth, scores, metric="transrate") -> str:
    """SVG: per task, each model's primary score (x) against its fine-tuned accuracy (y)."""
    w, h, pad = 300, 260, 45
    panels = []
    for i, task in enumerate(tasks):
        pts = [
            (scores[task.name][(m.name, m.cuts[-1])][metric], 100 * truth[(task.name, m.name, m.cuts[-1])], m.name)
            for m in models
            if (task.name, m.name, m.cuts[-1]) in truth and (m.name, m.cuts[-1]) in scores[task.name]
        ]
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1 = min(xs), max(xs) or 1
        y0, y1 = min(ys), max(ys)
        sx = lambda v: pad + (w - 2 * pad) * (v - x0) / ((x1 - x0) or 1)  # noqa: E731
        sy = lambda v: h - pad - (h - 2 * pad) * (v - y0) / ((y1 - y0) or 1)  # noqa: E731
        ox = i * w
        g = [f'<g transform="translate({ox},0)">', f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">{task.name}</text>']
        g.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>')
        g.append(f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>')
        g.append(f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle" font-size="11">{metric}</text>')
        g.append(f'<text x="12" y="{h / 2}" transform="rotate(-90 12 {h / 2})" text-anchor="middle" font-size="11">test accuracy %</text>')
        for v, label in ((y0, f"{y0:.0f}"), (y1, f"{y1:.0f}")):
            g.append(f'<text x="{pad - 4}" y="{sy(v) + 4:.1f}" text-anchor="end" font-size="10">{label}</text>')
        for v in (x0, x1):
            label = 0.0 if abs(v) < 1e-9 * (abs(x0) + abs(x1)) else v  # a collapsed network's rounding
            g.append(f'<text x="{sx(v):.1f}" y="{h - pad + 14}" text-anchor="middle" font-size="10">{label:.3g}</text>')
        for x, y, name in pts:
            colour = "#1f77b4" if "random" not in name else "#d62728"
            g.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{colour}"><title>{name}: {x:.4g}, {y:.1f} %</title></circle>')
            g.append(f'<text x="{sx(x) + 5:.1f}" y="{sy(y) - 5:.1f}" font-size="8">{name}</text>')
        g.append("</g>")
        panels.append("\n".join(g))
    width = w * len(panels)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-family="sans-serif">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(panels) + "\n</svg>\n")


def ensure_data(tasks, models):
    import targets

    for task in tasks:
        targets.write(task)
    missing = [m for m in models if not (common.ZOO / f"{m.name}.yaml").exists()]
    if missing:
        names = ",".join(m.name for m in missing)
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "sources.py"), "--models", names], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="update docs/benchmark.md and docs/benchmark.svg")
    ap.add_argument("--fast", action="store_true", help="one target, three models, with checks (for ./scripts/test)")
    args = ap.parse_args()
    check_agreement()
    tasks, models = common.TASKS, common.ZOO_MODELS
    if args.fast:
        tasks = [t for t in common.TASKS if t.name == "fmnist5"]
        models = [m for m in common.ZOO_MODELS if m.name in ("lite0", "lite0_random", "lite1")]
    ensure_data(tasks, models)
    truth = ground_truth()
    scores = {t.name: score_task(t, models) for t in tasks}
    result = evaluate(tasks, models, truth, scores)
    result.update(evaluate(tasks, models, truth, scores, ceiling=(ground_truth(seed=0), ground_truth(seed=1))))
    text = tables(result, tasks, [SEED_CEILING] + METRICS + list(VARIANTS))
    print(f"protocol {common.protocol_hash()}\n")
    print(text)
    if args.fast:
        rows = [line for line in text.splitlines() if line.startswith("| transrate |")]
        assert len(rows) == 2, "the model and layer tables must both have a transrate row"
        picked = result["transrate"]["model"]["fmnist5"]
        assert all(not math.isnan(picked[k]) for k in ("pearson", "kendall", "wtau", "regret")), picked
        print("fast benchmark subset: tables produced")
    if args.write:
        doc = common.ROOT / "docs" / "benchmark.md"
        start, end = "<!-- tables:start -->", "<!-- tables:end -->"
        body = doc.read_text()
        generated = f"{start}\nProtocol {common.protocol_hash()}; regenerated by `scripts/benchmark/score --write`.\n\n{text}\n{end}"
        doc.write_text(body[: body.index(start)] + generated + body[body.index(end) + len(end) :])
        (common.ROOT / "docs" / "benchmark.svg").write_text(figure(tasks, models, truth, scores))
        print(f"wrote {doc} and docs/benchmark.svg")


if __name__ == "__main__":
    main()
