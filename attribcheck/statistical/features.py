"""Order-invariant features of a model's K reconstruction distances."""
from __future__ import annotations

import numpy as np

from attribcheck.errors import InputError

DEFAULT_BINS = (0.0, 0.1, 0.15, 0.2, 0.25, 1.0)  # Table 2's bins


def profile_features(distances, bins=DEFAULT_BINS) -> np.ndarray:
    """(n_models, K) distances -> sorted distances, bin shares, mean and minimum per model."""
    d = np.atleast_2d(np.asarray(distances, dtype=np.float64))
    if not np.all(np.isfinite(d)):
        # a NaN would sort and bin silently into some profile; refuse it instead
        raise InputError("must be finite", "distance profile", "distances")
    srt = np.sort(d, axis=1)
    edges = np.asarray(bins, dtype=np.float64)
    idx = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, len(edges) - 2)
    hist = np.stack([(idx == b).mean(axis=1) for b in range(len(edges) - 1)], axis=1)
    return np.hstack([srt, hist, srt.mean(axis=1, keepdims=True), srt[:, :1]])
