"""Self-check for tests/oracles/metrics.py (fixture generator only; not used at run time).

Compares every metric on random data against
  * the logic of the public reference code (re-implemented inline below, in NumPy),
  * scikit-learn's LedoitWolf for the shrinkage estimator,
  * a re-derivation from the sufficient statistics the Rust side accumulates
    (counts, per-class sums, per-class / total second moments, per-class sums of squares,
     sum |x|^4, sum |x|^2 x, hard / soft source-label joint sums),
and prints the max relative difference per check. Run:

    OMP_NUM_THREADS=1 .venv/bin/python tests/oracles/check_metrics.py
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics as M  # noqa: E402
import transrate as paper_transrate  # noqa: E402

RESULTS = []


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.abs(b), 1e-300)
    return float(np.max(np.abs(a - b) / scale))


def report(name, diffs, tol):
    worst = max(diffs)
    ok = worst <= tol
    RESULTS.append(ok)
    print(f"  {'ok  ' if ok else 'FAIL'} {name:<62s} max rel diff {worst:.2e} (tol {tol:.0e})")


def info(name, value):
    print(f"  info {name:<62s} {value}")


# ----------------------------------------------------------------------------------------------
# data sets
# ----------------------------------------------------------------------------------------------

def make_sets():
    rng = np.random.default_rng(20240611)
    sets = {}

    def blobs(n, d, c, spread=1.0, offset=3.0, singleton=False):
        y = np.arange(n) % c
        if singleton:                    # class c-1 gets exactly one row
            y = np.where(y == c - 1, 0, y)
            y[0] = c - 1
        rng.shuffle(y)
        centres = rng.standard_normal((c, d)) * 2.0
        mix = rng.standard_normal((d, d)) / np.sqrt(d)
        x = centres[y] + spread * rng.standard_normal((n, d)) @ mix + offset
        return x, y

    sets["n>d (200x16, C=5)"] = blobs(200, 16, 5)
    sets["n<d (60x100, C=4)"] = blobs(60, 100, 4)
    sets["singleton class (150x8, C=6)"] = blobs(150, 8, 6, singleton=True)
    x, y = blobs(200, 20, 3)
    x[:, 12:] = x[:, :8] @ rng.standard_normal((8, 8))  # rank 12 (+ the offset column pattern)
    sets["collinear (200x20 rank~13, C=3)"] = (x, y)
    x, y = blobs(300, 32, 10, offset=0.0)
    sets["relu-like (300x32, C=10)"] = (np.maximum(x, 0.0) + 0.01 * rng.random(x.shape), y)
    return sets, rng


# ----------------------------------------------------------------------------------------------
# reference-code logic, re-implemented inline
# ----------------------------------------------------------------------------------------------

def ref_logme_icml(f, y):
    """thuml/LogME LogME.py: _fit_icml + each_evidence (epsilon = 1e-5), without numba."""
    f = f.astype(np.float64)
    fh = f
    ft = f.transpose()
    D, N = ft.shape
    v, s, vh = np.linalg.svd(ft @ fh, full_matrices=True)
    ev = []
    for i in range(int(y.max() + 1)):
        y_ = (y == i).astype(np.float64)
        epsilon = 1e-5
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        tmp = vh @ (ft @ y_)
        for _ in range(11):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            alpha_de = (m * m).sum()
            alpha = gamma / (alpha_de + epsilon)
            beta_de = ((y_ - fh @ m) ** 2).sum()
            beta = (N - gamma) / (beta_de + epsilon)
            new_lam = alpha / beta
            if np.abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        e = (D / 2.0 * np.log(alpha) + N / 2.0 * np.log(beta)
             - 0.5 * np.sum(np.log(alpha + beta * s)) - beta / 2.0 * (beta_de + epsilon)
             - alpha / 2.0 * (alpha_de + epsilon) - N / 2.0 * np.log(2 * np.pi))
        ev.append(e / N)
    return float(np.mean(ev))


def ref_hscore_tllib(f, y, rcond=1e-15):
    """tllib/ranking/hscore.py h_score (rcond=1e-15); Bao et al.'s getDiffNN uses 1e-10."""
    covf = np.cov(f, rowvar=False)
    g = np.zeros_like(f)
    for i in range(int(y.max() + 1)):
        g[y == i] = np.mean(f[y == i, :], axis=0)
    covg = np.cov(g, rowvar=False)
    return float(np.trace(np.dot(np.linalg.pinv(covf, rcond=rcond), covg)))


def ref_hscore_bao(f, y):
    """Bao et al. getCov/getDiffNN (validate_H-score/H-score_vs_performance.py)."""
    def get_cov(a):
        am = a - np.mean(a, axis=0, keepdims=True)
        return am.T @ am / (len(a) - 1)
    g = np.zeros_like(f)
    for z in set(y.tolist()):
        g[y == z] = np.mean(f[y == z, :], axis=0)
    return float(np.trace(np.linalg.pinv(get_cov(f), rcond=1e-10) @ get_cov(g)))


def ref_regularized_hscore_tllib(f, y):
    """tllib/ranking/hscore.py regularized_h_score (uses sklearn LedoitWolf)."""
    from sklearn.covariance import LedoitWolf
    f = f.astype("float64")
    f = f - np.mean(f, axis=0, keepdims=True)
    lw = LedoitWolf(assume_centered=False).fit(f)
    alpha, cov_alpha = lw.shrinkage_, lw.covariance_
    g = np.zeros_like(f)
    for i in range(int(y.max() + 1)):
        g[y == i] = np.mean(f[y == i, :], axis=0)
    covg = np.cov(g, rowvar=False)
    return float(np.trace(np.dot(np.linalg.pinv(cov_alpha, rcond=1e-15), (1 - alpha) * covg)))


def ref_nce_tllib(source_labels, target_labels):
    ct, cs, n = int(target_labels.max() + 1), int(source_labels.max() + 1), len(source_labels)
    joint = np.zeros((ct, cs))
    for s, t in zip(source_labels, target_labels):
        joint[int(t), int(s)] += 1.0 / n
    p_z = joint.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_t_given_s = (joint / p_z).T
    mask = p_z.reshape(-1) != 0
    p = p_t_given_s[mask] + 1e-20
    h = np.sum(-p * np.log(p), axis=1, keepdims=True)
    return float(-np.sum(h * p_z.reshape((-1, 1))[mask]))


def ref_leep_tllib(source_pred, target_label):
    n, cs = source_pred.shape
    ct = int(np.max(target_label) + 1)
    normalized = source_pred / float(n)
    joint = np.zeros((ct, cs))
    for i in range(ct):
        joint[i] = np.sum(normalized[target_label == i], axis=0)
    p_t_given_s = (joint / joint.sum(axis=0, keepdims=True)).T
    emp = source_pred @ p_t_given_s
    return float(np.mean(np.log(np.array([row[t] for row, t in zip(emp, target_label)]))))


def ref_leep_google(pred, labels):
    ct = int(labels.max() + 1)
    onehot = np.eye(ct)[labels]
    occ_st = np.einsum("bt,bs->st", onehot, pred)
    occ_s = occ_st.sum(axis=-1, keepdims=True)
    p_t_s = np.divide(occ_st, occ_s, out=np.zeros_like(occ_st), where=occ_s != 0)
    eep = np.sum((pred @ p_t_s) * onehot, axis=-1)
    return float(np.mean(np.where(eep > 0, np.log(np.where(eep > 0, eep, 1)), -np.log(ct))))


def ref_gbc_google(features, labels, gaussian_type):
    """google-research gbc.py in NumPy (iteration over unique labels in order of appearance)."""
    uniq = list(dict.fromkeys(labels.tolist()))
    stats = {}
    for lab in uniq:
        cf = features[labels == lab]
        stats[lab] = {"mean": cf.mean(axis=0), "variance": np.maximum(cf.var(axis=0), 1e-4)}

    def bd(c1, c2):
        mu1, mu2 = stats[c1]["mean"], stats[c2]["mean"]
        s1, s2 = stats[c1]["variance"], stats[c2]["variance"]
        if gaussian_type == "spherical":
            s1, s2 = np.mean(s1), np.mean(s2)
        avg = (s1 + s2) / 2
        first = np.sum((mu1 - mu2) ** 2 / avg) / 8
        second = np.sum(np.log(avg)) - 0.5 * np.sum(np.log(s1)) - 0.5 * np.sum(np.log(s2))
        return first + 0.5 * second

    per = []
    for c1 in uniq:
        per.append(np.sum([np.exp(-bd(c1, c2)) for c2 in uniq if c1 != c2]))
    return float(-np.sum(per))


def ref_transrate_authors(f, y, eps, normalize_eigz):
    """Long-Kai/TransRate, 'Z_centralized' path:
    experiment_builder_get_eigens.py: z = F.normalize(feat) (row l2), z -= mean(z);
    transrate.py pre_transrate(z, y, normalize=True): row l2 again, ZZ_c = Z_c^T Z_c / n_c,
      ZZ = sum_c Z_c^T Z_c / n, eigenvalues via svd, rank_Z = matrix_rank(ZZ);
    extract_result_utils.py process_transrate_logs(eps, reg=1, opt_active_eigs='all',
      opt_res='weight', normalize_eigz, normalize_opt='rank')."""
    z = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)   # torch F.normalize
    z = z - z.mean(axis=0, keepdims=True)
    z = z / np.linalg.norm(z, 2, -1)[:, None]
    k = int(y.max() + 1)
    n, d = z.shape
    nc, eig_c = [], []
    zz = np.zeros((d, d))
    for i in range(k):
        zi = z[y == i]
        zzi = zi.T @ zi
        zz = zz + zzi
        nc.append(zi.shape[0])
        eig_c.append(np.linalg.svd(zzi / float(zi.shape[0]), compute_uv=False))
    zz = zz / float(n)
    eig_z = np.linalg.svd(zz, compute_uv=False)
    rank_z = np.linalg.matrix_rank(zz)
    eig_c = np.stack(eig_c)
    if normalize_eigz:
        tot = np.sum(eig_z)
        eig_z, eig_c = eig_z / tot, eig_c / tot
    idx = d                                             # opt_active_eigs='all'
    eig_z[:idx] = eig_z[:idx] + np.sum(eig_z[idx:]) * eig_z[:idx] / np.sum(eig_z[:idx])
    rz = np.sum(np.log(1.0 + 1 / eps * np.abs(eig_z[:idx])))
    rzc = np.zeros(k)
    for i in range(k):
        e = eig_c[i]
        e[:idx] = e[:idx] + np.sum(e[idx:]) * e[:idx] / np.sum(e[:idx])
        rzc[i] = np.sum(np.log(1.0 + 1 / eps * np.abs(e[:idx])))
    norm_r = min(rank_z, idx)
    rz, rzc = rz / norm_r, rzc / norm_r
    return float(rz / 2.0 - np.sum(rzc * np.array(nc) / n) / 2.0)


# ----------------------------------------------------------------------------------------------
# the same metrics from sufficient statistics (what the Rust side will do)
# ----------------------------------------------------------------------------------------------

def stats_of(x, y, c):
    return {
        "n": x.shape[0], "d": x.shape[1],
        "count": np.bincount(y, minlength=c).astype(np.float64),
        "sum": np.stack([x[y == k].sum(axis=0) for k in range(c)]),            # (C, d)
        "m2": np.stack([x[y == k].T @ x[y == k] for k in range(c)]),            # (C, d, d)
        "sumsq": np.stack([(x[y == k] ** 2).sum(axis=0) for k in range(c)]),    # (C, d)
        "q4": float(np.sum(np.sum(x * x, axis=1) ** 2)),                        # sum |x|^4
        "q2x": (np.sum(x * x, axis=1)[:, None] * x).sum(axis=0),               # sum |x|^2 x
    }


def lw_from_stats(st):
    n, d = st["n"], st["d"]
    m2 = st["m2"].sum(axis=0)
    mu = st["sum"].sum(axis=0) / n
    s = (m2 - n * np.outer(mu, mu)) / n
    if d == 1:
        return s, 0.0
    q = np.trace(m2)
    mm = mu @ mu
    z4 = st["q4"] - 4.0 * mu @ st["q2x"] + 4.0 * mu @ m2 @ mu + 2.0 * mm * q - 3.0 * n * mm * mm
    tr = np.trace(s)
    mu_s = tr / d
    delta_ = np.sum(s * s)
    b = (z4 / n - delta_) / (n * d)
    delta = (delta_ - tr * tr / d) / d
    b = min(b, delta)
    a = 0.0 if b == 0 else b / delta
    return (1 - a) * s + a * mu_s * np.eye(d), a


def scatters_from_stats(st):
    n = st["n"]
    mu = st["sum"].sum(axis=0) / n
    s_t = st["m2"].sum(axis=0) - n * np.outer(mu, mu)
    s_b = np.einsum("ci,cj->ij", st["sum"] / st["count"][:, None], st["sum"]) - n * np.outer(mu, mu)
    return s_t, s_b


def hscore_from_stats(st, rcond=1e-10):
    s_t, s_b = scatters_from_stats(st)
    return float(np.trace(np.linalg.pinv(s_t, rcond=rcond, hermitian=True) @ s_b))


def hscore_shrink_from_stats(st, rcond=1e-10):
    sigma, a = lw_from_stats(st)
    _, s_b = scatters_from_stats(st)
    return float((1 - a) * np.trace(np.linalg.pinv(sigma, rcond=rcond, hermitian=True) @ s_b)
                 / (st["n"] - 1))


def transrate_from_stats(st, eps=1e-4, scale="none", per_rank=False, class_weight="uniform"):
    """Stats of the (already l2-normalised, if wanted) raw vectors. per_rank uses the gram rank."""
    n, d, cnt = st["n"], st["d"], st["count"]
    mu = st["sum"].sum(axis=0) / n
    s_t = st["m2"].sum(axis=0) - n * np.outer(mu, mu)           # Z^T Z
    zc = [st["m2"][k] - np.outer(st["sum"][k], mu) - np.outer(mu, st["sum"][k])
          + cnt[k] * np.outer(mu, mu) for k in range(len(cnt))]  # Z_c^T Z_c
    r2 = np.trace(s_t) / n if scale == "trace" else 1.0

    def rate(g, m):
        return 0.5 * np.sum(np.log1p(np.clip(np.linalg.eigvalsh(g), 0, None) / (m * eps * r2)))

    ra = rate(s_t, n)
    rc = np.array([rate(zc[k], cnt[k]) for k in range(len(cnt))])
    if per_rank:
        lam = np.linalg.eigvalsh(s_t / n)
        k = int(np.sum(np.abs(lam) > np.max(np.abs(lam)) * d * np.finfo(float).eps))
        ra, rc = ra / k, rc / k
    w = cnt / n if class_weight == "count" else np.full(len(cnt), 1.0 / len(cnt))
    return float(ra - w @ rc)


def logme_from_stats(st):
    """F^T F (uncentred total second moment), per-class sums (= F^T y_c), counts (= |y_c|^2)."""
    n, dim = st["n"], st["d"]
    gram = st["m2"].sum(axis=0)
    s, v = np.linalg.eigh(gram)
    s = np.clip(s, 0, None)
    eps = 1e-5
    out = []
    for k in range(len(st["count"])):
        p = v.T @ st["sum"][k]
        alpha = beta = lam = 1.0
        for _ in range(11):
            gamma = np.sum(s / (s + lam))
            w = beta * p / (alpha + beta * s)
            a_de = w @ w
            alpha = gamma / (a_de + eps)
            b_de = st["count"][k] - 2.0 * w @ p + np.sum(s * w * w)
            beta = (n - gamma) / (b_de + eps)
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        e = (dim / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * s))
             - beta / 2 * (b_de + eps) - alpha / 2 * (a_de + eps) - n / 2 * np.log(2 * np.pi))
        out.append(e / n)
    return float(np.mean(out))


def gbc_from_stats(st, floor=1e-4):
    cnt = st["count"][:, None]
    mean = st["sum"] / cnt
    var = np.maximum(st["sumsq"] / cnt - mean * mean, floor)
    c = len(cnt)
    tot = 0.0
    for a in range(c):
        for b in range(a + 1, c):
            v = 0.5 * (var[a] + var[b])
            db = np.sum((mean[a] - mean[b]) ** 2 / v) / 8 + 0.5 * (
                np.sum(np.log(v)) - 0.5 * np.sum(np.log(var[a])) - 0.5 * np.sum(np.log(var[b])))
            tot += 2.0 * np.exp(-db)
    return -tot


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------

def main():
    import sklearn
    from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__}")
    sets, rng = make_sets()
    full_rank = ["n>d (200x16, C=5)", "singleton class (150x8, C=6)", "relu-like (300x32, C=10)"]

    print("\nLedoit-Wolf")
    d1, d2, d3, d4 = [], [], [], []
    for name, (x, y) in sets.items():
        sig, a = M.ledoit_wolf(x)
        ref = LedoitWolf().fit(x)
        d1.append(rel(a, ref.shrinkage_))
        d2.append(np.max(np.abs(sig - ref.covariance_)) / np.max(np.abs(ref.covariance_)))
        d3.append(rel(a, ledoit_wolf_shrinkage(x)))
        sig_s, a_s = lw_from_stats(stats_of(x, y, int(y.max() + 1)))
        d4.append(max(rel(a_s, a), np.max(np.abs(sig_s - sig)) / np.max(np.abs(sig))))
        info(f"shrinkage alpha [{name}]", f"{a:.6f}")
    report("alpha vs sklearn LedoitWolf().fit(X).shrinkage_", d1, 1e-10)
    report("Sigma vs sklearn LedoitWolf().fit(X).covariance_", d2, 1e-10)
    report("alpha vs sklearn ledoit_wolf_shrinkage(X)", d3, 1e-10)
    report("alpha, Sigma from raw moments (sum|x|^4, sum|x|^2 x, M2)", d4, 1e-7)
    report("metrics.test_ledoit_wolf_matches_sklearn()", [M.test_ledoit_wolf_matches_sklearn()], 1e-10)

    print("\nH-score")
    report("hscore vs tllib h_score (rcond 1e-15), full-rank sets",
           [rel(M.hscore(*sets[k]), ref_hscore_tllib(*sets[k])) for k in full_rank], 1e-9)
    report("hscore vs Bao getDiffNN (rcond 1e-10), full-rank sets",
           [rel(M.hscore(*sets[k]), ref_hscore_bao(*sets[k])) for k in full_rank], 1e-9)
    report("hscore from scatters S_T, S_B (all sets)",
           [rel(hscore_from_stats(stats_of(x, y, int(y.max() + 1))), M.hscore(x, y))
            for x, y in sets.values()], 1e-6)
    for k in ["n<d (60x100, C=4)", "collinear (200x20 rank~13, C=3)"]:
        x, y = sets[k]
        info(f"rank-deficient [{k}]",
             f"ours(1e-10,herm)={M.hscore(x, y):.6g} bao(1e-10)={ref_hscore_bao(x, y):.6g} "
             f"tllib(1e-15)={ref_hscore_tllib(x, y):.6g}")

    print("\nShrinkage H-score")
    report("hscore_shrink vs tllib regularized_h_score (sklearn LW)",
           [rel(M.hscore_shrink(x, y), ref_regularized_hscore_tllib(x, y)) for x, y in sets.values()],
           1e-9)
    report("hscore_shrink from moments",
           [rel(hscore_shrink_from_stats(stats_of(x, y, int(y.max() + 1))), M.hscore_shrink(x, y))
            for x, y in sets.values()], 1e-6)

    print("\nLogME (ICML)")
    report("logme vs thuml/LogME each_evidence logic",
           [rel(M.logme(x, y), ref_logme_icml(x, y)) for x, y in sets.values()], 1e-10)
    report("logme from F^T F, class sums, counts",
           [rel(logme_from_stats(stats_of(x, y, int(y.max() + 1))), M.logme(x, y))
            for x, y in sets.values()], 1e-6)
    x, y = sets["n>d (200x16, C=5)"]
    info("logme centred vs not (features NOT centred by reference)",
         f"raw={M.logme(x, y):.6f} centred={M.logme(x - x.mean(0), y):.6f}")

    print("\nTransRate")
    report("transrate default vs tests/oracles/transrate.py (paper)",
           [rel(M.transrate(x, y), paper_transrate.transrate(x, y)) for x, y in sets.values()],
           1e-12)
    for ez, eps in [(False, 1e-4), (True, 1e-4), (True, 1e-2)]:
        report(f"l2_center_l2+gram rank+count(+trace={ez}) vs authors eps={eps:g}",
               [rel(M.transrate(x, y, eps=eps, normalize="l2_center_l2", per_rank=True,
                                rank_of="gram", class_weight="count",
                                scale="trace" if ez else "none"),
                    ref_transrate_authors(x, y, eps, ez)) for x, y in sets.values()], 1e-9)
    diffs = []
    for scale in ["none", "trace"]:
        for cw in ["uniform", "count"]:
            for nm in ["none", "l2"]:
                for pr in [False, True]:
                    for x, y in [sets[k] for k in full_rank]:
                        xx = x / np.linalg.norm(x, axis=1, keepdims=True) if nm == "l2" else x
                        st = stats_of(xx, y, int(y.max() + 1))
                        diffs.append(rel(transrate_from_stats(st, 1e-4, scale, pr, cw),
                                         M.transrate(x, y, 1e-4, scale, pr, cw, nm, "gram")))
    report("transrate (all option combos, gram rank) from class moments", diffs, 1e-6)
    parts = []
    for x, y in sets.values():
        s_t, _ = scatters_from_stats(stats_of(x, y, int(y.max() + 1)))
        lam = np.linalg.eigvalsh(s_t)
        n, d = x.shape
        parts.append(f"{np.linalg.matrix_rank(x - x.mean(0))}/"
                     f"{int(np.sum(np.sqrt(np.clip(lam, 0, None)) > np.sqrt(lam.max()) * max(n, d) * 2.220446049250313e-16))}/"
                     f"{int(np.sum(np.abs(lam) > lam.max() * d * 2.220446049250313e-16))}")
    info("rank(Z) direct / from moments with Z tol / gram tol", ", ".join(parts))
    for k, (x, y) in sets.items():
        ours = M.transrate(x, y, normalize="l2", scale="trace", per_rank=True, class_weight="count")
        auth = ref_transrate_authors(x, y, 1e-4, True)
        info(f"requested combo vs authors [{k}]", f"{ours:.6f} vs {auth:.6f}")

    print("\nNCE")
    d_a, d_b = [], []
    for _x, y in sets.values():
        n = len(y)
        logits = rng.standard_normal((n, 12)) + 2.0 * np.eye(12)[y % 12]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        z = np.argmax(p, axis=1)
        d_a.append(rel(M.nce(p, y), ref_nce_tllib(z, y)))
        joint = np.zeros((int(y.max() + 1), 12))
        np.add.at(joint, (y, z), 1)
        nz = joint.sum(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(joint > 0, joint * np.log(joint / nz), 0.0)
        d_b.append(rel(t.sum() / n, M.nce(z, y)))
    report("nce vs tllib negative_conditional_entropy", d_a, 1e-12)
    report("nce from joint counts", d_b, 1e-12)

    print("\nLEEP")
    d_a, d_b, d_c = [], [], []
    for _x, y in sets.values():
        n = len(y)
        logits = rng.standard_normal((n, 12)) + 1.5 * np.eye(12)[y % 12]
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d_a.append(rel(M.leep(p, y), ref_leep_tllib(p, y)))
        d_b.append(rel(M.leep(p, y), ref_leep_google(p, y)))
        soft = np.zeros((int(y.max() + 1), 12))
        np.add.at(soft, y, p)                          # soft joint sums
        cond = soft / soft.sum(0)
        d_c.append(rel(np.mean(np.log(np.sum(p * cond[y], axis=1))), M.leep(p, y)))
    report("leep vs tllib log_expected_empirical_prediction", d_a, 1e-12)
    report("leep vs google-research get_leep_score", d_b, 1e-12)
    report("leep from soft joint sums + second pass", d_c, 1e-12)

    print("\nGBC")
    for gt in ["diagonal", "spherical"]:
        report(f"gbc {gt} vs google-research gbc.py logic",
               [rel(M.gbc(x, y, gt), ref_gbc_google(x, y, gt)) for x, y in sets.values()], 1e-10)
    report("gbc diagonal from class sums / sums of squares",
           [rel(gbc_from_stats(stats_of(x, y, int(y.max() + 1))), M.gbc(x, y))
            for x, y in sets.values()], 1e-6)
    for k, (x, y) in sets.items():
        info(f"gbc diag / sph [{k}]", f"{M.gbc(x, y):.6g} / {M.gbc(x, y, 'spherical'):.6g}")

    print(f"\n{sum(RESULTS)}/{len(RESULTS)} checks passed")
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
