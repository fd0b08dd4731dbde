"""The generator interface: (prompt, seed) pairs in, images out."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Generator(Protocol):
    name: str

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        """One image per (prompts[i], seeds[i]) pair, float32 HxWx3 in [0, 1]."""
        ...


def generate_grid(generator: Generator, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
    """Every prompt under every seed: an array (len(prompts), len(seeds), H, W, 3)."""
    pairs = [(p, s) for p in prompts for s in seeds]
    out = generator.generate([p for p, _ in pairs], [s for _, s in pairs])
    return np.stack(out).reshape(len(prompts), len(seeds), *out[0].shape)
