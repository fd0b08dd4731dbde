"""Key selection's generations fanned out over an Executor, resumable through the cache.

Selection asks each model for every candidate's images: Strategy 2 over the paper's 3,000
candidates is 24,000 source generations, and each reference's query seeds come on top. With a
`Fanout` in its SelectionContext, each such request (one model, a list of prompts, every seed)
is first cut into work units, the batches selection itself would ask, and handed to an
Executor (attribcheck/executors.py: local processes, or a Dask cluster with one worker per
GPU). A worker opens the model itself from a picklable `ModelRef` (no pipeline is ever
pickled) and writes its answers into the generation cache (attribcheck/cache.py, which the
workers must share: one folder, on one machine or a shared file system). Selection then runs
as it always has, in this process, and reads every answer back from the cache: the key set is
the one a single process selects, whatever the number of workers (each unit is one of the
batches a single process would ask, so even a batch's float rounding is the same; the cache
is lossless). A run that is killed resumes where it stopped: the units already in the cache
are cache hits, only the rest are generated. The cache's bound must hold a request's answers
(Strategy 2's source generations at SD-1.5 size: 24,000 answers), or the oldest are evicted
before they are read back and generated again here; a warning says so.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Sequence

from attribcheck.models.generator import Generator, generate_grid
from attribcheck.models.protocol import QueryProtocol, Runtime
from attribcheck.models.spec import SuspectSpec

logger = logging.getLogger(__name__)


@dataclass
class ModelRef:
    """What a worker needs to open a model through the cache: small, picklable, compared by value."""

    spec: SuspectSpec
    protocol: QueryProtocol
    runtime: Runtime | None = None
    cache_root: str | None = None  # None: the default cache ($ATTRIBCHECK_CACHE)
    max_bytes: int | None = None  # the cache's bound (None: $ATTRIBCHECK_CACHE_MAX_BYTES or the default)

    def open(self) -> Generator:
        from attribcheck.cache import GenerationCache
        from attribcheck.models.spec import open_generator

        return open_generator(self.spec, self.protocol, self.runtime, GenerationCache(self.cache_root, self.max_bytes))


# Each worker keeps the model it opened last: the units of one request follow each other, and
# one model per worker is what a GPU holds. Per thread: a Dask worker runs units on several
# threads, and a pipeline (its scheduler's state) must not serve two at once.
_opened = threading.local()


def generate_unit(ref: ModelRef, prompts: list[str], seeds: list[int]) -> int:
    """A worker's unit: every prompt under every seed, into the cache. Returns how many images
    were generated (the rest were in the cache already)."""
    last = getattr(_opened, "model", None)
    if last is None or last[0] != ref:
        _opened.model = None  # the previous model goes before the next one loads
        gen = ref.open()
        # The per-model lock keeps two processes from computing one suspect's answers twice; the
        # units of a fan-out are disjoint, and under the lock the workers would take turns.
        if hasattr(gen, "cache"):
            gen._lock = _no_lock  # type: ignore[attr-defined]
        _opened.model = (ref, gen)
    gen = _opened.model[1]
    before = getattr(gen, "misses", 0)
    generate_grid(gen, prompts, seeds)  # the batch a single process would ask: the same rounding
    return getattr(gen, "misses", 0) - before


def _no_lock():
    from contextlib import nullcontext

    return nullcontext()


@dataclass
class Fanout:
    """Generations of models opened through `open` are done by `executor`'s workers, unit by unit."""

    executor: Executor
    generated: int = 0  # images the workers generated
    asked: int = 0  # images the units covered (generated + found in the cache)
    _models: dict[int, tuple[Generator, ModelRef]] = field(default_factory=dict)

    def open(self, ref: ModelRef) -> Generator:
        """The model, opened here through the cache (loaded only on a miss: when the workers
        have answered everything, never), and known to the fan-out by its ref."""
        from attribcheck.models.cached_generator import CachedGenerator

        gen = ref.open()
        if isinstance(gen, CachedGenerator):  # a kind without an identity is never cached: nothing to fan out
            self._models[id(gen)] = (gen, ref)  # the generator kept alive: its id stays its own
        return gen

    def prefetch(self, model: Generator, prompts: Sequence[str], seeds: Sequence[int], stage: str,
                 batch: int, tick: Callable[[str, int, int], None] | None = None) -> None:
        """Every prompt under every seed generated by the workers into the cache, in batches of
        `batch` prompts; a model not opened through `open` is left to the caller."""
        known = self._models.get(id(model))
        if known is None or not prompts:
            return
        ref, prompts, seeds = known[1], list(prompts), [int(s) for s in seeds]
        units: dict = {}  # future -> its number of prompts
        done, start, reported = 0, time.monotonic(), 0
        try:
            for i in range(0, len(prompts), batch):
                units[self.executor.submit(generate_unit, ref, prompts[i:i + batch], seeds)] = len(prompts[i:i + batch])
            for future in as_completed(units):
                self.generated += future.result()
                done += units[future]
                self.asked += units[future] * len(seeds)
                if tick:
                    tick(stage, done, len(prompts))
                elapsed = time.monotonic() - start
                if done == len(prompts) or done * 10 // len(prompts) > reported:  # a log line per tenth
                    reported = done * 10 // len(prompts)
                    logger.info("%s: %d/%d prompts x %d seeds, %.0f s, ETA %.0f s", stage, done, len(prompts),
                                len(seeds), elapsed, elapsed / done * (len(prompts) - done))
        finally:  # on an error (or ^C), nothing more is started; what finished is in the cache
            for future in units:
                future.cancel()
        _warn_if_full(ref, stage)


def _warn_if_full(ref: ModelRef, stage: str) -> None:
    """The answers go back through the cache: a cache at its bound evicts the oldest before this
    process reads them, and those are then generated here, one process, again (correct, slow)."""
    from attribcheck.cache import ENV_MAX_BYTES, GenerationCache

    cache = GenerationCache(ref.cache_root, ref.max_bytes)
    used = cache.info().bytes
    if used > 0.9 * cache.max_bytes:
        logger.warning("%s: the generation cache holds %.1f GB of its %.1f GB bound; answers evicted before they are "
                       "read back are generated again in this process: raise %s", stage, used / 1e9,
                       cache.max_bytes / 1e9, ENV_MAX_BYTES)
