#!/usr/bin/env python3
"""Score the benchmark zoo with zoo-select on every target (task and regime) and measure, held
out, how well each metric ranks the models and each cut strategy ranks the cuts against the
cached fine-tuned ground truth (research/benchmark/ground_truth.csv). Prints the tables; with
--write, also puts them into docs/benchmark.md (between its tables markers).

It no longer writes src/recommend/evidence.json: the figures the binary states come from the
graded benchmark, research/benchmark/graded/score.py --write, which chooses the rules the tool
ships. This benchmark's tables stay in the docs as the first benchmark's record.

    .venv/bin/python research/benchmark/score.py [--write]
    .venv/bin/python research/benchmark/score.py --fast     # two scarce targets, three models, checks

Model selection: each model's score at its last candidate layer against its whole-network
fine-tuned test accuracy. Cut selection: a strategy's layer scores against the accuracy of
fine-tuning the network cut there. Weighted Kendall tau (scipy.stats.weightedtau) and regret
(best accuracy minus the chosen one's, in points), leave one task out, beside the seed ceiling.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BINARY = common.ROOT / "target" / "release" / "zoo-select"
METRICS = ["transrate", "logme", "hscore", "hscore_shrink", "nce", "leep", "gbc", "knn", "sfda", "ncti"]
# TransRate configurations scored from the same pass: the published formula at other eps, the
# authors' normalisation, and rates in a fixed-rank principal subspace (the `subspace` cut
# strategy's family: its k and eps are chosen here, held out).
EPS_GRID = [1e-2, 1e-3]
SUBSPACE_K = [8, 16, 32]
SUBSPACE_EPS = [1e-2]
VARIANTS = {
    **{f"transrate_eps{e:g}": {"eps": e} for e in EPS_GRID},
    "transrate_authors": {"scale": "trace", "per_rank": True, "class_weight": "count"},
    **{f"transrate_sub{k}_eps{e:g}": {"scale": "trace", "subspace": k, "eps": e} for k in SUBSPACE_K for e in SUBSPACE_EPS},
}


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
def seed_runs(path: Path = common.GROUND_TRUTH) -> dict:
    """(task, regime, model, cut) -> {seed: test accuracy} at the learning rate with the best
    mean validation accuracy over the seeds (the protocol's selection: the test split never
    chooses anything)."""
    runs = defaultdict(lambda: defaultdict(dict))
    protocol = common.protocol_hash()
    with open(path) as f:
        rows = list(csv.DictReader(f))
    stale = {r["protocol"] for r in rows} - {protocol}
    if stale:
        print(f"warning: ground truth rows of other protocols {sorted(stale)} are ignored", file=sys.stderr)
    for r in rows:
        if r["protocol"] == protocol:
            runs[(r["task"], r["regime"], r["model"], r["cut"])][float(r["lr"])][int(r["seed"])] = (float(r["val_acc"]), float(r["test_acc"]))
    out = {}
    for k, by_lr in runs.items():
        lr = max(by_lr, key=lambda lr: np.mean([v for v, _ in by_lr[lr].values()]))
        out[k] = {seed: t for seed, (_, t) in by_lr[lr].items()}
    return out


@dataclass
class Entry:
    """One choice's fine-tuned accuracy: the mean over seeds, their standard deviation, and
    each seed's value."""

    mean: float
    sd: float
    seeds: dict


def entries(runs: dict, min_seeds: int = 2) -> dict:
    out = {}
    for k, by_seed in runs.items():
        if len(by_seed) >= min_seeds:
            v = np.array(list(by_seed.values()))
            out[k] = Entry(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, dict(by_seed))
    return out


def within_noise(e: Entry, best: Entry) -> bool:
    """Whether an entry's mean is within two standard errors of the difference from the best."""
    se = math.sqrt(e.sd ** 2 / len(e.seeds) + best.sd ** 2 / len(best.seeds))
    return best.mean - e.mean <= 2 * se + 1e-12


# ------------------------------------------------------------------------------ scoring
REUSE_SCORES = False  # --reuse-scores: trust cached reports whatever the binary's age


def score_target(task: common.Task, regime: str, models: list[common.Source]) -> dict:
    """Runs zoo-select on the target's training split: (model, layer) -> its report row
    (scores, params_after, n), and the report's cuts per model."""
    name = f"{task.name}_{regime}"
    out = common.DATA / "scores" / name
    config = common.DATA / "configs" / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"dataset: {{root: {common.DATA / 'targets' / task.name / f'train_{regime}'}}}",
        "models:",
        *[f"  - {{manifest: {common.ZOO / (m.name + '.yaml')}, layers: [{', '.join(m.cuts)}]}}" for m in models],
        "metrics: all",
        "transrate_variants:",
        *[f"  {n}: {json.dumps(opts)}" for n, opts in VARIANTS.items()],
        "batch_size: 64",
        f"output: {out}",
    ]
    text = "\n".join(lines) + "\n"
    report_path = out / "report.json"
    # Scores depend on the config and the binary only, not on the ground truth: reuse them while
    # neither has changed (a re-score after more fine-tuning runs takes seconds).
    fresh = (report_path.exists() and config.exists() and config.read_text() == text
             and (REUSE_SCORES or report_path.stat().st_mtime > BINARY.stat().st_mtime))
    if not fresh:
        config.write_text(text)
        subprocess.run([str(BINARY), "--config", str(config), "-q"], check=True)
    report = json.loads(report_path.read_text())
    rows = {(r["model"], r["layer"]): r for r in report["results"]}
    # ncti_over on all of the run's rows is what zoo-select reports as `ncti`.
    every = list(rows.values())
    if every and all("ncti" in r["scores"] for r in every):
        worst = max(abs(a - r["scores"]["ncti"]) for a, r in zip(ncti_over(every), every))
        assert worst < 1e-9, f"{name}: ncti_over differs from zoo-select's ncti by {worst}"
    return {"rows": rows, "cuts": report["layer_cuts"], "recommendation": report["recommendation"]}


# ------------------------------------------------------------------------------ layer strategies
# The cut strategies of src/recommend/strategy.rs, mirrored (score.py checks that zoo-select picks
# the cut they predict), and the candidates tried for them. Each maps a network's rows (one per
# cut, shallow to deep) and a constant to one utility per cut; the cut is the argmax (the first
# of equal values).
def rank_norm(values):
    """Ranks scaled to 0..1 (ties share their mean rank)."""
    r = stats.rankdata(values)
    return (r - 1) / max(len(values) - 1, 1)


def capacity_utility(rows, lam, metric="logme"):
    """A layer score minus lam x log10(1 + parameters to re-train / training images): the more
    must be learnt from scratch per image, the less the features' quality is worth."""
    n = rows[0]["n"]
    return [r["scores"][metric] - lam * math.log10(1 + (r["params_after"] or 0) / n) for r in rows]


def ncti_over(rows):
    """NCTI (Wang et al., ICCV 2023) over these candidates: each raw term zoo-select reports
    (`results[].terms.ncti`) min-max normalised over them, then ncc + seli - vc (a constant term
    counts 0), as the authors combine it over their zoo. NCTI has no score of its own: the
    candidates are a network's cuts for cut selection and the models' last layers for model
    selection, not the run's whole set of rows, whose ranges the report's `ncti` uses."""
    terms = [r["terms"]["ncti"] for r in rows]

    def norm(key):
        v = np.array([t[key] for t in terms], dtype=float)
        lo, hi = v.min(), v.max()
        return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)

    return list(norm("ncc") + norm("seli") - norm("vc"))


STRATEGY_FAMILIES = {
    # name: (constants tried, utility(rows, constant))
    "primary": ([None], lambda rows, _: [r["scores"]["transrate"] for r in rows]),
    "logme": ([None], lambda rows, _: [r["scores"]["logme"] for r in rows]),
    "subspace": ([(k, e) for k in SUBSPACE_K for e in SUBSPACE_EPS],
                 lambda rows, c: [r["scores"][f"transrate_sub{c[0]}_eps{c[1]:g}"] for r in rows]),
    "transrate_authors": ([None], lambda rows, _: [r["scores"]["transrate_authors"] for r in rows]),
    # Sorkhei et al. 2025: leave-one-out k-NN accuracy on the layer's features (k = 10).
    "knn": ([None], lambda rows, _: [r["scores"]["knn"] for r in rows]),
    # Leave-one-out nearest-class-mean accuracy (the graded benchmark's default cut, 2026-12).
    "ncm": ([None], lambda rows, _: [r["scores"]["ncm"] for r in rows]),
    # TransRate's z against shuffled labels (the graded benchmark's cut with 300 a class, 2026-12).
    "transrate_z": ([None], lambda rows, _: [r["scores"]["transrate_z"] for r in rows]),
    # Shao et al. 2022, as the authors' code computes it (shrinkage LDA, ConfMix; no log).
    "sfda": ([None], lambda rows, _: [r["scores"]["sfda"] for r in rows]),
    # Wang et al. 2023, combined over the network's cuts.
    "ncti": ([None], lambda rows, _: ncti_over(rows)),
    "capacity": ([0.01, 0.03, 0.1, 0.3], capacity_utility),
    # Baselines that read no feature: where a practitioner would cut without a tool.
    "deepest": ([None], lambda rows, _: list(range(len(rows)))),
    "middle": ([None], lambda rows, _: [-abs(i - (len(rows) - 1) / 2) for i in range(len(rows))]),
}
# The strategies the tool ships (src/recommend/strategy.rs) and their constants there.
SHIPPED = {"primary": None, "logme": None, "subspace": (32, 1e-2), "ncm": None, "knn": None, "transrate_z": None}
MARGINS = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]


def layer_cases(targets, truth, scores):
    """Every (target, network) whose cuts all have a ground truth: the unit a cut strategy is
    judged on."""
    cases = []
    for task, regime in targets:
        for m in [s for s in common.ZOO_MODELS if s.name in common.LAYER_MODELS]:
            keys = [(task.name, regime, m.name, c) for c in m.cuts]
            rows = [scores[(task.name, regime)]["rows"].get((m.name, c)) for c in m.cuts]
            if all(k in truth for k in keys) and all(rows):
                cases.append({"task": task.name, "regime": regime, "model": m.name, "cuts": list(m.cuts),
                              "rows": rows, "truth": [truth[k] for k in keys]})
    return cases


def judge_cut(case, utility, margin=None):
    acc = [e.mean for e in case["truth"]]
    out = agreement(utility, acc)
    if margin is not None:
        best = case["truth"][int(np.argmax(acc))]
        top = max(utility)
        chosen = [i for i, u in enumerate(utility) if u >= top - margin]
        out["cover"] = float(any(within_noise(case["truth"][i], best) for i in chosen))
        out["set"] = len(chosen)
    return out


def summarise(results, keys=("wtau", "regret")):
    return {k: float(np.nanmean([r[k] for r in results])) if results else float("nan") for k in keys}


def fit_constant(family, cases):
    """The constant of a family with the best mean weighted tau over `cases` (ties: lower
    regret, then the first)."""
    consts, util = STRATEGY_FAMILIES[family]
    best = None
    for c in consts:
        s = summarise([judge_cut(case, util(case["rows"], c)) for case in cases])
        key = (round(s["wtau"], 9), -round(s["regret"], 9))
        if best is None or key > best[0]:
            best = (key, c)
    return best[1]


def fit_margin(utility_of, cases, cover=0.8):
    """The smallest margin whose chosen-plus-alternatives set holds a cut within seed noise of
    the best in at least `cover` of the cases."""
    for m in MARGINS:
        if np.mean([judge_cut(c, utility_of(c), m)["cover"] for c in cases]) >= cover:
            return m
    return MARGINS[-1]


def held_out_layers(cases, families=None):
    """Leave one task out: for each task, every family's constant (and the margin) is fitted on
    the other tasks' cases and judged on the held-out task's. Also `select`: the family chosen
    on the other tasks. -> {family: [per held-out case results]}."""
    families = families or list(STRATEGY_FAMILIES)
    tasks = sorted({c["task"] for c in cases})
    out = defaultdict(list)
    for held in tasks:
        train = [c for c in cases if c["task"] != held]
        test = [c for c in cases if c["task"] == held]
        if not train or not test:
            continue
        fitted = {}
        for f in families:
            const = fit_constant(f, train)
            util = STRATEGY_FAMILIES[f][1]
            margin = fit_margin(lambda c: util(c["rows"], const), train)
            fitted[f] = (const, margin, summarise([judge_cut(c, util(c["rows"], const)) for c in train]))
            for c in test:
                out[f].append({**judge_cut(c, util(c["rows"], const), margin), "task": held, "regime": c["regime"],
                               "const": const, "margin": margin})
        pick = max((f for f in families if f not in ("deepest", "middle")),
                   key=lambda f: (round(fitted[f][2]["wtau"], 9), -fitted[f][2]["regret"]))
        const, margin, _ = fitted[pick]
        for c in test:
            out["(select on the other tasks)"].append({**judge_cut(c, STRATEGY_FAMILIES[pick][1](c["rows"], const), margin),
                                                      "task": held, "regime": c["regime"], "const": (pick, const), "margin": margin})
    return out


def seed_ceiling_cases(cases):
    """For each case, one seed's accuracies predicting the mean of the others, averaged over the
    seeds: how well any score could agree with a ground truth this noisy. Only the choices with
    at least two seeds take part (a case needs three of them)."""
    out = []
    for c in cases:
        truth = [e for e in c["truth"] if len(e.seeds) >= 2]
        if len(truth) < 3:
            continue
        c = {**c, "truth": truth}
        seeds = sorted(set.intersection(*(set(e.seeds) for e in c["truth"])))
        per_seed = []
        for s in (seeds if len(seeds) >= 2 else []):
            pred = [e.seeds[s] for e in c["truth"]]
            rest = [np.mean([v for k, v in e.seeds.items() if k != s]) for e in c["truth"]]
            per_seed.append(agreement(pred, rest))
        if per_seed:
            out.append({"task": c["task"], "regime": c["regime"], **summarise(per_seed)})
    return out


# ------------------------------------------------------------------------------ model selection
MODEL_SINGLE = ["transrate", "logme", "hscore_shrink", "nce", "leep", "gbc", "knn", "sfda", "ncti", "transrate_authors"]
MODEL_COMBOS = {
    "mean rank (transrate, leep, gbc)": ("transrate", "leep", "gbc"),
    "mean rank (transrate, logme)": ("transrate", "logme"),
    "mean rank (transrate, logme, leep, gbc)": ("transrate", "logme", "leep", "gbc"),
    "mean rank (logme, leep)": ("logme", "leep"),
}


def model_cases(targets, truth, scores, models):
    cases = []
    for task, regime in targets:
        chosen = [m for m in models if (task.name, regime, m.name, m.cuts[-1]) in truth
                  and (m.name, m.cuts[-1]) in scores[(task.name, regime)]["rows"]]
        if len(chosen) >= 3:
            cases.append({"task": task.name, "regime": regime, "models": [m.name for m in chosen],
                          "rows": [scores[(task.name, regime)]["rows"][(m.name, m.cuts[-1])] for m in chosen],
                          "truth": [truth[(task.name, regime, m.name, m.cuts[-1])] for m in chosen]})
    return cases


def model_utility(case, name):
    if name in MODEL_COMBOS:
        cols = [[r["scores"].get(m, float("nan")) for r in case["rows"]] for m in MODEL_COMBOS[name]]
        return list(np.mean([rank_norm(c) for c in cols], axis=0))
    if name == "ncti":
        return ncti_over(case["rows"])
    return [r["scores"].get(name, float("nan")) for r in case["rows"]]


def held_out_models(cases):
    names = MODEL_SINGLE + list(MODEL_COMBOS)
    tasks = sorted({c["task"] for c in cases})
    out = defaultdict(list)
    for name in names:
        for c in cases:
            out[name].append({**agreement(model_utility(c, name), [e.mean for e in c["truth"]]), "task": c["task"], "regime": c["regime"]})
    for held in tasks:
        train = [c for c in cases if c["task"] != held]
        if not train:
            continue
        pick = max(names, key=lambda n: (round(summarise([agreement(model_utility(c, n), [e.mean for e in c["truth"]]) for c in train])["wtau"], 9)))
        for c in cases:
            if c["task"] == held:
                out["(select on the other tasks)"].append({**agreement(model_utility(c, pick), [e.mean for e in c["truth"]]),
                                                           "task": held, "regime": c["regime"], "const": pick})
    return out


# ------------------------------------------------------------------------------ tables
def per_target_table(title, results, ceiling, targets, note=""):
    """Rows: the ceiling, then each strategy / metric; columns: weighted tau per target, then the
    means per regime and overall, regret."""
    cols = [f"{t.name}/{r}" for t, r in targets]
    lines = [f"### {title}\n", note, "| | " + " | ".join(cols) + " | scarce wtau | full wtau | mean wtau +- se | mean regret (points) |",
             "|---" * (len(cols) + 5) + "|"]

    def row(name, res):
        cells = []
        for t, r in targets:
            vals = [x["wtau"] for x in res if x["task"] == t.name and x["regime"] == r]
            cells.append(f"{np.nanmean(vals):.2f}" if vals else "-")
        by = lambda reg: [x["wtau"] for x in res if x["regime"] == reg]  # noqa: E731
        fmt = lambda v: f"{np.nanmean(v):.2f}" if v else "-"  # noqa: E731
        taus = [x["wtau"] for x in res if not math.isnan(x["wtau"])]
        se = np.std(taus, ddof=1) / math.sqrt(len(taus)) if len(taus) > 1 else float("nan")
        return (f"| {name} | " + " | ".join(cells) + f" | {fmt(by('scarce'))} | {fmt(by('full'))} | **{np.mean(taus):.2f}** +- {se:.2f}"
                f" | {np.nanmean([x['regret'] for x in res]):.2f} |")

    lines.append(row("(seed ceiling)", ceiling))
    for name, res in results.items():
        if res:
            lines.append(row(name, res))
    return "\n".join(lines) + "\n"


def truth_table(targets, truth, models) -> str:
    """The ground truth itself: mean test accuracy +- seed standard deviation, per target."""
    cols = [f"{t.name}/{r}" for t, r in targets]
    lines = ["| model | cut | " + " | ".join(cols) + " |", "|---|---" + "|---" * len(cols) + "|"]
    for m in models:
        cuts = m.cuts if m.name in common.LAYER_MODELS else m.cuts[-1:]
        for c in cuts:
            cells = []
            for t, r in targets:
                e = truth.get((t.name, r, m.name, c))
                cells.append(f"{100 * e.mean:.1f} +- {100 * e.sd:.1f} ({len(e.seeds)})" if e else "-")
            if any(x != "-" for x in cells):
                lines.append(f"| {m.name} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ensure_data(tasks, models):
    import targets

    for task in tasks:
        targets.write(task)
    missing = [m for m in models if not (common.ZOO / f"{m.name}.yaml").exists()]
    if missing:
        names = ",".join(m.name for m in missing)
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "sources.py"), "--models", names], check=True)


def check_mirror(scores, targets):
    """zoo-select's own cut per model (its default strategy) must be the cut the Python mirror
    of that strategy picks: the tables judge the strategy the tool runs."""
    checked = 0
    for task, regime in targets:
        s = scores[(task.name, regime)]
        strategy = s["recommendation"]["strategy"]
        if strategy == "auto":  # the regime's strategy, named by the score it read
            strategy = s["recommendation"]["cut_metric"]
        const = SHIPPED[strategy]
        for model, cut in s["cuts"].items():
            src = next(m for m in common.ZOO_MODELS if m.name == model)
            rows = [s["rows"][(model, c)] for c in src.cuts]
            util = STRATEGY_FAMILIES[strategy][1](rows, const)
            assert src.cuts[int(np.argmax(util))] == cut["layer"], (task.name, regime, model, cut, util)
            checked += 1
    print(f"zoo-select's cuts match the strategy mirror on {checked} (target, model) pairs")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="update docs/benchmark.md (not src/recommend/evidence.json: graded/score.py writes it)")
    ap.add_argument("--fast", action="store_true", help="one target, three models, with checks (for ./scripts/test)")
    ap.add_argument("--min-seeds", type=int, default=1, help="leave out entries with fewer fine-tuning seeds")
    ap.add_argument("--reuse-scores", action="store_true",
                    help="reuse cached reports made by an older binary (after a change that cannot move a score, e.g. a margin)")
    args = ap.parse_args()
    global REUSE_SCORES
    REUSE_SCORES = args.reuse_scores
    check_agreement()
    tasks, models = common.TASKS, common.ZOO_MODELS
    if args.fast:
        # Two tasks (leave-one-task-out needs one to fit on), their scarce regime, three models.
        tasks = [t for t in common.TASKS if t.name in ("fmnist5", "fmnist5to9")]
        models = [m for m in common.ZOO_MODELS if m.name in ("lite0", "lite0_random", "small_fmnist_5to9")]
    runs = seed_runs()
    truth = entries(runs, args.min_seeds)
    targets = [(t, r) for t in tasks for r in (t.regimes if not args.fast else t.regimes[:1])
               if any(k[:2] == (t.name, r) for k in truth)]
    ensure_data([t for t, _ in targets], models)
    scores = {(t.name, r): score_target(t, r, models) for t, r in targets}
    check_mirror(scores, targets)

    lcases = layer_cases(targets, truth, scores)
    layer_res = held_out_layers(lcases)
    layer_ceiling = seed_ceiling_cases(lcases)
    mcases = model_cases(targets, truth, scores, models)
    model_res = held_out_models(mcases)
    model_ceiling = seed_ceiling_cases([{**c, "truth": c["truth"]} for c in mcases])

    text = f"Protocol {common.protocol_hash()}; regenerated by `research/benchmark/score --write`.\n\n"
    text += "### Ground truth (test accuracy %, mean +- seed sd (seeds))\n\n" + truth_table(targets, truth, models) + "\n"
    text += per_target_table("Cut selection, held out (leave one task out)", layer_res, layer_ceiling, targets,
                             "Weighted tau of each strategy's layer scores against the fine-tuned accuracy of the cuts, "
                             "averaged over the three layer networks; each task's figures use constants fitted on the other tasks.\n")
    text += "\n" + per_target_table("Model selection, held out (leave one task out)", model_res, model_ceiling, targets,
                                     "Weighted tau of each score at the models' last layer against whole-network fine-tuning.\n")
    text += ("\n`+- se`: the standard error of the mean over the cases (target x network for cuts, target for models): "
             "a difference between two rows, or from the ceiling, smaller than about twice it is not a finding. "
             "The model-selection ceiling uses only the models with two or more seeds.\n")
    shipped = {n: np.nanmean([x["wtau"] for x in layer_res[n]]) for n in SHIPPED if layer_res.get(n)}
    if shipped:
        best = max(shipped, key=shipped.get)
        text += f"\nBest shipped cut strategy held out: `{best}` (weighted tau {shipped[best]:.2f}).\n"
        # The binary's default is chosen on the graded benchmark (graded/score.py), not here.
    if lcases:
        fitted = {f: fit_constant(f, lcases) for f in STRATEGY_FAMILIES}
        margins = {f: fit_margin(lambda c, f=f: STRATEGY_FAMILIES[f][1](c["rows"], fitted[f]), lcases) for f in SHIPPED}
        text += "\nFitted on all targets (what the shipped strategies use): " + ", ".join(
            f"{f} {c}" for f, c in fitted.items() if c is not None) + "; noise margins " + ", ".join(
            f"{f} {m:g}" for f, m in margins.items()) + ".\n"
    print(f"protocol {common.protocol_hash()}\n")
    print(text)
    if args.fast:
        assert layer_res.get("primary") or not lcases, "cut strategies must be judged where the ground truth has cuts"
        assert "(seed ceiling)" in text and "Cut selection" in text and "Model selection" in text
        print("fast benchmark subset: tables produced")
    if args.write:
        doc = common.ROOT / "docs" / "benchmark.md"
        common.write_section(doc, "<!-- tables:start -->", "<!-- tables:end -->", text + "\n")
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
