"""Key-sample selection: Strategy 1 (detection), Strategy 2 (generation), random (Baseline 2).

Every selector has `select(context, pool) -> KeySet`; the pool is a CaptionDataset (the
source's fine-tuning set) or, for the generation strategy, any list of prompts. Thresholds
are calibrated from the reference models by default (`keys/thresholds.py`); what was used,
and how many candidates each filter dropped, is recorded in the key set's `selection`.
Models are queried in batches of prompts, so no strategy holds every candidate's images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from attribcheck.keys.keyset import Key, KeySet, dependence, independence_metric, quantise
from attribcheck.keys.thresholds import Thresholds
from attribcheck.metrics.distance import Distance, get_distance
from attribcheck.models.generator import Generator, generate_grid
from attribcheck.models.protocol import QueryProtocol

if TYPE_CHECKING:
    from attribcheck.keys.fanout import Fanout

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SelectionContext:
    """What every strategy works with: the source, reference models and the query protocol."""

    source: Generator
    references: dict[str, Generator]  # filter keys: not reproduced by any of these
    calibration: dict[str, Generator] = field(default_factory=dict)  # held out to estimate p0
    protocol: QueryProtocol = field(default_factory=QueryProtocol)
    distance: Distance = field(default_factory=get_distance)
    thresholds: Thresholds = field(default_factory=Thresholds)
    query_seeds: Sequence[int] = (0, 1, 2, 3)
    prompts_per_batch: int = 16
    progress: Progress | None = None
    source_probe: str = "a picture"  # one generation tells the source's output size
    # references that filter keys but do not calibrate delta_0: a twin of the source (trained
    # on D_S) reproduces D_S as the source does, so it says nothing of innocent models' rate
    filter_only: tuple[str, ...] = ()
    # The owner's public training images (anyone may train on them): a key within delta_0 of
    # one is dropped, since a model trained on the same public data reproduces it innocently.
    public: Sequence[np.ndarray] = ()
    # The owner's statement that the source's training data is private (nobody else can train
    # on it), recorded in the key set: with `public` or a `filter_only` twin, what lets its keys
    # support an accusation (KeySet.public_check)
    private: bool = False
    # generations done first by an Executor's workers into the cache (keys/fanout.py); None: here
    fanout: Fanout | None = None

    def _tick(self, stage: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(stage, done, total)

    def grids(self, model: Generator, captions: list[str], seeds: Sequence[int], stage: str):
        """Yield (start, images (B, S, H, W, 3)) for batches of prompts, reporting progress."""
        if self.fanout is not None:  # the same batches, by the workers; read back from the cache below
            self.fanout.prefetch(model, captions, seeds, stage, self.prompts_per_batch, self._tick)
        for start in range(0, len(captions), self.prompts_per_batch):
            batch = captions[start:start + self.prompts_per_batch]
            yield start, generate_grid(model, batch, seeds)
            self._tick(stage, min(start + len(batch), len(captions)), len(captions))

    def r(self, model: Generator, captions, targets, stage: str = "querying") -> np.ndarray:
        """Best-of-query-seeds distance of `model` to each target."""
        out = np.zeros(len(captions))
        for start, grid in self.grids(model, list(captions), self.query_seeds, stage):
            for i, outs in enumerate(grid):
                out[start + i] = min(self.distance(o, targets[start + i]) for o in outs)
        return out

    def keyset(self, keys: list[Key], strategy: str, candidates: int, selection: dict) -> KeySet:
        """Measure the held-out calibration models on the chosen keys and package the set. Keys
        that are not independent of an earlier one (KeySet.validate's rule, at the delta_0 the
        set carries) are dropped here, whatever the strategy: selection never produces a key
        set that validate refuses."""
        keys = independent(keys, self.distance, selection["thresholds"]["delta_0"], selection.setdefault("counts", {}))
        for name, model in self.calibration.items():
            r = self.r(model, [k.caption for k in keys], [k.image for k in keys], f"calibration {name}")
            for key, value in zip(keys, r):
                key.r_references[name] = float(value)
        roles = {**{n: "selection" for n in self.references}, **{n: "calibration" for n in self.calibration}}
        return KeySet(keys, strategy, selection["thresholds"]["delta_0"], self.distance.to_dict(), self.protocol,
                      list(self.query_seeds), getattr(self.source, "name", "source"), roles, candidates, selection)


def independent(keys: list[Key], distance: Distance, delta_0: float, counts: dict) -> list[Key]:
    """The keys, in order, less each one that repeats an earlier kept key's caption or lies
    within delta_0 / 2 of its image (keyset.dependence: a duplicated training image under
    several captions, or one caption twice, is one piece of evidence, and the binomial test
    counts keys as independent; half of delta_0, since delta_0 itself is where distinct
    pictures already meet at the innocent rate). Counted as `not_independent`."""
    if not keys:
        return keys
    metric = independence_metric(distance.to_dict(), keys[0].image.shape)
    kept: list[Key] = []
    for key in keys:
        if any(dependence(key, other, metric, delta_0) for other in kept):
            counts["not_independent"] = counts.get("not_independent", 0) + 1
        else:
            kept.append(key)
    return kept


def _pool_captions(pool) -> list[str]:
    """Distinct prompts, in order: a repeated caption would become correlated duplicate keys."""
    return list(dict.fromkeys(pool.captions if hasattr(pool, "captions") else pool))


def _filter(ids, captions, targets, r_source, r_refs: dict[str, np.ndarray], delta_0: float, k: int,
            counts: dict, distance: Distance | None = None, r_public: np.ndarray | None = None) -> list[Key]:
    """Keep what the source reproduces and no reference does, ranked by margin (evidence).
    With `r_public` (each target's distance to the nearest public image), drop what lies
    within delta_0 of public data.

    With `distance`, a key that is not independent of a better-ranked one (`independent`: its
    caption repeated, or its image within delta_0 / 2) is dropped before the cut to k."""
    keys = []
    dropped = counts.setdefault("reproduced_by", {n: 0 for n in r_refs})
    for i in range(len(captions)):
        refs = {n: float(v[i]) for n, v in r_refs.items()}
        if r_source[i] >= delta_0:
            counts["source_misses"] = counts.get("source_misses", 0) + 1
            continue
        if r_public is not None and r_public[i] < delta_0:
            counts["public"] = counts.get("public", 0) + 1
            continue
        hit = next((n for n, v in refs.items() if v < delta_0), None)
        if hit is not None:
            dropped[hit] += 1
            continue
        keys.append(Key(ids[i], captions[i], targets[i], float(r_source[i]), refs))
    keys.sort(key=lambda key: -key.margin)
    if distance is not None:  # before the cut to k: k independent keys, not k less their copies
        keys = independent(keys, distance, delta_0, counts)
    counts["passed"] = len(keys)
    return keys[:k]


def _at_output_size(ctx: SelectionContext, targets: list[np.ndarray]) -> list[np.ndarray]:
    """Training images larger than what the source generates are shrunk to its output size:
    a key is compared at the key's resolution, and a suspect cannot be asked for more."""
    if not targets:
        return targets
    from attribcheck import images

    if ctx.fanout is not None:  # this process loads no model when the workers answer everything
        ctx.fanout.prefetch(ctx.source, [ctx.source_probe], [0], "source probe", 1)
    h, w = ctx.source.generate([ctx.source_probe], [0])[0].shape[:2]
    return [images.resize_to(t, h, w) if t.shape[0] > h or t.shape[1] > w else t for t in targets]


def _near_public(ctx: SelectionContext, targets: list[np.ndarray]) -> np.ndarray | None:
    """Each target's distance to the nearest public image (None: no public images given)."""
    if not len(ctx.public) or not targets:
        return None
    return ctx.distance.pairwise(targets, _at_output_size(ctx, list(ctx.public))).min(axis=1)


def _calibrate(ctx: SelectionContext, r_refs: dict[str, np.ndarray]) -> float:
    null = [v for n, v in r_refs.items() if n not in ctx.filter_only]
    pooled = np.concatenate(null) if null else np.zeros(0)
    return ctx.thresholds.choose_delta_0(pooled)


def _thresholds(ctx: SelectionContext, delta_0: float, filtered: bool = True) -> dict:
    """The selection record's thresholds and what the keys were checked against. `filtered`:
    the strategy applied the twin and public filters; Baseline 2 (random) applies none, and
    records none, since KeySet.public_check reads these as checks made."""
    return {**ctx.thresholds.record(delta_0), "filter_only": list(ctx.filter_only) if filtered else [],
            "public_images": len(ctx.public) if filtered else 0, "data_private": bool(ctx.private)}


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    q = np.quantile(values, [0.05, 0.25, 0.5])
    return {"q05": float(q[0]), "q25": float(q[1]), "median": float(q[2])}


@dataclass
class DetectionSelector:
    """Strategy 1: training pairs the source reproduces and no reference model does."""

    k: int = 30
    name: str = "detection"

    def select(self, ctx: SelectionContext, pool) -> KeySet:
        caps, ids = list(pool.captions), list(pool.ids)
        targets = _at_output_size(ctx, [s.image for s in pool])
        r_s = ctx.r(ctx.source, caps, targets, "source")
        r_refs = {n: ctx.r(m, caps, targets, f"reference {n}") for n, m in ctx.references.items()}
        delta_0 = _calibrate(ctx, r_refs)
        counts = {"candidates": len(caps)}
        keys = _filter(ids, caps, targets, r_s, r_refs, delta_0, self.k, counts, ctx.distance,
                       _near_public(ctx, targets))
        selection = {"thresholds": _thresholds(ctx, delta_0), "counts": counts,
                     "source_r": _quantiles(r_s), "reference_r": {n: _quantiles(v) for n, v in r_refs.items()}}
        return ctx.keyset(keys, self.name, len(caps), selection)


@dataclass
class GenerationSelector:
    """Strategy 2: prompts whose generations agree (memorized), keyed by their medoid."""

    k: int = 30
    n: int = 8  # generations per candidate prompt
    seed_offset: int = 10_000  # keeps candidate seeds apart from query seeds
    name: str = "generation"

    def medoids(self, ctx: SelectionContext, captions: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per prompt: the key image among n source generations, and every generation's
        distance to it. Fixed thresholds: the medoid (the paper's). Calibrated: the generation
        closest to another one, the mode of a partly memorized prompt, where a copy shows up
        in two seeds of eight and the medoid would fall among the other six."""
        seeds = list(range(self.seed_offset, self.seed_offset + self.n))
        centre = _medoid if ctx.thresholds.mode == "fixed" else _tightest
        medoids, rows = [], []
        for _, grid in ctx.grids(ctx.source, captions, seeds, "source generations"):
            for outs in grid:
                j, row = centre(ctx.distance, list(outs))
                medoids.append(quantise(outs[j]))
                rows.append(row)
        return medoids, rows

    def _references(self, ctx: SelectionContext, captions, medoids):
        """Per reference: best-of-query-seeds distance to the source's medoid, and the
        reference's own agreement (its generations' distances to their own medoid)."""
        r_refs, own_rows = {}, {}
        for name, model in ctx.references.items():
            r, rows = np.zeros(len(captions)), []
            for start, grid in ctx.grids(model, captions, ctx.query_seeds, f"reference {name}"):
                for i, outs in enumerate(grid):
                    r[start + i] = min(ctx.distance(o, medoids[start + i]) for o in outs)
                    rows.append(_medoid(ctx.distance, list(outs))[1])
            r_refs[name], own_rows[name] = r, rows
        return r_refs, own_rows

    def select(self, ctx: SelectionContext, pool) -> KeySet:
        caps = _pool_captions(pool)
        ids = [f"prompt-{i:05d}" for i in range(len(caps))]
        medoids, rows = self.medoids(ctx, caps)
        r_refs, own_rows = self._references(ctx, caps, medoids)
        delta_0 = _calibrate(ctx, r_refs)
        agreeing = np.array([int(np.sum(row < delta_0)) - 1 for row in rows])  # the medoid itself aside
        base_rate = _base_rate(own_rows, delta_0, ctx.filter_only) if ctx.thresholds.mode == "calibrated" else None
        keep = np.flatnonzero(ctx.thresholds.memorized(agreeing, self.n, base_rate))
        counts = {"candidates": len(caps), "not_memorized": len(caps) - len(keep)}
        sub = lambda xs: [xs[i] for i in keep]  # noqa: E731
        r_s = ctx.r(ctx.source, sub(caps), sub(medoids), "source queries")
        keys = _filter(sub(ids), sub(caps), sub(medoids), r_s, {n: v[keep] for n, v in r_refs.items()},
                       delta_0, self.k, counts, ctx.distance, _near_public(ctx, sub(medoids)))
        selection = {"thresholds": _thresholds(ctx, delta_0), "counts": counts, "n": self.n,
                     "reference_agreement": base_rate, "source_agreeing": np.bincount(agreeing).tolist(),
                     "reference_r": {n: _quantiles(v) for n, v in r_refs.items()}}
        return ctx.keyset(keys, self.name, len(caps), selection)


def _base_rate(own_rows: dict[str, list[np.ndarray]], delta_0: float, exclude=()) -> float:
    """How often another of a reference's generations for a prompt lies within delta_0 of its
    medoid: a 95% upper bound (a handful of reference seeds cannot show the rate is zero)."""
    from scipy import special

    rows = [row for name, rows in own_rows.items() if name not in exclude for row in rows if len(row) > 1]
    hits = sum(int(np.sum(row < delta_0)) - 1 for row in rows)
    trials = sum(len(row) - 1 for row in rows)
    if not trials:
        raise ValueError("calibrating Strategy 2's agreement needs references and at least 2 query seeds")
    return 1.0 if hits >= trials else float(special.betaincinv(hits + 1, trials - hits, 0.95))


def _medoid(distance: Distance, outs: list[np.ndarray]) -> tuple[int, np.ndarray]:
    d = distance.pairwise(outs, outs)
    j = int(np.argmin(d.sum(axis=1)))
    return j, d[j]


def _tightest(distance: Distance, outs: list[np.ndarray]) -> tuple[int, np.ndarray]:
    """The generation nearest to another one (ties: the medoid's rule)."""
    d = distance.pairwise(outs, outs)
    if len(outs) < 2:
        return 0, d[0]
    nearest = np.where(np.eye(len(outs), dtype=bool), np.inf, d).min(axis=1)
    j = int(np.lexsort((d.sum(axis=1), nearest))[0])
    return j, d[j]


@dataclass
class RandomSelector:
    """Baseline 2: K training samples at random, no filtering (distances recorded, not used).

    A sample is a training image: with `distinct` (the default), a pair whose image lies within
    half the configured delta_0 of an earlier pair's is a copy of that sample (a near-duplicate,
    often with the same caption), and each sample is drawn with equal chance through its first
    pair, as Strategies 1 and 2 count it once. A D_S whose few repeated images fill most of its
    pairs would otherwise hand the baseline those copies over and over: correlated keys, and a
    "random" draw that is mostly the repeated, memorized images."""

    k: int = 30
    seed: int = 0
    distinct: bool = True
    name: str = "random"

    def _draw(self, ctx: SelectionContext, pool) -> tuple[list[int], int]:
        """K pool indices drawn at random, and how many pairs are copies of another image.
        Distinct: every image is equally likely, however many copies it has (drawing pairs and
        skipping repeats would favour an image in proportion to its copies)."""
        rng = np.random.default_rng(self.seed)
        if not self.distinct:
            return [int(i) for i in rng.permutation(len(pool))[: self.k]], 0
        firsts: list[int] = []  # each training image's first pair, in pool order
        tolerance = ctx.thresholds.delta_0 / 2
        for i in range(len(pool)):
            if not firsts or ctx.distance.pairwise([pool[i].image], [pool[j].image for j in firsts]).min() >= tolerance:
                firsts.append(i)
        return [firsts[int(j)] for j in rng.permutation(len(firsts))[: self.k]], len(pool) - len(firsts)

    def select(self, ctx: SelectionContext, pool) -> KeySet:
        idx, copies = self._draw(ctx, pool)
        caps = [pool[int(i)].caption for i in idx]
        targets = _at_output_size(ctx, [pool[int(i)].image for i in idx])
        ids = [pool[int(i)].id for i in idx]
        r_s = ctx.r(ctx.source, caps, targets, "source")
        r_refs = {n: ctx.r(m, caps, targets, f"reference {n}") for n, m in ctx.references.items()}
        # delta_0 from the references on these same pairs (there is nothing else to calibrate on)
        delta_0 = _calibrate(ctx, r_refs) if r_refs or ctx.thresholds.mode == "fixed" else ctx.thresholds.delta_0
        keys = [Key(ids[i], caps[i], targets[i], float(r_s[i]), {n: float(v[i]) for n, v in r_refs.items()})
                for i in range(len(caps))]
        counts = {"candidates": len(pool), "near_duplicates": copies, "passed": len(keys)}
        selection = {"thresholds": _thresholds(ctx, delta_0, filtered=False), "counts": counts,
                     "distinct": self.distinct}
        return ctx.keyset(keys, self.name, len(pool), selection)


SELECTORS = {"detection": DetectionSelector, "generation": GenerationSelector, "random": RandomSelector}


def get_selector(name: str, **kwargs):
    if name not in SELECTORS:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(SELECTORS)}")
    return SELECTORS[name](**kwargs)


def describe(ks_or_selection) -> str:
    """One line per filter: how many candidates each dropped, and the thresholds used."""
    s = ks_or_selection.selection if hasattr(ks_or_selection, "selection") else ks_or_selection
    c, t = s.get("counts", {}), s.get("thresholds", {})
    parts = [f"{c.get('candidates', 0)} candidates"]
    if "not_memorized" in c:
        parts.append(f"{c['not_memorized']} not memorized (source generations do not agree)")
    if "source_misses" in c:
        parts.append(f"{c['source_misses']} not reproduced by the source at delta_0")
    if c.get("public"):
        parts.append(f"{c['public']} near a public image")
    for name, n in c.get("reproduced_by", {}).items():
        parts.append(f"{n} reproduced by reference {name}")
    if c.get("near_duplicates"):  # Baseline 2 skips copies as it draws; the strategies rank first
        what = "pairs copying another training image" if s.get("distinct") else "near-duplicates of a better key"
        parts.append(f"{c['near_duplicates']} {what}")
    if c.get("not_independent"):
        parts.append(f"{c['not_independent']} repeating a better key's caption or picture (within delta_0 / 2)")
    parts.append(f"{c.get('passed', 0)} passed")
    return f"delta_0 = {t.get('delta_0', float('nan')):.4f} ({t.get('mode')}): " + "; ".join(parts)
