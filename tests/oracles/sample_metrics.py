"""Plain NumPy reference implementations of four sample-level transferability metrics.

For test fixtures only (nothing here runs inside zoo-select). float64 throughout, numpy only.
Sources, constants and code-vs-paper differences are written up in sample_metrics.md.

    knn(X, y, k)         leave-one-out cosine k-NN accuracy      (Sorkhei et al., TMLR/arXiv 2025)
    parc(X, y, n_dims)   PARC                                     (Bolya et al., NeurIPS 2021;
                                                                   dbolya/parc methods.py PARC)
    sfda(X, y)           SFDA                                     (Shao et al., ECCV 2022;
                                                                   TencentARC/SFDA metrics.py SFDA_Score)
    ncti_components(X,y) NCTI raw terms (seli, ncc, vc) per model (Wang et al., ICCV 2023;
    ncti_combine(list)   NCTI zoo-level min-max combination        BUserName/NCTI metrics.py NCTI_Score,
                                                                   evaluate_metric_group1_cpu.py)

Inputs: X (n, d) real features, y (n,) integer labels in 0..C-1. Higher = more transferable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# ---- constants copied from the authors' code (see sample_metrics.md) ----------------------------
KNN_DEFAULT_K = 10            # not verified against the Sorkhei et al. text; see sample_metrics.md
PARC_N_DIMS = 32              # dbolya/parc demo.py `PARC(n_dims=32)`; SFDA PARC_Score ratio=2 -> 32
SFDA_SHRINK_A = 5.0           # TencentARC/SFDA metrics.py: shrinkage = max(exp(-5 * lambda_max), 1e-10)
SFDA_SHRINK_FLOOR = 1e-10
SFDA_POWER_ITERS = 3          # utils.iterative_A(Sw, max_iterations=3)
NCTI_PCA_DIMS = 64            # NCTI metrics.py: PCA(n_components=64)
NCTI_VAR_DIMS = 32            # shrinkage = max(exp(-sum(explained_variance_[:32])), 1e-10)
NCTI_SHRINK_FLOOR = 1e-10     # == floor  -> LDA(solver='svd'); else LDA(solver='eigen', shrinkage)
LDA_SVD_TOL = 1e-4            # sklearn LinearDiscriminantAnalysis default tol (svd solver only)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _features(X) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("X must be (n, d)")
    return x


def _labels(y, n: int, all_present: bool = True) -> tuple[np.ndarray, int]:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError("y must be (n,)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError("y must be integers")
    if n == 0 or y.min() < 0:
        raise ValueError("y must be non-empty and >= 0")
    c = int(y.max()) + 1
    if all_present and np.bincount(y, minlength=c).min() == 0:
        raise ValueError("every class 0..C-1 must be present")
    return y.astype(np.int64), c


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def _class_means(x: np.ndarray, y: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(y, minlength=c).astype(np.float64)
    sums = np.zeros((c, x.shape[1]))
    np.add.at(sums, y, x)
    return counts, sums / counts[:, None]


def _biased_cov(x: np.ndarray) -> np.ndarray:
    """np.cov(x.T, bias=True): centred, divided by the number of rows."""
    xc = x - x.mean(axis=0)
    return (xc.T @ xc) / x.shape[0]


def _shrink(cov: np.ndarray, s: float) -> np.ndarray:
    """sklearn shrunk_covariance / SFDA _cov: (1-s) cov + s * (tr(cov)/d) I."""
    d = cov.shape[0]
    out = (1.0 - s) * cov
    out[np.diag_indices(d)] += s * np.trace(cov) / d
    return out


def _svd_flip_v(u: np.ndarray, vt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn>=1.5 PCA sign rule (svd_flip u_based_decision=False): in every row of vt the entry
    largest in absolute value (first one on ties) is made positive."""
    idx = np.argmax(np.abs(vt), axis=1)
    signs = np.sign(vt[np.arange(vt.shape[0]), idx])
    signs[signs == 0] = 1.0
    return u * signs, vt * signs[:, None]


def pca_scores(x: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact PCA: centre columns, thin SVD, keep f components, sklearn>=1.5 sign rule.

    Returns (scores (n, f) = U_f * S_f  = (x - mean) @ Vt_f.T,  explained_variance_ (f,) =
    S_f^2 / (n - 1)).  Equal to sklearn PCA(n_components=f, svd_solver='full').fit_transform.
    """
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    u, vt = _svd_flip_v(u, vt)
    f = int(f)
    return u[:, :f] * s[:f], (s[:f] ** 2) / (x.shape[0] - 1)


def _rankdata_average(v: np.ndarray) -> np.ndarray:
    """scipy.stats.rankdata(method='average'), 1-based."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    new_group = np.empty(sv.shape[0], dtype=bool)
    new_group[0] = True
    new_group[1:] = sv[1:] != sv[:-1]
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], sv.shape[0])          # exclusive
    avg = (starts + ends + 1) / 2.0                     # mean of 1-based ranks starts+1..ends
    ranks = np.empty(v.shape[0], dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def _gen_eigh_desc(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised symmetric eigenproblem a v = w b v (b positive definite), as
    scipy.linalg.eigh(a, b): eigenvectors normalised so that V^T b V = I. Sorted by w descending
    (the authors' `evecs[:, np.argsort(evals)[::-1]]`). Eigenvector signs are arbitrary; every
    quantity computed from them below is sign-invariant."""
    l = np.linalg.cholesky(b)
    linv = np.linalg.inv(l)
    c = linv @ a @ linv.T
    c = 0.5 * (c + c.T)
    w, u = np.linalg.eigh(c)
    v = linv.T @ u
    order = np.argsort(w, kind="stable")[::-1]
    return w[order], v[:, order]


# ------------------------------------------------------------------------------------------------
# 1. k-NN (leave-one-out, cosine)
# ------------------------------------------------------------------------------------------------

def knn(X, y, k: int = KNN_DEFAULT_K, chunk: int = 1024) -> float:
    """Leave-one-out accuracy (fraction in [0, 1]) of a cosine-similarity k-NN classifier.

    rows are L2-normalised (a zero row stays zero: similarity 0 to everything); sim = Xn Xn^T;
    for each i the neighbours are all j != i ordered by sim descending, equal sims by lower j;
    the first k = min(k, n-1) are kept; the prediction is the label with most votes; among labels
    tied on the maximal count, the label of the earliest (most similar) neighbour carrying one of
    them wins. Score = mean(pred == y).
    """
    x = _features(X)
    n = x.shape[0]
    y, c = _labels(y, n, all_present=False)
    if n < 2:
        raise ValueError("need at least 2 samples")
    k = int(k)
    if k < 1:
        raise ValueError("k must be >= 1")
    k = min(k, n - 1)
    norms = np.linalg.norm(x, axis=1)
    xn = x / np.where(norms > 0, norms, 1.0)[:, None]
    correct = 0
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        sim = xn[lo:hi] @ xn.T                                  # (b, n)
        rows = np.arange(hi - lo)
        sim[rows, lo + rows] = -np.inf                          # exclude self
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # ties -> lower index first
        nl = y[order]                                           # (b, k) neighbour labels
        counts = np.zeros((hi - lo, c), dtype=np.int64)
        np.add.at(counts, (np.repeat(rows, k), nl.ravel()), 1)
        best = counts.max(axis=1)
        is_tied = counts[rows[:, None], nl] == best[:, None]    # neighbour carries a max-vote label
        first = np.argmax(is_tied, axis=1)                      # earliest such neighbour
        pred = nl[rows, first]
        correct += int(np.sum(pred == y[lo:hi]))
    return correct / n


# ------------------------------------------------------------------------------------------------
# 2. PARC
# ------------------------------------------------------------------------------------------------

def parc(X, y, n_dims: int | None = PARC_N_DIMS) -> float:
    """PARC (dbolya/parc methods.py PARC.forward / get_parc_correlation), x100 as in the code.

      1. if n_dims is not None: F = PCA scores on f = min(n_dims, n - 1, d) components
         (authors cap at n; f = n leaves a zero-variance column that step 2 turns into noise)
         (authors: sklearn randomized PCA, random_state=1919, iterated_power=1; here exact PCA,
          sklearn>=1.5 sign rule -- row-wise Pearson depends on PCA signs/basis, see .md)
      2. StandardScaler per column: (F - mean) / std (ddof 0; std 0 -> 1)
      3. R_f = 1 - corrcoef(rows of F)            (n x n, Pearson across the f columns)
         R_y = 1 - corrcoef(rows of onehot(y))    (n x n; C = max(y)+1 columns)
      4. PARC = 100 * Spearman(upper triangle (k=1) of R_f, same of R_y)  (average ranks on ties)
    """
    x = _features(X)
    n, d = x.shape
    y, c = _labels(y, n, all_present=False)
    if n < 3:
        raise ValueError("need at least 3 samples")
    if n_dims is not None:
        x, _ = pca_scores(x, min(int(n_dims), n - 1, d))
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    f = (x - mu) / sd
    onehot = np.eye(max(c, 2))[y]
    r_f = 1.0 - np.corrcoef(f)
    r_y = 1.0 - np.corrcoef(onehot)
    iu = np.triu_indices(n, 1)
    a, b = r_f[iu], r_y[iu]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise FloatingPointError("a constant row makes the Pearson RDM undefined")
    return 100.0 * _pearson(_rankdata_average(a), _rankdata_average(b))


# ------------------------------------------------------------------------------------------------
# 3. SFDA
# ------------------------------------------------------------------------------------------------

def _power_lambda_max(a: np.ndarray, iters: int = SFDA_POWER_ITERS) -> float:
    """TencentARC/SFDA utils.iterative_A, verbatim in numpy."""
    x = a.sum(axis=1)
    for _ in range(iters):
        t = a @ x
        yv = t / np.linalg.norm(t)
        t = a @ yv
        x = t / np.linalg.norm(t)
    return float(x @ a @ yv)


def _sfda_fit_proba(x: np.ndarray, y: np.ndarray, c: int, shrinkage: float | None
                    ) -> tuple[np.ndarray, float]:
    """SFDA class (.fit(x, y).predict_proba(x)) of TencentARC/SFDA metrics.py."""
    n, d = x.shape
    counts, means = _class_means(x, y, c)
    priors = counts / n
    sw = np.zeros((d, d))
    for g in range(c):
        sw += priors[g] * _biased_cov(x[y == g])
    if shrinkage is None:
        shrinkage = max(float(np.exp(-SFDA_SHRINK_A * _power_lambda_max(sw))), SFDA_SHRINK_FLOOR)
    st = _shrink(_biased_cov(x), shrinkage)
    sw_s = _shrink(sw, shrinkage)
    sb = st - sw_s
    _, evecs = _gen_eigh_desc(sb, sw_s)
    # all d eigenvectors are kept: evecs @ evecs.T == inv(sw_s), so coef == means @ inv(sw_s)
    coef = means @ evecs @ evecs.T
    intercept = -0.5 * np.einsum("ij,ij->i", means, coef) + np.log(priors)
    return _softmax_rows(x @ coef.T + intercept), shrinkage


def sfda(X, y) -> float:
    """SFDA score as in TencentARC/SFDA metrics.py SFDA_Score (no log, see .md):

      1. fit regularised FDA on (X, y), shrinkage lam = max(exp(-5 * lambda_max(Sw)), 1e-10)
         (lambda_max by 3 power iterations); p = softmax(X coef^T + b)
      2. soften: q = softmax(p) row-wise (a second softmax over the probabilities)
      3. ConfMix: x_i <- q_i[y_i] x_i + (1 - q_i[y_i]) * mbar_{y_i},
         mbar_c = mean of the other C-1 class means (of the ORIGINAL X)
      4. refit on the mixed X with the same lam; p' = predict_proba(mixed X)
      5. score = mean_i p'_i[y_i]
    """
    x = _features(X).copy()          # the authors mutate X in place; we do not
    n = x.shape[0]
    y, c = _labels(y, n)
    if c < 2:
        raise ValueError("need at least 2 classes")
    prob, lam = _sfda_fit_proba(x, y, c, None)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    _, means = _class_means(x, y, c)
    others = (means.sum(axis=0)[None, :] - means) / (c - 1)
    p = prob[np.arange(n), y][:, None]
    x = p * x + (1.0 - p) * others[y]
    prob2, _ = _sfda_fit_proba(x, y, c, lam)
    return float(prob2[np.arange(n), y].mean())


def sfda_shrinkage(X, y) -> float:
    """The shrinkage SFDA's first fit picks (for debugging / Rust cross-checks)."""
    x = _features(X)
    y, c = _labels(y, x.shape[0])
    return _sfda_fit_proba(x, y, c, None)[1]


# ------------------------------------------------------------------------------------------------
# 4. NCTI
# ------------------------------------------------------------------------------------------------

def _lda_eigen(x: np.ndarray, y: np.ndarray, c: int, shrinkage: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """sklearn LinearDiscriminantAnalysis(solver='eigen', shrinkage=s): (fit_transform, predict_proba)."""
    n, d = x.shape
    counts, means = _class_means(x, y, c)
    priors = counts / n
    sw = np.zeros((d, d))
    for g in range(c):
        sw += priors[g] * _shrink(_biased_cov(x[y == g]), shrinkage)
    st = _shrink(_biased_cov(x), shrinkage)
    _, evecs = _gen_eigh_desc(st - sw, sw)
    coef = means @ evecs @ evecs.T
    intercept = -0.5 * np.einsum("ij,ij->i", means, coef) + np.log(priors)
    proj = (x @ evecs)[:, :min(c - 1, d)]
    return proj, _softmax_rows(x @ coef.T + intercept)


def _lda_svd(x: np.ndarray, y: np.ndarray, c: int, tol: float = LDA_SVD_TOL
             ) -> tuple[np.ndarray, np.ndarray]:
    """sklearn LinearDiscriminantAnalysis(solver='svd') (_solve_svd): (fit_transform, predict_proba)."""
    n, d = x.shape
    counts, means = _class_means(x, y, c)
    priors = counts / n
    xc = x - means[y]
    xbar = priors @ means
    std = xc.std(axis=0)
    std[std == 0] = 1.0
    _, s, vt = np.linalg.svd(np.sqrt(1.0 / (n - c)) * (xc / std), full_matrices=False)
    rank = int(np.sum(s > tol))
    scalings = (vt[:rank] / std).T / s[:rank]
    fac = 1.0 if c == 1 else 1.0 / (c - 1)
    xb = (np.sqrt(n * priors * fac) * (means - xbar).T).T @ scalings
    _, s2, vt2 = np.linalg.svd(xb, full_matrices=False)
    rank2 = int(np.sum(s2 > tol * s2[0]))
    scalings = scalings @ vt2.T[:, :rank2]
    cm = (means - xbar) @ scalings
    intercept = -0.5 * np.sum(cm ** 2, axis=1) + np.log(priors)
    coef = cm @ scalings.T
    intercept = intercept - xbar @ coef.T
    proj = ((x - xbar) @ scalings)[:, :min(c - 1, d)]
    return proj, _softmax_rows(x @ coef.T + intercept)


def ncti_components(X, y, pca_dims: int = NCTI_PCA_DIMS) -> tuple[float, float, float]:
    """Per-model raw NCTI terms (BUserName/NCTI metrics.py NCTI_Score), returned as
    (seli, ncc, vc) -- the order of the authors' return value (all_lowfeat_nuc, sfda_score,
    log(class_pred_nuc)):

      Z    = PCA(X) to f = min(64, n - 1, d) dims (exact PCA here; sklearn PCA(64), 'auto' solver,
             there, which raises if min(n, d) < 64)
      s    = max(exp(-sum of the first 32 explained variances of Z), 1e-10)
      LDA  = sklearn LDA(solver='svd') if s == 1e-10 else LDA(solver='eigen', shrinkage=s)
      H    = LDA.fit_transform(Z, y)  (n x min(C-1, f)),  P = LDA.predict_proba(Z)  (n x C)
      seli = || H - mean_rows(H) ||_*                     (nuclear norm; larger = better)
      ncc  = mean_i P[i, y_i]                             (larger = better)
      vc   = log( sum_c || P[y == c] ||_* )               (smaller = better)
    """
    x = _features(X)
    n, d = x.shape
    y, c = _labels(y, n)
    if c < 2 or n <= c:
        raise ValueError("need C >= 2 classes and n > C samples")
    z, ev = pca_scores(x, min(int(pca_dims), n - 1, d))
    shrink = max(float(np.exp(-ev[:NCTI_VAR_DIMS].sum())), NCTI_SHRINK_FLOOR)
    if shrink == NCTI_SHRINK_FLOOR:
        h, p = _lda_svd(z, y, c)
    else:
        h, p = _lda_eigen(z, y, c, shrink)
    h = h - h.mean(axis=0, keepdims=True)
    seli = float(np.linalg.norm(h, ord="nuc"))
    ncc = float(p[np.arange(n), y].mean())
    vc = float(np.log(sum(np.linalg.norm(p[y == g], ord="nuc") for g in range(c))))
    return seli, ncc, vc


def ncti_combine(components: Sequence[Sequence[float]]) -> np.ndarray:
    """Zoo-level NCTI (BUserName/NCTI evaluate_metric_group1_cpu.py, metric 'ncti'):
    min-max normalise each term over the models, then score = ncc' + seli' - vc'.
    A term that is constant across the zoo gives 0/0 = NaN in the authors' code; here it
    contributes 0 (documented deviation)."""
    comp = np.asarray(components, dtype=np.float64)
    if comp.ndim != 2 or comp.shape[1] != 3:
        raise ValueError("components must be a list of (seli, ncc, vc) tuples")

    def mm(v: np.ndarray) -> np.ndarray:
        span = v.max() - v.min()
        return np.zeros_like(v) if span == 0 else (v - v.min()) / span

    seli, ncc, vc = mm(comp[:, 0]), mm(comp[:, 1]), mm(comp[:, 2])
    return ncc + seli - vc


def ncti_zoo(Xs: Sequence[np.ndarray], y) -> np.ndarray:
    """NCTI for several feature matrices (models or layers) on the same labels."""
    return ncti_combine([ncti_components(X, y) for X in Xs])


# ------------------------------------------------------------------------------------------------
# self-check
# ------------------------------------------------------------------------------------------------

def _toy(seed: int, n_per: int = 20, c: int = 3, d: int = 8, sep: float = 1.5, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d)) * sep
    y = np.repeat(np.arange(c), n_per)
    x = (centres[y] + rng.normal(size=(c * n_per, d))) * scale
    perm = rng.permutation(y.shape[0])
    return x[perm], y[perm]


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    x, y = _toy(0)
    print(f"toy: n={x.shape[0]} d={x.shape[1]} C={y.max() + 1}")
    print(f"knn k=10        {knn(x, y, 10):.12f}")
    print(f"knn k=1         {knn(x, y, 1):.12f}")
    print(f"parc n_dims=32  {parc(x, y):.12f}")
    print(f"parc no PCA     {parc(x, y, None):.12f}")
    print(f"sfda            {sfda(x, y):.12f}   (shrinkage {sfda_shrinkage(x, y):.6e})")
    print("ncti components (seli, ncc, vc), eigen branch:", ncti_components(x, y))

    # invariants
    xs, ys = _toy(1, sep=20.0)
    assert knn(xs, ys, 5) == 1.0
    # all similarities 0 -> nearest is the lowest other index: rows 0,1 -> right; rows 2,3 -> row 0, wrong
    assert knn(np.eye(4), np.array([0, 0, 1, 1]), 1) == 0.5
    # vote ties (k=2, one vote each) go to the more similar neighbour: rows 0, 1, 3 right, row 2 wrong
    xt = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    assert knn(xt, np.array([1, 1, 2, 2]), 2) == 0.75
    assert parc(xs, ys) > parc(x, y)
    assert sfda(xs, ys) > sfda(x, y)

    # three "models" of increasing quality on the same labels; the svd branch needs large variance
    models = [_toy(2, sep=s, scale=3.0)[0] for s in (0.2, 1.0, 3.0)]
    yz = _toy(2)[1]
    comps = [ncti_components(m, yz) for m in models]
    for s, cp in zip((0.2, 1.0, 3.0), comps):
        print(f"ncti components sep={s}: seli={cp[0]:.6f} ncc={cp[1]:.6f} vc={cp[2]:.6f} (svd branch)")
    print("ncti combined:", ncti_combine(comps))
    print("self-check ok")


# ------------------------------------------------------------------------------------------------
# Calibrated scores: NCM, CDNV, TransRate's permutation z (issue 25). Plain loops where the
# definition is a loop, so the reference reads like the formula rather than like the Rust.
# ------------------------------------------------------------------------------------------------

CDNV_CAP = 1e3                # a pair of classes contributes at most this CDNV
TRANSRATE_Z_NULLS = 16
TRANSRATE_Z_EPS = 1e-4        # TransRate's published default eps


def ncm(X, y) -> float:
    """Leave-one-out nearest-class-mean accuracy, Euclidean. An image's own class mean is taken
    without it; an image alone in its class counts as wrong; equal distances: lowest class."""
    x = _features(X)
    y, c = _labels(y, len(x), all_present=False)
    counts = np.bincount(y, minlength=c)
    sums = np.zeros((c, x.shape[1]))
    np.add.at(sums, y, x)
    correct = 0
    for i in range(len(x)):
        best, best_d = None, np.inf
        for k in range(c):
            if counts[k] == 0:
                continue
            if k == y[i]:
                if counts[k] == 1:
                    continue
                centre = (sums[k] - x[i]) / (counts[k] - 1)
            else:
                centre = sums[k] / counts[k]
            d = float(np.sum((x[i] - centre) ** 2))
            if d < best_d:
                best, best_d = k, d
        correct += best == y[i]
    return correct / len(x)


def cdnv(X, y, cap: float = CDNV_CAP) -> float:
    """-log10 of the mean over class pairs of the debiased class-distance normalised variance
    (Galanti et al. 2022): (V_i + V_j) / (2 D_ij), V_c the unbiased variance summed over the
    dimensions, D_ij = |mu_i - mu_j|^2 - V_i / n_i - V_j / n_j floored at (V_i + V_j) / (2 cap).
    Classes with fewer than two images take no part."""
    x = _features(X)
    y, c = _labels(y, len(x), all_present=False)
    classes = [k for k in range(c) if np.sum(y == k) >= 2]
    mu = {k: x[y == k].mean(axis=0) for k in classes}
    n = {k: int(np.sum(y == k)) for k in classes}
    var = {k: float(np.sum((x[y == k] - mu[k]) ** 2)) / (n[k] - 1) for k in classes}
    ratios = []
    for a_i, i in enumerate(classes):
        for j in classes[a_i + 1:]:
            spread = (var[i] + var[j]) / 2
            d = float(np.sum((mu[i] - mu[j]) ** 2)) - var[i] / n[i] - var[j] / n[j]
            ratios.append(spread / max(d, spread / cap))
    return float(-np.log10(np.mean(ratios)))


def splitmix64(state: int) -> int:
    """The first output of SplitMix64 seeded with `state` (Steele et al. 2014)."""
    mask = (1 << 64) - 1
    z = (state + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def null_labels(y, ids, p: int) -> np.ndarray:
    """Shuffled labelling p: the image at listing position `id` takes the label at quantile
    splitmix64(p << 32 | id) / 2^64 of the sorted labels (zoo-select's transrate_z)."""
    ordered = np.sort(np.asarray(y))
    m = len(ordered)
    return np.array([ordered[(splitmix64((p << 32) | int(i)) * m) >> 64] for i in ids])


def transrate_z(X, y, eps: float = TRANSRATE_Z_EPS, nulls: int = TRANSRATE_Z_NULLS, ids=None) -> float:
    """TransRate's z-score against shuffled labels: (TR(y) - mean_p TR(y_p)) / sd_p TR(y_p),
    TR the published TransRate (global centring, 1/C class weights) of the rows, ddof 1, y_p
    the shuffled labellings `null_labels` (ids: the rows' listing positions, default 0..n-1)."""
    x = _features(X)
    y, _ = _labels(y, len(x), all_present=False)
    z = x - x.mean(axis=0)

    def rate(rows):
        n, d = rows.shape
        return 0.5 * np.linalg.slogdet(np.eye(d) + rows.T @ rows / (n * eps))[1]

    def transrate_of(labels):
        labels = np.asarray(labels)
        present = np.unique(labels)
        return rate(z) - np.mean([rate(z[labels == k]) for k in present])

    real = transrate_of(y)
    ids = np.arange(len(y)) if ids is None else np.asarray(ids)
    null = np.array([transrate_of(null_labels(y, ids, p)) for p in range(nulls)])
    return float((real - null.mean()) / null.std(ddof=1))
