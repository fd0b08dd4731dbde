"""Fit a key set's discriminator on shadow models, save it beside the key set, and use it.

A shadow's profile (its K reconstruction distances) is cached, so refitting or resuming never
queries a model twice. The cache is keyed by content, not by name: the model's fingerprint
(its weights' bytes) and the key set's content hash (which covers the keys, the query
protocol, the seeds and the metric). Each entry records what it was computed from and is
checked on read; an entry that does not match (other weights in the same folder, another key
set, a hand-edited or truncated file) is recomputed, never believed. Entries are written
atomically. The cache guards against stale and corrupt entries, not against someone who can
write to the store: they could replace the shadow's weights just as well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from attribcheck.artifacts import Artifact
from attribcheck.errors import InputError, IntegrityError
from attribcheck.fingerprint import fingerprint
from attribcheck.audit.verdict import withhold_accusation
from attribcheck.keys.keyset import NOT_PUBLIC_CHECKED, KeySet
from attribcheck.statistical.discriminator import ShadowDiscriminator
from attribcheck.statistical.verdict import StatisticalVerdict, decide_statistical

FILENAME = "discriminator.json"
CACHE_FORMAT = 1


class ProfileEntry(Artifact):
    """One cached profile: a model's distances on a key set's keys, and what they were computed from."""

    FORMAT = "attribcheck.profile"
    FORMAT_VERSION = CACHE_FORMAT
    WHAT = "profile cache"
    INDENT = None

    model: str
    model_fingerprint: str
    keyset_hash: str
    protocol: dict[str, Any]
    distances: list[Annotated[float, Field(ge=0)]]


def _cached(path: Path, model_fp: str, keyset_hash: str, k: int) -> np.ndarray | None:
    """The entry's distances when it was computed from this model and this key set, else None."""
    from attribcheck.errors import AttribcheckError

    if not path.exists():
        return None
    try:  # an entry that is a FIFO, a device, too large, too deep or off the schema is recomputed
        entry = ProfileEntry.load(path)
    except AttribcheckError:
        return None
    if entry.model_fingerprint != model_fp or entry.keyset_hash != keyset_hash or len(entry.distances) != k:
        return None
    return np.asarray(entry.distances, dtype=np.float64)


def model_profile(keyset: KeySet, folder: str | Path, store: str | Path | None = None, runtime=None) -> np.ndarray:
    """A model's distances on the key set's keys, cached as JSON in `store` (default: the
    model's own `profiles/` folder, which its fingerprint ignores; pass another for models
    that live in git)."""
    from attribcheck.audit.auditor import Auditor
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    folder = Path(folder)
    store = Path(store) if store else folder / "profiles"
    model_fp, keyset_hash = fingerprint(folder), keyset.content_hash()
    path = store / f"{model_fp[:16]}-{keyset_hash[:16]}.json"
    cached = _cached(path, model_fp, keyset_hash, len(keyset))
    if cached is not None:
        return cached
    d = np.asarray(Auditor(keyset).measure(DiffusersGenerator.from_path(folder, keyset.protocol, folder.name,
                                                                         runtime=runtime)), dtype=np.float64)
    if d.shape != (len(keyset),) or not np.all(np.isfinite(d)):
        raise IntegrityError(f"measured {d.shape} distances with non-finite values; expected {len(keyset)} finite",
                             folder)
    ProfileEntry(format_version=CACHE_FORMAT, model=folder.name, model_fingerprint=model_fp, keyset_hash=keyset_hash,
                 protocol=keyset.protocol.to_dict(), distances=d.tolist()).save(path)
    return d


def fit_discriminator(keys: str | Path, shadows: list[tuple[Path, int]], classifier=None,
                      save: bool = True) -> ShadowDiscriminator:
    """Fit on (shadow folder, label) pairs (1 = infringing) and save as `keys/discriminator.json`."""
    keyset = KeySet.load(keys)
    X = np.stack([model_profile(keyset, folder) for folder, _ in shadows])
    y = np.array([label for _, label in shadows])
    return fit_profiles(keyset, X, y, [Path(f).name for f, _ in shadows], classifier,
                        Path(keys) / FILENAME if save else None)


def fit_profiles(keyset: KeySet, X, y, names: list[str], classifier=None, path: Path | None = None):
    est = ShadowDiscriminator(classifier).fit(X, y)
    est.metadata_ = {"keyset_hash": keyset.content_hash(), "shadows": names,
                     "cv_accuracy": est.guard_accuracy()}  # stored to be checked on load, never read as is
    if path:
        est.save(path, **est.metadata_)
    return est


@dataclass
class StatisticalAuditor:
    """Turns a suspect's distance profile into a StatisticalVerdict."""

    discriminator: ShadowDiscriminator
    strategy: str
    threshold: float = 0.9
    min_cv_accuracy: float = 0.8  # below it the shadows do not separate: no verdict
    # why the key set may accuse no one (then an attributed reading is inconclusive with this
    # reason); for_keyset sets it from KeySet.public_check. Built by hand, the auditor knows no
    # key set, so it accuses no one until the caller says the keys may (None)
    cannot_accuse: str | None = NOT_PUBLIC_CHECKED

    def __post_init__(self):
        # checked here, before any suspect is scored, not when the first verdict is decided
        if not (isinstance(self.threshold, (int, float)) and 0.5 < self.threshold <= 1):
            raise InputError(f"{self.threshold!r} outside (0.5, 1]", "statistical auditor", "threshold")
        if not (isinstance(self.min_cv_accuracy, (int, float)) and 0 <= self.min_cv_accuracy < math.inf):
            # above 1 is allowed: a guard no discriminator passes, i.e. never a statistical verdict
            raise InputError(f"{self.min_cv_accuracy!r} is not a number >= 0", "statistical auditor",
                             "min_cv_accuracy")

    @classmethod
    def for_keyset(cls, keys: str | Path, keyset: KeySet, path: str | Path | None = None, **kwargs):
        path = Path(path or Path(keys) / FILENAME)
        est = ShadowDiscriminator.load(path, keyset_hash=keyset.content_hash())
        if est.n_features_in_ != len(keyset):
            raise IntegrityError(f"profiles of {est.n_features_in_} keys for a key set of {len(keyset)}", path, "X")
        return cls(est, keyset.strategy, cannot_accuse=keyset.cannot_accuse, **kwargs)

    def verdict(self, name: str, distances) -> StatisticalVerdict:
        d = np.asarray(distances, dtype=np.float64)
        if d.shape != (self.discriminator.n_features_in_,) or not np.all(np.isfinite(d)):
            raise InputError(f"{d.shape[0] if d.ndim == 1 else d.shape} distances (non-finite ones refused); the "
                             f"discriminator expects {self.discriminator.n_features_in_}", name, "distances")
        p = float(self.discriminator.predict_proba(d[None])[0, 1])
        # the guard is recomputed from the shadows' profiles, never read from the file or metadata
        cv = float(self.discriminator.guard_accuracy())
        missed = self.discriminator.held_out_misses()
        verdict, withheld = withhold_accusation(decide_statistical(p, self.threshold, cv, self.min_cv_accuracy, *missed),
                                                self.cannot_accuse,
                                                f"statistical level: P(infringing) {p:.3f} >= {self.threshold}")
        return StatisticalVerdict(name, verdict, p, self.threshold, cv, self.min_cv_accuracy,
                                  len(self.discriminator.y_fit_), len(distances), self.strategy,
                                  missed_infringing=missed[0], missed_innocent=missed[1], withheld=withheld)


def innocent_profiles(path: str | Path, keyset: KeySet) -> dict[str, np.ndarray]:
    """The innocent shadows' distances stored in a key set's discriminator file (schema-checked,
    tied to the key set by its hash): more innocent models to bound p0 with."""
    from attribcheck.statistical import discriminator_file

    path = Path(path)
    data = discriminator_file.read(path)
    if data.metadata.get("keyset_hash") != keyset.content_hash():
        raise IntegrityError("belongs to another key set", path, "metadata.keyset_hash")
    if len(data.X[0]) != len(keyset):
        raise IntegrityError(f"profiles of {len(data.X[0])} keys for a key set of {len(keyset)}", path, "X")
    names = data.metadata.get("shadows") or [f"shadow-{i}" for i in range(len(data.y))]
    return {f"shadow:{n}": np.asarray(x, dtype=np.float64) for n, x, y in zip(names, data.X, data.y) if y == 0}
