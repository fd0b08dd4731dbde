"""Key-sample selection: Strategy 1 (detection), Strategy 2 (generation), random (Baseline 2).

Every selector has `select(context, pool) -> KeySet`; the pool is a CaptionDataset (the
source's fine-tuning set) or, for the generation strategy, any list of prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from attribcheck.audit.reconstruct import reconstruction_distances
from attribcheck.keys.keyset import Key, KeySet, quantise
from attribcheck.metrics.distance import Distance, get_distance
from attribcheck.models.generator import Generator, generate_grid
from attribcheck.models.protocol import QueryProtocol


@dataclass
class SelectionContext:
    """What every strategy works with: the source, reference models and the query protocol."""

    source: Generator
    references: dict[str, Generator]  # filter keys: not reproduced by any of these
    calibration: dict[str, Generator] = field(default_factory=dict)  # held out to estimate p0
    protocol: QueryProtocol = field(default_factory=QueryProtocol)
    distance: Distance = field(default_factory=get_distance)
    delta_0: float = 0.15
    query_seeds: Sequence[int] = (0, 1, 2, 3)

    def r(self, model: Generator, captions, targets) -> np.ndarray:
        return reconstruction_distances(model, captions, targets, self.query_seeds, self.distance)

    def keyset(self, keys: list[Key], strategy: str, candidates: int) -> KeySet:
        """Measure the held-out calibration models on the chosen keys and package the set."""
        for name, model in self.calibration.items():
            r = self.r(model, [k.caption for k in keys], [k.image for k in keys])
            for key, value in zip(keys, r):
                key.r_references[name] = float(value)
        roles = {**{n: "selection" for n in self.references}, **{n: "calibration" for n in self.calibration}}
        return KeySet(keys, strategy, self.delta_0, self.distance.to_dict(), self.protocol,
                      list(self.query_seeds), getattr(self.source, "name", "source"), roles, candidates)


def _pool_captions(pool) -> list[str]:
    """Distinct prompts, in order: a repeated caption would become correlated duplicate keys."""
    return list(dict.fromkeys(pool.captions if hasattr(pool, "captions") else pool))


def _rank(ids, captions, targets, r_source, r_refs: dict[str, np.ndarray], k: int, delta_0: float,
          filtered: bool) -> list[Key]:
    keys = []
    for i in range(len(captions)):
        refs = {n: float(v[i]) for n, v in r_refs.items()}
        if filtered and not (r_source[i] < delta_0 and all(v >= delta_0 for v in refs.values())):
            continue
        keys.append(Key(ids[i], captions[i], targets[i], float(r_source[i]), refs))
    if filtered:
        keys.sort(key=lambda key: -key.margin)
    return keys[:k]


@dataclass
class DetectionSelector:
    """Strategy 1: training pairs the source reproduces and no reference model does."""

    k: int = 30
    name: str = "detection"

    def select(self, ctx: SelectionContext, pool) -> KeySet:
        caps, targets, ids = list(pool.captions), [s.image for s in pool], list(pool.ids)
        r_s = ctx.r(ctx.source, caps, targets)
        keep = np.flatnonzero(r_s < ctx.delta_0)  # only memorized pairs cost reference queries
        sub = lambda xs: [xs[i] for i in keep]  # noqa: E731
        r_refs = {n: ctx.r(m, sub(caps), sub(targets)) for n, m in ctx.references.items()}
        keys = _rank(sub(ids), sub(caps), sub(targets), r_s[keep], r_refs, self.k, ctx.delta_0, True)
        return ctx.keyset(keys, self.name, len(caps))


@dataclass
class GenerationSelector:
    """Strategy 2: prompts whose generations agree (memorized), keyed by their medoid."""

    k: int = 30
    n: int = 8  # generations per candidate prompt
    m: int | None = None  # agreeing generations needed; default n // 2
    seed_offset: int = 10_000  # keeps candidate seeds apart from query seeds
    name: str = "generation"

    def medoids(self, ctx: SelectionContext, captions: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per prompt: the medoid of n generations and how many lie within delta_0 of it."""
        seeds = list(range(self.seed_offset, self.seed_offset + self.n))
        grid = generate_grid(ctx.source, captions, seeds)
        medoids, agree = [], []
        for outs in grid:
            d = ctx.distance.pairwise(list(outs), list(outs))
            j = int(np.argmin(d.sum(axis=1)))
            medoids.append(quantise(outs[j]))
            agree.append(int(np.sum(d[j] < ctx.delta_0)))
        return medoids, np.array(agree)

    def select(self, ctx: SelectionContext, pool) -> KeySet:
        caps = _pool_captions(pool)
        ids = [f"prompt-{i:05d}" for i in range(len(caps))]
        medoids, agree = self.medoids(ctx, caps)
        keep = np.flatnonzero(agree >= (self.m if self.m is not None else self.n // 2))
        sub = lambda xs: [xs[i] for i in keep]  # noqa: E731
        r_s = ctx.r(ctx.source, sub(caps), sub(medoids))
        r_refs = {n: ctx.r(m, sub(caps), sub(medoids)) for n, m in ctx.references.items()}
        keys = _rank(sub(ids), sub(caps), sub(medoids), r_s, r_refs, self.k, ctx.delta_0, True)
        return ctx.keyset(keys, self.name, len(caps))


@dataclass
class RandomSelector:
    """Baseline 2: K training pairs at random, no filtering (distances recorded, not used)."""

    k: int = 30
    seed: int = 0
    name: str = "random"

    def select(self, ctx: SelectionContext, pool) -> KeySet:
        idx = np.random.default_rng(self.seed).permutation(len(pool))[: self.k]
        caps = [pool[int(i)].caption for i in idx]
        targets = [pool[int(i)].image for i in idx]
        ids = [pool[int(i)].id for i in idx]
        r_s = ctx.r(ctx.source, caps, targets)
        r_refs = {n: ctx.r(m, caps, targets) for n, m in ctx.references.items()}
        keys = _rank(ids, caps, targets, r_s, r_refs, self.k, ctx.delta_0, False)
        return ctx.keyset(keys, self.name, len(pool))


SELECTORS = {"detection": DetectionSelector, "generation": GenerationSelector, "random": RandomSelector}


def get_selector(name: str, **kwargs):
    if name not in SELECTORS:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(SELECTORS)}")
    return SELECTORS[name](**kwargs)
