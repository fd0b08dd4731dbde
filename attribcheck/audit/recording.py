"""Keep each key's best-seed answer while the audit runs, so the evidence report can show it
without a second round of generation.

`Recording` wraps a generator and remembers its answers (as 8-bit images: a quarter of the
float memory, and what the page shows anyway); `best_images` then picks, per key, the answer
of the seed the audit found closest, composited onto the key's background exactly as the
distance step saw it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from attribcheck import images


class Recording:
    """A generator that passes queries through and remembers every answer by (prompt, seed)."""

    def __init__(self, generator):
        self.generator = generator
        self.name = getattr(generator, "name", "suspect")
        self.answers: dict[tuple[str, int], np.ndarray] = {}

    def __getattr__(self, attr):  # file_for, fingerprints and the like reach the wrapped generator
        if attr == "generator":
            raise AttributeError(attr)
        return getattr(self.generator, attr)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        out = self.generator.generate(prompts, seeds)
        for p, s, o in zip(prompts, seeds, out):
            a = np.asarray(o)
            if a.ndim == 3 and np.all(np.isfinite(a)):  # degenerate answers are the audit's to refuse
                self.answers[(p, int(s))] = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
        return out


def best_images(recording: Recording, keyset, best_seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """key id -> the answer of that key's best seed (float RGB in [0, 1]); keys whose answer was
    never recorded are left out."""
    out = {}
    for key, seed in zip(keyset.keys, best_seeds):
        answer = recording.answers.get((key.caption, int(seed)))
        if answer is not None:
            rgba = answer.astype(np.float32) / 255.0
            out[key.id] = images.composite(rgba, images.border_colour(key.image))
    return out
