"""Early stopping: ask a suspect only what can still change its verdict.

Queries cost money and stealth when the suspect is an API. The audit asks the query seeds in
rounds, in the key set's order: round j asks seed j of every key not matched yet (a key that
has matched needs no further seeds: its distance can only fall), the whole round in one batch
for a model, key by key for an API (a kind with `batched=False`). After each batch it counts
m, the keys matched, and u, the keys still undecided (not matched, seeds left). The final
number of matches of the full audit lies in [m, m + u]: matched keys stay matched, a key
whose every seed missed stays a miss. The verdict is a function of m alone (the binomial
test on m of K, and conf = m / K against the innocent level), so when it is the same for
every value in [m, m + u], no further answer can change it, and the audit stops. Asked key by
key, that can be before every key was asked once: a key never asked has no seeds in the report
and counts as a miss at the metric's upper bound (it cannot change the verdict).

The verdict is therefore the full audit's, always. What differs is the evidence: m, conf and
the p-value are those of the keys matched so far (a lower bound, still on the same side of
every threshold), a matched key's distance is the best of the seeds asked, and the report
lists per key the seeds that were asked. The statistical level needs every key's full
distance and is not computed from an early-stopped audit; where it must read a suspect (one
headed for clean), `complete_if` asks the rest, and nothing twice. One more difference: an answer
never asked is never checked, so a suspect whose unasked answers would be degenerate
gets a verdict here and an error row from the full audit.

This is why early stopping is an option (`--attrib-early-stop`, `attribcheck audit
--early-stop`) and the full audit the default: the default report holds every distance.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from attribcheck.audit.reconstruct import reconstruct
from attribcheck.audit.verdict import Verdict

logger = logging.getLogger(__name__)


@dataclass
class Queries:
    """What an early-stopped audit asked: per key the seeds, in order."""

    seeds: list[list[int]]
    full: int  # what the full audit asks: K x seeds

    @property
    def asked(self) -> int:
        return sum(len(s) for s in self.seeds)


def verdict_at(auditor, m: int, k: int) -> str:
    return auditor.verdict_at(m, k)


def settled(auditor, m: int, undecided: int, k: int) -> str | None:
    """The verdict when every possible final count in [m, m + undecided] gives the same one."""
    verdicts = {verdict_at(auditor, x, k) for x in range(m, m + undecided + 1)}
    return verdicts.pop() if len(verdicts) == 1 else None


def audit_early(auditor, generator, name: str | None = None, chunk: int | None = None,
                complete_if: Callable[[str], bool] | None = None) -> tuple[Verdict, Queries]:
    """The auditor's verdict on `generator`, asking no more than it takes to fix it.

    `chunk`: how many keys are asked at once within a round (None: the whole round, one
    batch, for models that generate in batches; 1 for an API, where every answer costs and
    the decision can be final before the round is over). `complete_if(reading)`: when true
    of the early reading (Auditor.verdict_at), the queries not yet asked are asked too (nothing twice), and the
    result is the full audit's, every key's distance over every seed (a clean verdict the
    statistical level must read first: audit/run.py)."""
    ks = auditor.keyset
    captions, targets, seeds = ks.captions, ks.images, [int(s) for s in ks.query_seeds]
    k = len(captions)
    best = np.full(k, np.inf)
    best_seed = np.full(k, -1, dtype=int)
    asked: list[list[int]] = [[] for _ in range(k)]

    def decided() -> bool:
        matched = best < auditor.delta_0
        # undecided: not matched yet, with seeds still to ask (this round's or later ones)
        undecided = sum(1 for i in range(k) if not matched[i] and len(asked[i]) < len(seeds))
        return settled(auditor, int(np.sum(matched)), undecided, k) is not None

    def ask(part: list[int], seed: int) -> None:
        d, _ = reconstruct(generator, [captions[i] for i in part], [targets[i] for i in part], [seed],
                           auditor.distance)
        for i, di in zip(part, d):
            asked[i].append(seed)
            if di < best[i]:  # strictly: ties keep the earlier seed, as the full audit's argmin does
                best[i], best_seed[i] = di, seed

    def result() -> tuple[Verdict, Queries]:
        # the early reading (a key never asked is a miss, as _verdict scores it) decides whether
        # the rest is asked; the verdict is scored once, on what was asked in the end
        reading = auditor.verdict_at(int(np.sum(best < auditor.delta_0)), k)
        if complete_if is not None and complete_if(reading):
            for j, seed in enumerate(seeds):  # in seed order, so each key's seeds stay in order too
                todo = [i for i in range(k) if len(asked[i]) == j]
                if todo:
                    ask(todo, seed)
        return _verdict(auditor, generator, name, best, best_seed, asked, k * len(seeds))

    for seed in seeds:
        todo = [i for i in range(k) if not best[i] < auditor.delta_0]
        step = chunk or max(1, len(todo))
        for start in range(0, len(todo), step):
            ask(todo[start:start + step], seed)
            if decided():
                return result()
    return result()


def _verdict(auditor, generator, name, best, best_seed, asked, full) -> tuple[Verdict, Queries]:
    n = sum(len(a) for a in asked)
    logger.info("%s: early stop after %d of %d queries", name or getattr(generator, "name", "suspect"), n, full)
    # a key never asked (the decision was final before its turn) is scored as a miss at the
    # metric's upper bound; the report's seeds_queried says it was never asked
    never = [i for i, a in enumerate(asked) if not a]
    if never:
        best = best.copy()
        best[never] = auditor.distance.upper
        best_seed = best_seed.copy()
        best_seed[never] = -1
    verdict = auditor.score(name or getattr(generator, "name", "suspect"), best, best_seed)
    return verdict, Queries(asked, full)
