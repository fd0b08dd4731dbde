"""Do a suspect's answers look like what the protocol produces, or like something blurred?

The null (p0, the innocent level) is measured on untouched answers. Answers that were blurred
on the way (a round trip through a smaller size, an upscale the metric shrinks back, a crop
scaled back up, a natively smooth model) are closer under a pixel metric to *every* key, so
an innocent served that way can reproduce many keys: in the partial world a half-resolution
round trip put an innocent at 5 of 39 keys (p = 0.009), and a crop-aware metric put both
innocents at up to 18. The audit measures how sharp the answers are, at the resolution the
metric compares them, against the keys seen the same way (`sharpness`: the median mean
absolute Laplacian of the answers over that of the keys). Below `min_sharpness` the answers
depart from the protocol, as do answers of another size than the keys' (the protocol fixes
it; a box filter shrinking an upscaled answer is a blur too), and no verdict is read from them
against the untouched null: the
verdict is inconclusive, with the reason, until the suspect's `postprocess` is declared
(audit/postprocess.py), which measures the null through it.

The measure is one number per suspect, a median over all of its answers: one image's
content does not move it. Untouched answers in the tiny worlds lie at 0.67-1.58 of the keys'
sharpness (JPEG q50-90 and other samplers included); upscaled, round-tripped and cropped
ones at 0.15-0.57 on the partial world (README: "Answers that were post-processed").

The band has a top too, `MAX_SHARPNESS`: answers far sharper than the keys carry something
the protocol does not produce (noise, a checkerboard added to hide a copy from the pixel
metric, or a declared blur they never went through). A source's answers plus a +-0.5
checkerboard sit at 6.5-10 of the keys'; seen through a declared step (the keys and the
answers both through it), every model of both tiny worlds lies at 0.46-1.78 (jpeg:1 to
jpeg:50, blur, crop, scale, round trips), while untouched answers read against keys seen
through a blur:1, a crop:0.5 or a round trip they never went through lie at 3.6-26.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from attribcheck import images

DEFAULT_MIN_SHARPNESS = 0.6
# above this share of the keys' sharpness the answers depart too: honest answers of both tiny
# worlds reach 1.78 (untouched 1.58), a +-0.2 checkerboard on the source's answers 3.1-4.7
MAX_SHARPNESS = 2.0


def sharpness(image: np.ndarray, height: int, width: int) -> float:
    """Mean absolute Laplacian of the image's grey levels at height x width (after the metric's
    own resize), in [0, 8]: 0 for a flat image."""
    x = np.asarray(image, dtype=np.float32)
    if x.shape[-1] == 4:
        x = images.composite(x, np.ones(3, np.float32))
    grey = images.resize_to(x[..., :3], height, width).mean(axis=-1)
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(np.mean(np.abs(lap))) if lap.size else 0.0


@dataclass(frozen=True)
class Conformance:
    sharpness: float  # the answers' median sharpness over the keys'
    min_sharpness: float
    answer_size: tuple[int, int]  # the most common answer height, width
    key_size: tuple[int, int]
    max_sharpness: float = MAX_SHARPNESS
    declared: tuple[str, ...] = ()  # the suspect's declared steps, the keys were seen through them

    @property
    def departs(self) -> bool:
        return not self.min_sharpness <= self.sharpness <= self.max_sharpness or self.answer_size != self.key_size

    def reason(self) -> str | None:
        """Why no verdict is read from these answers against this null, or None."""
        if not self.departs:
            return None
        keys = f"the keys' seen through {'+'.join(self.declared)}" if self.declared else "the keys'"
        what = []
        if self.sharpness < self.min_sharpness:
            what.append(f"blurrier than the protocol's (sharpness {self.sharpness:.2f} of {keys}, under "
                        f"{self.min_sharpness:g})")
        if self.sharpness > self.max_sharpness:
            what.append(f"sharper than the protocol's (sharpness {self.sharpness:.2f} of {keys}, over "
                        f"{self.max_sharpness:g}: noise or a pattern the protocol does not produce)")
        if self.answer_size != self.key_size:
            what.append(f"{self.answer_size[0]}x{self.answer_size[1]}, not {keys} "
                        f"{self.key_size[0]}x{self.key_size[1]}")
        if self.declared:
            return (f"the answers are {' and '.join(what)}: they did not go through the declared postprocess, "
                    f"so the null measured through it does not apply")
        return (f"the answers are {' and '.join(what)}: the null was measured on untouched answers at the "
                f"protocol's size; declare the suspect's postprocess to measure it through the same steps")


def _measurable(answer) -> bool:
    """An HxWx3 (or 4) finite image: the audit refuses the rest, and measures only these."""
    a = np.asarray(answer)
    return a.ndim == 3 and a.shape[-1] in (3, 4) and bool(np.all(np.isfinite(a)))


def _measure(answer: np.ndarray, height: int, width: int) -> tuple[tuple[int, int], float]:
    """What conformance keeps of one answer: its size and its sharpness at the keys' size."""
    h, w = np.asarray(answer).shape[:2]
    return (int(h), int(w)), sharpness(answer, height, width)


def _summary(seen, keys, min_sharpness: float) -> Conformance:
    h, w = keys[0].shape[:2]
    theirs = float(np.median([sharpness(k, h, w) for k in keys]))
    mine = float(np.median([s for _, s in seen]))
    sizes = [size for size, _ in seen]
    common = max(set(sizes), key=sizes.count)
    return Conformance(round(mine / theirs, 6) if theirs > 0 else float("inf"), min_sharpness, common, (h, w))


def conformance(answers: Sequence[np.ndarray], keys: Sequence[np.ndarray],
                min_sharpness: float = DEFAULT_MIN_SHARPNESS) -> Conformance:
    """Conformance of a suspect's answers (any number, any order) to keys of one shape."""
    h, w = keys[0].shape[:2]
    return _summary([_measure(a, h, w) for a in answers if _measurable(a)], keys, min_sharpness)


class Watching:
    """A generator that passes queries through and keeps every answer's size and sharpness
    (numbers only: an audit of thousands of answers keeps no images for this)."""

    def __init__(self, generator, height: int, width: int):
        self.generator, self.height, self.width = generator, height, width
        self.name = getattr(generator, "name", "suspect")
        self.seen: list[tuple[tuple[int, int], float]] = []

    def __getattr__(self, attr):  # file_for and the like reach the wrapped generator
        if attr == "generator":
            raise AttributeError(attr)
        return getattr(self.generator, attr)

    def generate(self, prompts, seeds):
        out = self.generator.generate(prompts, seeds)
        self.seen.extend(_measure(o, self.height, self.width) for o in out if _measurable(o))
        return out

    def result(self, keys: Sequence[np.ndarray], min_sharpness: float = DEFAULT_MIN_SHARPNESS) -> Conformance | None:
        return _summary(self.seen, keys, min_sharpness) if self.seen else None
