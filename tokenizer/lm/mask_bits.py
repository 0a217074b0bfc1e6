"""Code length of a clip's keep mask: the combinatorial (enumerative) bound.

A clip with n = t*h*w latent cells keeps k of them. A decoder that knows n codes the mask as
k (uniform over 0..n: log2(n + 1) bits), then which k-subset (uniform over the C(n, k) subsets:
log2 C(n, k) bits). Enumerative coding reaches this within one bit per clip, and it is the
exact length of an ideal code that knows nothing about where tokens tend to be kept (no
spatial prior), so it is an upper bound on what a learned mask model would pay. A clip that
keeps every cell (k = n) pays only log2(n + 1).
"""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def mask_bits(n: int, k: int) -> float:
    """log2(n + 1) + log2 C(n, k) bits for keeping k of n cells (0 <= k <= n)."""
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"mask_bits needs 0 <= k <= n, got n={n}, k={k}")
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return (math.log(n + 1) + log_choose) / LN2


def mask_bits_array(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """`mask_bits` per clip: n, k (R,) integers -> (R,) float64 bits."""
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if n.shape != k.shape or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"mask_bits_array needs 0 <= k <= n of one shape, got shapes {n.shape} and {k.shape}")
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    return (np.log(n + 1) + lg(n + 1) - lg(k + 1) - lg(n - k + 1)) / LN2
