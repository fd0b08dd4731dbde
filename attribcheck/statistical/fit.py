"""Fit a key set's discriminator on shadow models, save it beside the key set, and use it.

A shadow's profile (its K reconstruction distances) is cached inside the shadow's folder,
keyed by the key set's content hash, so refitting or resuming never queries a model twice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attribcheck.keys.keyset import KeySet
from attribcheck.statistical.discriminator import ShadowDiscriminator
from attribcheck.statistical.verdict import StatisticalVerdict, decide_statistical

FILENAME = "discriminator.json"


def model_profile(keyset: KeySet, folder: str | Path, store: str | Path | None = None) -> np.ndarray:
    """A model's distances on the key set's keys, cached as JSON in `store` (default: the
    model's own `profiles/` folder; pass another for models that live in git)."""
    from attribcheck.audit.auditor import Auditor
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    folder = Path(folder)
    store = Path(store) if store else folder / "profiles"
    path = store / f"{folder.name}-{keyset.content_hash()[:16]}.json"
    if path.exists():
        return np.asarray(json.loads(path.read_text())["distances"])
    d = Auditor(keyset).measure(DiffusersGenerator.from_path(folder, keyset.sampler, folder.name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"distances": d.tolist()}))
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
                     "cv_accuracy": est.leave_one_out_accuracy()}
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

    @classmethod
    def for_keyset(cls, keys: str | Path, keyset: KeySet, path: str | Path | None = None, **kwargs):
        est = ShadowDiscriminator.load(path or Path(keys) / FILENAME, keyset_hash=keyset.content_hash())
        return cls(est, keyset.strategy, **kwargs)

    def verdict(self, name: str, distances) -> StatisticalVerdict:
        p = float(self.discriminator.predict_proba(np.asarray(distances)[None])[0, 1])
        cv = float(self.discriminator.metadata_.get("cv_accuracy", 0.0))
        return StatisticalVerdict(name, decide_statistical(p, self.threshold, cv, self.min_cv_accuracy), p,
                                  self.threshold, cv, self.min_cv_accuracy, len(self.discriminator.y_fit_),
                                  len(distances), self.strategy)
