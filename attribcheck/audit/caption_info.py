"""Do a suspect's answers carry information about their captions?

The audit reads each answer against its caption's key. A suspect whose answers do not depend
on the caption (one plausible image for every caption, pure noise, a model fine-tuned until
it draws much the same blob for anything) reproduces no key, and a rule that counts matches
would call it the most innocent model there is: in the partial world an infringer washed
with 100 fine-tuning steps on real data went from 14 of 39 keys to 0 that way. Such answers
depart from the protocol (a text-to-image model answers its captions): no verdict is read
from them.

Two measures, on a bounded sample of answers (the first MAX_CAPTIONS key captions asked):
- The answers to different keys lie within delta_0 of each other (the median over pairs of
  captions, on the key set's metric) while the keys themselves do not: one image for every
  caption. This needs one answer per caption.
- Answers to one caption are no more alike than answers to different captions: over every
  pair of kept answers (thumbnails, RMS), `auc` is the chance that a pair of different
  captions lies further apart than a pair of one caption (0.5: the caption changes nothing),
  and `p_value` a label-permutation test of the same. Answers depart when p_value >= MAX_P or
  auc < MIN_AUC. Measured on 24 captions x 4 seeds: every genuine model of the tiny worlds
  (sources, infringers, innocents, served through a declared postprocess or not) at auc
  0.62-0.95 (emoji world 0.66-0.91, partial world 0.62-0.95), all at p = 0.002, the test's
  floor; on the digits of tests/test_clean_rule.py, one image for every caption at 0.48
  (p = 0.79) and noise at 0.49 (p = 0.85).
When the keys themselves lie within delta_0 of each other, alike answers say nothing and
neither measure departs. Pure numbers: `caption_info` gets the distances; `Keeping` wraps a
generator and keeps the sample (small thumbnails, and one 8-bit answer per caption at the
keys' size).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attribcheck import images

MAX_CAPTIONS = 24  # captions whose answers are kept: a bounded sample, never every answer
MAX_SEEDS = 4  # answers kept per caption
THUMB = 32  # the side the answers are compared at for the rank test (the keys', when smaller)
NEIGHBOURS = 3  # on the metric, each caption's answer is compared with the next captions'
PERMUTATIONS = 499
MAX_P = 0.01  # the answers must depend on their captions at this level ...
MIN_AUC = 0.55  # ... and by this much


@dataclass(frozen=True)
class CaptionInfo:
    between: float  # median metric distance between answers to different captions
    keys: float  # median metric distance between those captions' keys
    delta_0: float
    captions: int  # how many captions the sample holds
    auc: float | None = None  # None: no caption was answered twice
    p_value: float | None = None

    @property
    def departs(self) -> bool:
        if self.keys < self.delta_0:  # the keys are alike themselves: alike answers say nothing
            return False
        if self.between < self.delta_0:
            return True
        # auc and p_value are set together (rank_test)
        return self.auc is not None and self.p_value is not None and (self.p_value >= MAX_P or self.auc < MIN_AUC)

    def reason(self) -> str | None:
        if not self.departs:
            return None
        if self.between < self.delta_0:
            what = (f"answers to different keys lie within delta_0 of each other ({self.between:.3f} < "
                    f"{self.delta_0:.3f}, median) while the keys lie {self.keys:.3f} apart")
        else:
            what = (f"two answers to one caption are no more alike than answers to different captions (auc "
                    f"{self.auc:.2f}, p = {self.p_value:.2g}; at least {MIN_AUC:g} at p < {MAX_P:g} is needed)")
        return (f"the answers carry no information about their captions: {what}; a model that ignores its "
                f"captions reproduces no key and cannot be cleared with them")

    def to_dict(self) -> dict:
        d = {"between": self.between, "keys": self.keys, "captions": self.captions}
        return d | ({"auc": self.auc, "p_value": self.p_value} if self.auc is not None else {})


def _median(x) -> float:
    return round(float(np.median(np.asarray(x, dtype=np.float64))), 6)


def rank_test(d: np.ndarray, labels: Sequence[int], seeds: Sequence[int]) -> tuple[float, float] | None:
    """(auc, p_value) for a symmetric distance matrix between answers with caption `labels`
    and query `seeds`. Only pairs of different seeds count (one seed shared by two captions
    makes their answers alike in a small model whatever the captions), so the one thing that
    differs between the two kinds of pair is the caption: auc = P(a pair of different captions
    lies further apart than a pair of one caption), ties counting half; p_value from
    PERMUTATIONS shuffles of the captions among each seed's answers (seeded: reproducible), of
    the mean distance within captions. None without a pair of each kind."""
    caps, seed = np.asarray(labels), np.asarray(seeds)  # each answer's caption label and query seed
    iu = np.triu_indices(len(caps), 1)
    dist = np.asarray(d, dtype=np.float64)[iu]
    other_seed = (seed[:, None] != seed[None, :])[iu]

    def same_caption(lab):
        return (lab[:, None] == lab[None, :])[iu] & other_seed

    same = same_caption(caps)
    if not same.any() or not (other_seed & ~same).any():
        return None
    w, b = dist[same], dist[other_seed & ~same]
    auc = float(np.mean(b[None, :] > w[:, None]) + 0.5 * np.mean(b[None, :] == w[:, None]))
    observed = w.mean()
    rng = np.random.default_rng(0)
    groups = [np.flatnonzero(seed == s) for s in np.unique(seed)]
    hits = 0
    for _ in range(PERMUTATIONS):
        lab = caps.copy()
        for g in groups:
            lab[g] = rng.permutation(caps[g])
        hits += dist[same_caption(lab)].mean() <= observed + 1e-12
    return round(auc, 6), round(float((1 + hits) / (1 + PERMUTATIONS)), 6)


def caption_info(between: Sequence[float], keys: Sequence[float], delta_0: float, captions: int,
                 thumbs_distances: np.ndarray | None = None, labels: Sequence[int] = (),
                 seeds: Sequence[int] = ()) -> CaptionInfo | None:
    """The summary of measured distances; None when there are too few to say anything."""
    if not len(between) or not len(keys):
        return None
    ranks = rank_test(thumbs_distances, labels, seeds) if thumbs_distances is not None else None
    auc, p = ranks if ranks is not None else (None, None)
    return CaptionInfo(_median(between), _median(keys), float(delta_0), captions, auc, p)


def pairs(n: int) -> list[tuple[int, int]]:
    """Each of n captions with its next NEIGHBOURS (cyclically): at most n x NEIGHBOURS pairs."""
    return sorted({(i, (i + j) % n) for i in range(n) for j in range(1, min(NEIGHBOURS, n - 1) + 1)})


class Keeping:
    """A generator that passes queries through and keeps, for the first MAX_CAPTIONS key
    captions it is asked, the first answer as an 8-bit image at the key's size and up to
    MAX_SEEDS answers (distinct seeds) as THUMB-side thumbnails: memory is bounded by
    MAX_CAPTIONS key-sized images, whatever the answers' size."""

    def __init__(self, generator, keys: dict[str, np.ndarray]):
        self.generator, self.keys = generator, keys
        self.name = getattr(generator, "name", "suspect")
        self.first: dict[str, np.ndarray] = {}
        self.thumbs: dict[str, list[tuple[int, np.ndarray]]] = {}

    def __getattr__(self, attr):  # file_for and the like reach the wrapped generator
        if attr in ("generator", "keys", "first", "thumbs"):
            raise AttributeError(attr)
        return getattr(self.generator, attr)

    def generate(self, prompts, seeds):
        out = self.generator.generate(prompts, seeds)
        for p, s, o in zip(prompts, seeds, out):
            if p in self.keys and (p in self.thumbs or len(self.thumbs) < MAX_CAPTIONS):
                self._keep(p, int(s), o)
        return out

    def _keep(self, caption: str, seed: int, answer) -> None:
        got = self.thumbs.setdefault(caption, [])
        key = self.keys[caption]
        a = np.asarray(answer, dtype=np.float32)
        if len(got) >= MAX_SEEDS or any(s == seed for s, _ in got) or a.ndim != 3 or a.shape[-1] not in (3, 4):
            return
        if not np.all(np.isfinite(a)) or a.shape[0] < key.shape[0] or a.shape[1] < key.shape[1]:
            return  # the audit refuses these answers itself
        rgb = images.resize_to(images.composite(a, images.border_colour(key)), key.shape[0], key.shape[1])
        if caption not in self.first:
            self.first[caption] = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
        side = min(THUMB, key.shape[0], key.shape[1])
        got.append((seed, images.resize(rgb, side).astype(np.float32)))

    def result(self, distance, delta_0: float) -> CaptionInfo | None:
        """The measures on what was kept (None: fewer than two captions answered)."""
        caps = list(self.first)
        if len(caps) < 2:
            return None
        def img(c):
            return self.first[c].astype(np.float32) / 255

        ij = pairs(len(caps))
        between = [distance(img(caps[i]), img(caps[j])) for i, j in ij]
        keys = [distance(self.keys[caps[i]], self.keys[caps[j]]) for i, j in ij]
        flat = [(n, s, t.reshape(-1)) for n, c in enumerate(caps) for s, t in self.thumbs[c]]
        if len({len(t) for _, _, t in flat}) != 1:  # keys of several sizes: no common thumbnail
            return caption_info(between, keys, delta_0, len(caps))
        x = np.stack([t for _, _, t in flat]).astype(np.float64)
        sq = np.sum(x ** 2, axis=1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0) / x.shape[1])
        return caption_info(between, keys, delta_0, len(caps), d, [n for n, _, _ in flat], [s for _, s, _ in flat])
