"""Plain NumPy reference implementations of transferability metrics, for test fixtures only.

Nothing here runs inside zoo-select: these functions exist to produce expected values for the Rust
tests. Everything is float64, written straight from the papers and checked against the authors'
(or the standard third-party) released code; see check_metrics.py for the comparisons.

Common inputs
    features      (n, d) array, any real dtype (converted to float64)
    labels        (n,) ints in 0..C-1, every class present
    source_probs  (n, C_s) rows of a softmax over the source classes (nce, leep)

Reference code read (stored public copies):
    thuml/LogME                         LogME.py                  (LogME, ICML `_fit_icml`)
    thuml/Transfer-Learning-Library     tllib/ranking/{hscore,nce,leep,logme,transrate}.py
    YaojieBao/An-Information-theoretic-Metric-of-Transferability
                                        validate_H-score/H-score_vs_performance.py (H-score)
    google-research/google-research     stable_transfer/transferability/{gbc,hscore,leep,logme}.py
    Long-Kai/TransRate                  generate_transrate/transrate.py, extract_result_utils.py,
                                        generate_transrate/experiment_builder_get_eigens.py
    scikit-learn 1.7.2                  sklearn/covariance/_shrunk_covariance.py (Ledoit-Wolf)
"""

from __future__ import annotations

import numpy as np

# Constants shared with the Rust side (keep in sync with the report / docs).
LOGME_EPSILON = 1e-5          # thuml/LogME each_evidence: added to both denominators and the evidence
LOGME_MAX_ITERS = 11          # "should converge after at most 10 steps"
LOGME_REL_TOL = 0.01          # stop when |new_lam - lam| / lam < 0.01
HSCORE_RCOND = 1e-10          # Bao et al.'s own code; tllib uses 1e-15
GBC_VARIANCE_FLOOR = 1e-4     # google-research gbc.py: tf.maximum(variance, 1e-4)
TRANSRATE_EPS = 1e-4          # paper listing / tllib default


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def _features(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("features must be (n, d)")
    return x


def _labels(labels, n: int) -> tuple[np.ndarray, int]:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError("labels must be (n,)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be integers")
    if y.min() < 0:
        raise ValueError("labels must be >= 0")
    c = int(y.max()) + 1
    if np.bincount(y, minlength=c).min() == 0:
        raise ValueError("every class 0..C-1 must be present")
    return y.astype(np.int64), c


def _class_means(x: np.ndarray, y: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(y, minlength=c).astype(np.float64)
    sums = np.zeros((c, x.shape[1]))
    np.add.at(sums, y, x)
    return counts, sums / counts[:, None]


def between_class_scatter(x: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
    """S_B = sum_c n_c (mu_c - mu)(mu_c - mu)^T  (= (n-1) * np.cov(g) with g_i = mu_{y_i})."""
    counts, means = _class_means(x, y, c)
    dev = means - x.mean(axis=0)
    return (dev * counts[:, None]).T @ dev


# ----------------------------------------------------------------------------------------------
# TransRate
# ----------------------------------------------------------------------------------------------

def _coding_rate(z: np.ndarray, m: int, eps: float) -> float:
    """R = 1/2 logdet(I_d + z^T z / (m eps)) for the rows z (m of them)."""
    d = z.shape[1]
    sign, logdet = np.linalg.slogdet(np.eye(d) + (z.T @ z) / (m * eps))
    if sign <= 0:
        raise FloatingPointError("I + Z^T Z/(n eps) is not positive definite")
    return 0.5 * logdet


def _l2_rows(x: np.ndarray) -> np.ndarray:
    """x / max(|x|, 1e-12) per row, as torch.nn.functional.normalize (a zero row stays zero)."""
    norms = np.linalg.norm(x, axis=1)
    return x / np.maximum(norms, 1e-12)[:, None]


def transrate(features, labels, eps: float = TRANSRATE_EPS, scale: str = "none",
              per_rank: bool = False, class_weight: str = "uniform", normalize: str = "none",
              rank_of: str = "Z", subspace: int | None = None) -> float:
    """TransRate (Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022).

    Defaults reproduce the paper's listing exactly, which is also tllib/ranking/transrate.py and
    tests/oracles/transrate.py:

        Z    = X - mean(X)                               (global centring)
        R(Z) = 1/2 logdet(I + Z^T Z / (n eps))
        TrR  = R(Z) - 1/C sum_c R(Z_c),   R(Z_c) = 1/2 logdet(I + Z_c^T Z_c / (n_c eps))

    where Z_c are the globally centred rows of class c (not re-centred per class).

    Options (applied in this order):
      normalize="l2"            divide each RAW feature vector by its Euclidean norm, then centre.
      normalize="l2_center_l2"  the authors' released pipeline (Long-Kai/TransRate): l2 rows,
                                centre, then l2-normalise the centred rows again (no re-centring).
      scale="trace"             Z <- Z / r, r = sqrt(tr(Z^T Z)/n) (root-mean-squared row norm);
                                this is the authors' `normalize_eigz=True` (eigenvalues of Z^T Z/n
                                divided by their sum; the class eigenvalues by the same sum).
      per_rank=True             divide R(Z) and every R(Z_c) by k, the numerical rank of Z:
                                rank_of="Z":    k = numpy.linalg.matrix_rank(Z) (n x d matrix),
                                                tol = sigma_max(Z) * max(n, d) * 2.22e-16
                                rank_of="gram": k = numpy.linalg.matrix_rank(Z^T Z / n) (d x d),
                                                tol = lambda_max * d * 2.22e-16 on the eigenvalues
                                                (what the authors' code does).
      class_weight="count"      within term sum_c (n_c/n) R(Z_c) instead of 1/C sum_c R(Z_c)
                                (the authors' code uses the count weighting).
      subspace=k                after scaling, Z <- Z V_k with V_k the top-k right singular
                                vectors of Z (its top-k principal directions), so every layer is
                                measured in k dimensions; the class rows are projected alike.

    rank_of="Z" cannot be reproduced from second moments when Z is rank deficient: the Gram
    eigenvalues carry ~eps * lambda_max rounding noise, i.e. singular values ~1.5e-8 sigma_max,
    far above the matrix_rank(Z) tolerance (~1e-13 sigma_max), so a Gram-based count over-counts
    (59 -> 78 and 12 -> 16 on the check sets). rank_of="gram" is computable from moments.
    """
    x = _features(features)
    y, c = _labels(labels, x.shape[0])
    n = x.shape[0]
    if normalize == "none":
        z = x - x.mean(axis=0)
    elif normalize == "l2":
        x = _l2_rows(x)
        z = x - x.mean(axis=0)
    elif normalize == "l2_center_l2":
        x = _l2_rows(x)
        z = _l2_rows(x - x.mean(axis=0))
    else:
        raise ValueError(normalize)
    if scale == "trace":
        r = np.sqrt(np.sum(z * z) / n)
        if r == 0:
            raise ValueError("all features equal: trace scaling undefined")
        z = z / r
    elif scale != "none":
        raise ValueError(scale)
    if subspace is not None and subspace < z.shape[1]:
        _, _, vt = np.linalg.svd(z, full_matrices=False)
        z = z @ vt[:subspace].T

    r_all = _coding_rate(z, n, eps)
    counts = np.bincount(y, minlength=c)
    r_cls = np.array([_coding_rate(z[y == k], int(counts[k]), eps) for k in range(c)])

    if per_rank:
        if rank_of == "Z":
            k = np.linalg.matrix_rank(z)
        elif rank_of == "gram":
            k = np.linalg.matrix_rank(z.T @ z / n)
        else:
            raise ValueError(rank_of)
        if k == 0:
            raise ValueError("rank of the centred features is 0")
        r_all = r_all / k
        r_cls = r_cls / k

    if class_weight == "uniform":
        within = r_cls.mean()
    elif class_weight == "count":
        within = np.dot(counts / n, r_cls)
    else:
        raise ValueError(class_weight)
    return float(r_all - within)


# ----------------------------------------------------------------------------------------------
# LogME
# ----------------------------------------------------------------------------------------------

def logme(features, labels) -> float:
    """LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021), the ICML algorithm as in thuml/LogME LogME.py `_fit_icml` /
    `each_evidence` (the version with epsilon = 1e-5; tllib/ranking/logme.py is the same loop
    without the epsilon). Note LogME.fit defaults to `_fit_fixed_point` (the arXiv 2110.10545
    variant); this is NOT that.

    Features are NOT centred (no bias term): F is used as given, in float64.

        F^T F = V diag(s) V^T           (numpy SVD of the D x D matrix, all D values)
        for each class c, y = 1[label == c] (n-vector of 0/1):
            p = V^T F^T y
            alpha = beta = 1, lam = 1
            repeat at most 11 times:
                gamma  = sum_k s_k / (s_k + lam)
                m      = V (beta p / (alpha + beta s))
                a_de   = m.m ;            alpha = gamma / (a_de + 1e-5)
                b_de   = |y - F m|^2 ;    beta  = (n - gamma) / (b_de + 1e-5)
                if |alpha/beta - lam| / lam < 0.01: break
                lam = alpha / beta
            L_c = [ D/2 log alpha + n/2 log beta - 1/2 sum_k log(alpha + beta s_k)
                    - beta/2 (b_de + 1e-5) - alpha/2 (a_de + 1e-5) - n/2 log(2 pi) ] / n
        LogME = mean_c L_c
    (The evidence uses the alpha, beta of the last update and the a_de, b_de of the m computed
    before it, exactly like the reference.)
    """
    f = _features(features)
    y, c = _labels(labels, f.shape[0])
    n, dim = f.shape
    gram = f.T @ f
    v, s, vh = np.linalg.svd(gram, full_matrices=True)
    eps = LOGME_EPSILON
    scores = []
    for k in range(c):
        target = (y == k).astype(np.float64)
        proj = vh @ (f.T @ target)
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        for _ in range(LOGME_MAX_ITERS):
            gamma = np.sum(s / (s + lam))
            m = v @ (proj * beta / (alpha + beta * s))
            a_de = float(m @ m)
            alpha = gamma / (a_de + eps)
            resid = target - f @ m
            b_de = float(resid @ resid)
            beta = (n - gamma) / (b_de + eps)
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < LOGME_REL_TOL:
                break
            lam = new_lam
        evidence = (dim / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
                    - 0.5 * np.sum(np.log(alpha + beta * s))
                    - beta / 2.0 * (b_de + eps) - alpha / 2.0 * (a_de + eps)
                    - n / 2.0 * np.log(2.0 * np.pi))
        scores.append(evidence / n)
    return float(np.mean(scores))


# ----------------------------------------------------------------------------------------------
# H-score and shrinkage H-score
# ----------------------------------------------------------------------------------------------

def hscore(features, labels, rcond: float = HSCORE_RCOND) -> float:
    """H-score (Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer
    Learning", ICIP 2019):  H = tr( cov(f)^+ cov(g) ),  g_i = E[f | y = y_i] (class mean).

    cov is np.cov (1/(n-1)); the n-1 cancels, so H = tr(pinv(S_T) S_B) with the total scatter
    S_T = sum_i (x_i - mu)(x_i - mu)^T and S_B = sum_c n_c (mu_c - mu)(mu_c - mu)^T.
    Agrees with tllib/ranking/hscore.py `h_score` and with Bao et al.'s getDiffNN.

    Pseudo-inverse: numpy pinv with rcond=1e-10 and hermitian=True (eigh; eigenvalues with
    |lambda| <= 1e-10 * max|lambda| are dropped). Bao et al.'s own code uses rcond=1e-10 (not
    hermitian); tllib uses rcond=1e-15; google-research uses 1e-5 (and an element-wise product in
    the trace, a bug). Why 1e-10: when cov(f) is rank deficient (n <= d, or collinear features)
    its exactly-zero eigenvalues come out of floating point as rounding noise, about
    +-3e-16 * lambda_max when np.cov centres the data first, but much larger when the covariance
    is assembled from accumulated raw moments (M2 - n mu mu^T, as the Rust side does): measured
    4e-15 .. 3e-13 * lambda_max for feature offsets 10 .. 100, where rcond=1e-15 kept the noise
    and gave H = 4.2 and 29.0 instead of 2.9 and 3.1. With rcond=1e-10 the noise is dropped and
    genuine eigenvalues of reasonable data (> 1e-10 lambda_max) are kept. hermitian=True (eigh)
    makes the result symmetric and matches a symmetric eigensolver in Rust.
    """
    x = _features(features)
    y, c = _labels(labels, x.shape[0])
    cov_f = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
    cov_g = between_class_scatter(x, y, c) / (x.shape[0] - 1)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=rcond, hermitian=True) @ cov_g))


def ledoit_wolf(features) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance exactly as sklearn.covariance.LedoitWolf(assume_centered=False)
    .fit(X) computes it (sklearn 1.7.2 `_ledoit_wolf` + `ledoit_wolf_shrinkage`).

        Z = X - mean(X);  S = Z^T Z / n   (population covariance);  mu = tr(S) / d
        delta_ = ||S||_F^2
        beta_  = sum_i |z_i|^4
        b      = (beta_ / n - delta_) / (n d)
        delta  = (delta_ - 2 mu tr(S) + d mu^2) / d          (= ||S - mu I||_F^2 / d)
        b      = min(b, delta)
        alpha  = 0 if b == 0 else b / delta
        Sigma  = (1 - alpha) S + alpha mu I
    d == 1: alpha = 0, Sigma = S (sklearn's special case).
    Returns (Sigma, alpha).
    """
    x = _features(features)
    n, d = x.shape
    z = x - x.mean(axis=0)
    s = z.T @ z / n
    if d == 1:
        return s, 0.0
    tr = np.trace(s)
    mu = tr / d
    delta_ = np.sum(s * s)
    beta_ = np.sum(np.sum(z * z, axis=1) ** 2)
    b = (beta_ / n - delta_) / (n * d)
    delta = (delta_ - 2.0 * mu * tr + d * mu * mu) / d
    b = min(b, delta)
    alpha = 0.0 if b == 0 else b / delta
    sigma = (1.0 - alpha) * s
    sigma[np.diag_indices(d)] += alpha * mu
    return sigma, float(alpha)


def hscore_shrink(features, labels, rcond: float = HSCORE_RCOND) -> float:
    """Shrinkage (regularised) H-score of Ibrahim, Ponomareva & Mazumder, "Newer is not always
    better: Rethinking transferability metrics, their peculiarities, stability and performance"
    (arXiv 2110.06893):

        H_alpha = tr( Sigma_LW^+ (1 - alpha) cov(g) )

    as implemented by tllib/ranking/hscore.py `regularized_h_score` (thuml PR #184, which cites
    the paper; I did not find the authors' own repository in the stored index):
      * Sigma_LW, alpha: Ledoit-Wolf of the features (population covariance, 1/n), see ledoit_wolf;
      * cov(g) = np.cov of the class-mean matrix, i.e. S_B / (n - 1)  (note: 1/(n-1), not 1/n);
      * the between-class covariance is multiplied by (1 - alpha).
    tllib inverts with pinv(rcond=1e-15, not hermitian); here pinv(rcond, hermitian=True) as in
    hscore. With alpha > 0 Sigma_LW >= alpha mu I is well conditioned and both give the same
    value to rounding; they can differ only when alpha == 0 and S is singular.
    """
    x = _features(features)
    y, c = _labels(labels, x.shape[0])
    sigma, alpha = ledoit_wolf(x)
    cov_g = between_class_scatter(x, y, c) / (x.shape[0] - 1)
    inv = np.linalg.pinv(sigma, rcond=rcond, hermitian=True)
    return float(np.trace(inv @ ((1.0 - alpha) * cov_g)))


def test_ledoit_wolf_matches_sklearn(seed: int = 0) -> float:
    """Cross-check ledoit_wolf against sklearn's LedoitWolf on a few shapes; returns the max
    relative difference seen (raises AssertionError above 1e-10)."""
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(seed)
    worst = 0.0
    for n, d in [(50, 3), (40, 120), (300, 64), (7, 5), (30, 1)]:
        x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0
        ref = LedoitWolf(assume_centered=False).fit(x)
        sigma, alpha = ledoit_wolf(x)
        da = abs(alpha - ref.shrinkage_) / max(abs(ref.shrinkage_), 1e-300)
        dc = np.max(np.abs(sigma - ref.covariance_)) / np.max(np.abs(ref.covariance_))
        if ref.shrinkage_ == 0:
            da = abs(alpha)
        worst = max(worst, da, dc)
    assert worst < 1e-10, worst
    return worst


# ----------------------------------------------------------------------------------------------
# NCE, LEEP
# ----------------------------------------------------------------------------------------------

def nce(source, labels) -> float:
    """NCE (Tran et al., "Transferability and Hardness of Supervised Classification Tasks",
    ICCV 2019): negative conditional entropy -H(Y | Z) of the target label Y given the source
    label Z. `source` is either (n, C_s) source softmax rows, in which case Z = argmax (first
    index on ties), or (n,) integer source labels. With joint counts N[y, z], N[z] = sum_y N[y, z]:

        NCE = (1/n) sum_{y,z: N[y,z] > 0} N[y,z] log(N[y,z] / N[z])      (0 log 0 = 0)

    Agrees with tllib/ranking/nce.py (same argument order; it adds 1e-20 inside the log,
    a difference of ~1e-18).
    """
    src = np.asarray(source)
    if src.ndim == 2:
        source_probs, source_labels = src.astype(np.float64), None
    elif src.ndim == 1:
        source_probs, source_labels = None, src
    else:
        raise ValueError("source must be (n, C_s) probabilities or (n,) labels")
    if source_probs is not None:
        p = np.asarray(source_probs, dtype=np.float64)
        z = np.argmax(p, axis=1)
        cs = p.shape[1]
    else:
        z = np.asarray(source_labels).astype(np.int64)
        cs = int(z.max()) + 1
    y, c = _labels(labels, z.shape[0])
    n = z.shape[0]
    joint = np.zeros((c, cs))
    np.add.at(joint, (y, z), 1.0)
    nz = joint.sum(axis=0)
    mask = joint > 0
    ratio = np.where(mask, joint / np.where(nz > 0, nz, 1.0)[None, :], 1.0)
    return float(np.sum(joint[mask] * np.log(ratio[mask])) / n)


def leep(source_probs, labels) -> float:
    """LEEP (Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned
    Representations", ICML 2020), as tllib/ranking/leep.py and google-research leep.py:

        P(y, z) = (1/n) sum_{i: y_i = y} theta_z(x_i)          (soft joint)
        P(y | z) = P(y, z) / sum_y' P(y', z)
        LEEP = (1/n) sum_i log( sum_z theta_z(x_i) P(y_i | z) )

    Rows of source_probs are used as given (not renormalised). A source class z with zero total
    mass gets P(y|z) = 0 (tllib would produce NaN; google-research uses divide_no_nan = 0).
    """
    p = np.asarray(source_probs, dtype=np.float64)
    y, c = _labels(labels, p.shape[0])
    n = p.shape[0]
    joint = np.zeros((c, p.shape[1]))
    np.add.at(joint, y, p)
    joint /= n
    pz = joint.sum(axis=0)
    cond = np.divide(joint, pz[None, :], out=np.zeros_like(joint), where=pz[None, :] > 0)
    eep = np.einsum("iz,iz->i", p, cond[y])
    return float(np.mean(np.log(eep)))


# ----------------------------------------------------------------------------------------------
# GBC
# ----------------------------------------------------------------------------------------------

def gbc(features, labels, gaussian_type: str = "diagonal",
        var_floor: float = GBC_VARIANCE_FLOOR) -> float:
    """GBC (Pandy et al., "Transferability Estimation using Bhattacharyya Class Separability",
    CVPR 2022), as google-research stable_transfer/transferability/gbc.py:

    per class c: mean mu_c, population variance v_c (ddof = 0, tf.math.reduce_variance) per
    dimension, floored: v_c = max(v_c, 1e-4). For a pair (1, 2), with v = (v_1 + v_2)/2:

        diagonal:  D_B = 1/8 sum_k (mu_1k - mu_2k)^2 / v_k
                         + 1/2 [ sum_k log v_k - 1/2 sum_k log v_1k - 1/2 sum_k log v_2k ]
        spherical: v_c := mean_k of the floored v_ck (a scalar) and
                   D_B = 1/8 sum_k (mu_1k - mu_2k)^2 / v + 1/2 [log v - 1/2 log v_1 - 1/2 log v_2]
                   (the reference sums the log of a scalar: no factor d on the log term).

        GBC = - sum_{c1 != c2 (ordered pairs)} exp(-D_B(c1, c2))  = -2 sum_{c1 < c2} exp(-D_B)

    The google-research pipeline defaults to gaussian_type='spherical' with a 64-component PCA
    applied to the features first; neither the PCA nor the default is reproduced here (the
    function takes whatever features it is given, diagonal by default).
    """
    x = _features(features)
    y, c = _labels(labels, x.shape[0])
    means = np.empty((c, x.shape[1]))
    vars_ = np.empty((c, x.shape[1]))
    for k in range(c):
        rows = x[y == k]
        means[k] = rows.mean(axis=0)
        vars_[k] = np.maximum(rows.var(axis=0), var_floor)
    if gaussian_type == "spherical":
        vars_ = vars_.mean(axis=1, keepdims=True)
    elif gaussian_type != "diagonal":
        raise ValueError(gaussian_type)
    total = 0.0
    for a in range(c):
        for b in range(c):
            if a == b:
                continue
            v = 0.5 * (vars_[a] + vars_[b])
            first = np.sum((means[a] - means[b]) ** 2 / v) / 8.0
            second = np.sum(np.log(v)) - 0.5 * np.sum(np.log(vars_[a])) \
                - 0.5 * np.sum(np.log(vars_[b]))
            total += np.exp(-(first + 0.5 * second))
    return float(-total)
