"""TransRate written straight from the paper, used only to make test fixtures.

Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022, listing 1
(Transfer-Learning-Library's tllib/ranking/transrate.py computes the same):

    Z   <- features centred by their global mean
    R(Z) = 1/2 logdet(I + Z^T Z / (n eps))
    TransRate = R(Z) - 1/C sum_c R(Z_c)

where Z_c are the (globally centred) rows of class c and n is the number of rows of the matrix
whose coding rate is taken. Plain NumPy in float64; no streaming, no cleverness.
"""

import numpy as np


def coding_rate(z: np.ndarray, eps: float) -> float:
    n, d = z.shape
    sign, logdet = np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))
    assert sign > 0
    return 0.5 * logdet


def transrate(features: np.ndarray, labels: np.ndarray, eps: float = 1e-4) -> float:
    z = features.astype(np.float64)
    z = z - z.mean(axis=0, keepdims=True)
    classes = np.unique(labels)
    within = sum(coding_rate(z[labels == c], eps) for c in classes) / len(classes)
    return coding_rate(z, eps) - within
