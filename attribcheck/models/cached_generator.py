"""A Generator that answers from the generation cache and opens the real model only on a miss.

Loading a pipeline is most of a small audit's cost, so the model is opened lazily, on the
first query the cache cannot answer: a warm re-run never loads a model. The computation of
one model's misses holds a file lock (filelock) on that model's identity, so when several
xdist workers ask for the same suspect, one computes and the others wait and then read the
cache: each suspect is computed once whichever worker asks.

The cache can only speed an audit up. Entries are bound to their address and model (see
attribcheck.cache), and the answers an accusation rests on are confirmed without it:
`confirm` regenerates the cached ones with the model itself and requires them equal (the
models are deterministic per seed). A differing answer is an IntegrityError naming the
entry, and that entry is replaced by the regenerated answer.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from typing import Callable, Sequence

import numpy as np

from attribcheck.cache import GenerationCache, entry_key
from attribcheck.models.generator import Generator
from attribcheck.models.protocol import QueryProtocol, Runtime

LIBRARIES = ("torch", "diffusers", "transformers")
# the largest difference between a cached answer and the same answer regenerated (images in
# [0, 1]): float32 rounding when a batch is composed differently, far below any distance
CONFIRM_ATOL = 1e-4

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def _versions() -> tuple:
    from importlib.metadata import PackageNotFoundError, version

    out: list[tuple[str, str | None]] = []  # None: the library is not installed
    for name in LIBRARIES:
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def compute_context(runtime: Runtime | None) -> dict:
    """What besides the model and the protocol decides an image's bits: the libraries that
    compute it and the kind of device (CPU and CUDA kernels differ in the last bits)."""
    device = (runtime or Runtime()).device.split(":")[0]
    return {"libraries": dict(_versions()), "device": device}


class CachedGenerator:
    """Wraps `open_model()` (called at most once, on the first miss) with the cache.

    `identity` is the model's content identity (see attribcheck.models.kinds): it must change
    whenever anything that changes the images does.
    """

    def __init__(self, name: str, identity: str, open_model: Callable[[], Generator],
                 cache: GenerationCache, protocol: QueryProtocol | None = None,
                 runtime: Runtime | None = None, max_side: int | None = None):
        self.name = name
        # answers larger than this on a side are refused before they are cached (an answer at
        # 2048² for 16² keys is not at the protocol's size, and 16 MB of cache each)
        self.max_side = max_side
        self.identity = identity
        self.cache = cache
        self._open = open_model
        self._model: Generator | None = None
        self._protocol = {**(protocol or QueryProtocol()).to_dict(), **compute_context(runtime)}
        self.hits = 0
        self.misses = 0
        self._served: dict[str, str] = {}  # entry key -> sha256 of the answer the cache gave

    @property
    def model(self) -> Generator:
        if self._model is None:
            logger.info("%s: a cache miss, opening the model", self.name)
            self._model = self._open()
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def __getattr__(self, attr):  # file_for and the like, from the model once it is open
        if attr.startswith("_") or self.__dict__.get("_model") is None:
            raise AttributeError(attr)
        return getattr(self._model, attr)

    def _lookup(self, keys: list[str], out: list) -> list[int]:
        missing = []
        for i, k in enumerate(keys):
            if out[i] is None:
                out[i] = self.cache.get(k, self.identity)
                if out[i] is None:
                    missing.append(i)
                else:
                    self._served[k] = _digest(out[i])
        return missing

    def _lock(self):
        from filelock import FileLock

        lock = self.cache.lock_path(hashlib.sha256(self.identity.encode()).hexdigest()[:32])
        lock.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(lock))

    def busy(self) -> bool:
        """Whether another process is computing this model's answers right now (its lock is
        held): a caller with other suspects to audit can do those first."""
        from filelock import Timeout

        lock = self._lock()
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        if len(prompts) != len(seeds):
            raise ValueError("prompts and seeds pair up: give as many of each")
        keys = [entry_key(self.identity, self._protocol, p, int(s)) for p, s in zip(prompts, seeds)]
        out: list[np.ndarray | None] = [None] * len(keys)
        missing = self._lookup(keys, out)
        generated = 0
        if missing:
            with self._lock():
                missing = self._lookup(keys, out)  # another process may have computed them meanwhile
                if missing:
                    # a (prompt, seed) asked twice in one call (a caption D_S repeats) is one image
                    first: dict[str, int] = {}
                    for i in missing:
                        first.setdefault(keys[i], i)
                    todo = list(first.values())
                    images = self.model.generate([prompts[i] for i in todo], [int(seeds[i]) for i in todo])
                    if len(images) != len(todo):  # the checks downstream name it; cache nothing
                        return list(images)
                    fresh = {k: np.asarray(img, dtype=np.float32) for k, img in zip(first, images)}
                    from attribcheck.errors import DegenerateOutputError
                    from attribcheck.images import check_answer_size

                    for img in fresh.values():
                        check_answer_size(img.shape, self.max_side, self.name, error=DegenerateOutputError)
                    for k, img in fresh.items():
                        self.cache.put(k, img, self.identity)
                        self._served.pop(k, None)  # computed here: no longer rests on the cache
                    for i in missing:
                        out[i] = fresh[keys[i]]
                    generated = len(todo)
                    self.cache.trim()  # within its bound: the entries used longest ago go first
        self.misses += generated  # images the model computed; every other answer is a hit
        self.hits += len(keys) - generated
        logger.debug("%s: %d answers from the cache, %d generated", self.name, len(keys) - generated, generated)
        return out  # type: ignore[return-value]


    def confirm(self, prompts: Sequence[str], seeds: Sequence[int]) -> bool:
        """Regenerate, without the cache, those of these answers that came from it, and require
        each equal (within CONFIRM_ATOL) to what the cache gave. True when all are (or none
        came from the cache); a differing answer is an IntegrityError naming its entry (the
        entry is rewritten with the regenerated answer first, so a re-run is honest)."""
        keys = [entry_key(self.identity, self._protocol, p, int(s)) for p, s in zip(prompts, seeds)]
        todo = {k: (p, int(s)) for k, p, s in zip(keys, prompts, seeds) if k in self._served}
        if not todo:
            return True
        answers = self.model.generate([p for p, _ in todo.values()], [s for _, s in todo.values()])
        from attribcheck.errors import IntegrityError

        if len(answers) != len(todo):
            raise IntegrityError(f"answered {len(answers)} of {len(todo)} confirmation queries", self.name)
        bad = None
        for k, fresh in zip(todo, answers):
            fresh = np.asarray(fresh, dtype=np.float32)
            cached = self.cache.get(k, self.identity)
            same = _digest(fresh) == self._served[k] or (  # bit for bit, or within float32 rounding
                cached is not None and _digest(cached) == self._served[k] and cached.shape == fresh.shape
                and bool(np.all(np.abs(cached - fresh) <= CONFIRM_ATOL)))
            if not same:
                self.cache.put(k, fresh, self.identity)
                bad = bad or k
        if bad is not None:
            p, s = todo[bad]
            raise IntegrityError(f"cached answer to ({p!r}, seed {s}) differs from the model's own: the cache entry "
                                 f"was altered, or the model is not deterministic; no verdict rests on it",
                                 self.cache.path(bad))
        return True


def _digest(image: np.ndarray) -> str:
    a = np.ascontiguousarray(image, dtype=np.float32)
    return hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()


def identity_of(parts: dict) -> str:
    """A content identity from its parts (fingerprints, options), order-independent."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, allow_nan=False).encode()).hexdigest()
