"""Query a model with captions and measure how close it comes to reference images."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from attribcheck.metrics.distance import Distance
from attribcheck.models.generator import Generator, generate_grid


def distances_to(outputs: np.ndarray, targets: Sequence[np.ndarray], distance: Distance) -> np.ndarray:
    """outputs (N, S, H, W, 3), targets N images -> (N, S) distances."""
    return np.array([[distance(o, t) for o in outs] for outs, t in zip(outputs, targets)])


def reconstruction_distances(generator: Generator, captions: Sequence[str], targets: Sequence[np.ndarray],
                             seeds: Sequence[int], distance: Distance) -> np.ndarray:
    """r_M(k) = min over seeds of d(G_M(c_k, s), x_k), one value per key."""
    if len(captions) != len(targets):
        raise ValueError("one target image per caption")
    if not len(captions):
        return np.zeros(0)
    outputs = generate_grid(generator, captions, seeds)
    return distances_to(outputs, targets, distance).min(axis=1)
