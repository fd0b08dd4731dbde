"""The instance-level audit as a pipeline of small blocks:
key set -> query suspect -> measure -> score -> verdict."""
from __future__ import annotations

import logging

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from attribcheck.audit import score
from attribcheck.audit.conformance import DEFAULT_MIN_SHARPNESS
from attribcheck.audit.reconstruct import reconstruct
from attribcheck.audit.verdict import DEFAULT_R_MIN, Verdict, decide, withhold_accusation
from attribcheck.errors import InputError
from attribcheck.keys.keyset import KeySet
from attribcheck.metrics.distance import get_distance
from attribcheck.models.generator import Generator

logger = logging.getLogger(__name__)


def calibration_distances(keyset: KeySet) -> dict[str, np.ndarray]:
    """Each innocent reference's distances on the keys: the held-out calibration models when
    the key set has them (selection references were filtered to miss every key, so they are
    biased low), else every reference."""
    roles = keyset.reference_roles
    names = [n for n, r in roles.items() if r == "calibration"] or list(roles)
    return {n: np.array([k.r_references[n] for k in keyset.keys]) for n in names}


def null_models(keyset: KeySet, innocents: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every innocent model the owner has measured on the keys: the held-out calibration
    references, plus `innocents` (e.g. the discriminator's innocent shadows). Each model counts
    once: a name that is already a calibration reference is not added again."""
    models = calibration_distances(keyset)
    for name, d in (innocents or {}).items():
        d = np.asarray(d, dtype=np.float64)
        if d.shape != (len(keyset),):
            raise InputError(f"{name}: {d.shape[0] if d.ndim else 0} distances for {len(keyset)} keys", field="innocents")
        models.setdefault(name, d)
    return models


# An innocent model's distances equal a reference's stored ones within one 8-bit level on
# every key: it is that reference (the stored distances were taken before the key images were
# quantised, which moves an RMS distance by at most half a level).
SAME_MODEL = 1 / 255


def same_reference(keyset: KeySet, distances: np.ndarray, role: str = "selection") -> str | None:
    """The key set's reference (of `role`) whose stored distances `distances` repeat, or None:
    a model is recognised by what it answers, not by the name it is listed under."""
    d = np.asarray(distances, dtype=np.float64)
    for name, r in keyset.reference_roles.items():
        stored = np.array([k.r_references[name] for k in keyset.keys])
        if r == role and d.shape == stored.shape and np.all(np.abs(d - stored) <= SAME_MODEL):
            return name
    return None


def hold_to_the_others(name: str, d: np.ndarray, others: list[np.ndarray], delta_0: float, alpha: float,
                       what: str, floor: float = 0.0, where=None, field: str = "innocents") -> None:
    """The rule an innocent model is held to before it may bound p0: the audit's own test, on
    its m of K keys against p0 of `others` (at least `floor`), must not attribute it.

    One that it would attribute is refused (InputError naming it), neither kept nor dropped.
    Kept, it raises p0 and the innocent level until infringers are cleared (40 added shadows
    at half the keys took p0 from 0.07 to 0.44). Dropped, p0 falls below what the owner's own
    innocent data shows, which can only raise verdicts, an innocent suspect's included: one
    that reproduces keys the way the dropped model does would be held to a null that left
    its like out. Refused, no verdict is read from a null the owner's data contradicts: it
    can never lower an infringer's verdict, nor raise an innocent's; the owner removes the
    model or finds out why it reproduces the keys."""
    k = len(d)
    m = score.matches(d, delta_0)
    p0 = max(floor, score.p0_upper(sum(score.matches(o, delta_0) for o in others), len(others) * k, k))
    p = score.p_value(m, k, p0)
    if p < alpha:
        raise InputError(f"{name} reproduces {m} of {k} keys: against p0 {p0:.3f} of {what}, the audit would "
                         f"attribute it (p = {p:.2g} < alpha {alpha}), so it is no innocent and cannot bound the "
                         f"null; remove it or find out why", where, field)


def check_null(keyset: KeySet, delta_0: float, alpha: float, innocents: dict[str, np.ndarray] | None = None) -> None:
    """Every model p0 rests on, held to the others (hold_to_the_others): each held-out
    reference to the key set's other ones, each further innocent (a discriminator's innocent
    shadow) to the held-out references, the hash-checked core that many added models cannot
    outvote; and none may be a selection reference under another name."""
    base = calibration_distances(keyset)
    for name, d in base.items():
        hold_to_the_others(name, d, [v for n, v in base.items() if n != name], delta_0, alpha,
                           "the key set's other held-out references")
    for name, d in null_models(keyset, innocents).items():
        if name in base:
            continue
        ref = same_reference(keyset, d)
        if ref is not None:
            raise InputError(f"{name} is the key set's selection reference {ref!r} (its distances on the keys are "
                             f"the stored ones): keys were chosen for it to miss, it cannot bound the null",
                             field="innocents")
        hold_to_the_others(name, d, list(base.values()), delta_0, alpha, "the key set's held-out references")


def null_rate(keyset: KeySet, delta_0: float | None = None, innocents: dict[str, np.ndarray] | None = None) -> float:
    """p0: an upper confidence bound on how often an innocent model reproduces a key."""
    delta_0 = keyset.delta_0 if delta_0 is None else delta_0
    models = null_models(keyset, innocents)
    hits = sum(score.matches(d, delta_0) for d in models.values())
    return score.p0_upper(hits, len(models) * len(keyset), len(keyset))


def innocent_level(keyset: KeySet, delta_0: float | None = None) -> float:
    """The most keys (as a share) any innocent reference reproduces: a suspect at or below it
    looks like an innocent. Observed, not a bound: 'clean' must not swallow a suspect that
    reproduces keys no innocent reference does."""
    delta_0 = keyset.delta_0 if delta_0 is None else delta_0
    return max((score.conf(d, delta_0) for d in calibration_distances(keyset).values()), default=0.0)


@dataclass
class Auditor:
    keyset: KeySet
    alpha: float = 0.01
    delta_0: float | None = None  # default: the key set's
    p0: float | None = None  # default: estimated from the key set's reference models
    # further innocent models' distances on the keys (innocent shadows): a tighter bound on p0
    innocents: dict[str, np.ndarray] | None = None
    # default: the most keys a held-out calibration reference reproduces (innocent_level())
    innocent_level: float | None = None
    # answers less sharp than this share of the keys' depart from the protocol (audit/conformance.py)
    min_sharpness: float = DEFAULT_MIN_SHARPNESS
    # the manifest's [[innocents]] (SuspectSpecs): asked only when a suspect declares a postprocess
    innocent_models: tuple = field(default=(), repr=False)
    # a clean verdict rules out an infringer inheriting this share of the keys (audit/verdict.py)
    r_min: float = DEFAULT_R_MIN

    def __post_init__(self):
        if not 0 < self.alpha < 1:  # the manifest checks too; this guards library callers
            raise InputError(f"{self.alpha} outside (0, 1)", field="alpha")
        if self.delta_0 is not None and not 0 < self.delta_0 <= get_distance(self.keyset.distance).upper:
            raise InputError(f"{self.delta_0} outside the metric's range", field="delta_0")
        if self.delta_0 is None:
            self.delta_0 = self.keyset.delta_0
        if self.innocents:
            # a shadow whose distances are a selection reference's stored ones carries that
            # reference's bias (keys were chosen for it to miss): left out of p0, which can
            # only raise p0 and so never make an accusation easier; named in the log
            self.excluded_innocents = {n: ref for n, d in self.innocents.items()
                                       if (ref := same_reference(self.keyset, np.asarray(d, dtype=np.float64)))}
            for name, ref in self.excluded_innocents.items():
                logger.warning("%s: its distances on the keys are selection reference %r's; left out of p0", name, ref)
            self.innocents = {n: d for n, d in self.innocents.items() if n not in self.excluded_innocents}
        if self.p0 is None:  # measured on innocent models: each held to the others first
            check_null(self.keyset, self.delta_0, self.alpha, self.innocents)
            self.p0 = null_rate(self.keyset, self.delta_0, self.innocents)
        self.null_models = sorted(null_models(self.keyset, self.innocents))  # what p0 rests on
        if self.innocent_level is None:
            self.innocent_level = innocent_level(self.keyset, self.delta_0)
        if not 0 < self.r_min <= 1:
            raise InputError(f"{self.r_min} outside (0, 1]", field="r_min")
        # what an infringer can inherit: the keys the source reproduces (its r_S, measured untouched)
        self.source_rate = score.source_rate([k.r_source for k in self.keyset.keys],
                                             min(self.delta_0, self.keyset.delta_0))
        self.distance = get_distance(self.keyset.distance)
        # None: the keys were never checked against public training data, and accuse nobody
        self.public_check = self.keyset.public_check

    @cached_property
    def keyset_hash(self) -> str:
        """The key set's content hash, once: every report row names it, and hashing reads
        every key image."""
        return self.keyset.content_hash()

    def power(self):
        """What this key set can detect at this alpha (audit/power.py)."""
        from attribcheck.audit.power import power_report

        assert self.p0 is not None  # set by __post_init__
        return power_report(len(self.keyset), self.p0, self.alpha, self.source_rate, self.r_min,
                            cannot_accuse=self.keyset.cannot_accuse)

    def reconstruct(self, suspect: Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per key: the suspect's reconstruction distance and the query seed that reached it."""
        return reconstruct(suspect, self.keyset.captions, self.keyset.images, self.keyset.query_seeds,
                           self.distance)

    def measure(self, suspect: Generator) -> np.ndarray:
        return self.reconstruct(suspect)[0]

    def _rule(self, m: int, k: int) -> tuple[str, float | None, float]:
        """The reading of m of k keys before the keys' public check (attributed, clean or
        inconclusive), the innocent level it was held to (None: no innocent model was measured)
        and the bound on the suspect's inheritance rate."""
        assert self.p0 is not None  # set by __post_init__
        level = self.innocent_level if self.null_models else None
        bound = score.inheritance_upper(m, k, self.source_rate)
        return decide(m / k if k else 0.0, score.p_value(m, k, self.p0), self.alpha, level, bound, self.r_min), level, bound

    def verdict_at(self, m: int, k: int) -> str:
        """The reading m matches of k keys get: the full and the early-stopped audit's one rule.
        Before the public check: early stopping settles on the reading (the check is a fixed
        function of it), so a withheld accusation still asks until p < alpha, and the source's
        self-check and the report's p-value rest on as many queries as an accusation would."""
        return self._rule(m, k)[0]

    def score(self, name: str, distances: np.ndarray, best_seeds=None) -> Verdict:
        assert self.p0 is not None and self.delta_0 is not None  # set by __post_init__
        k = len(distances)
        m = score.matches(distances, self.delta_0)
        c = m / k if k else 0.0
        p = score.p_value(m, k, self.p0)
        reading, level, bound = self._rule(m, k)
        verdict, withheld = withhold_accusation(reading, self.keyset.cannot_accuse,
                                                f"instance level: {m}/{k} keys matched (p-value {p:.3g} < alpha {self.alpha})")
        return Verdict(name=name, verdict=verdict, conf=c, matches=m, withheld=withheld,
                       k=k, p0=self.p0, p_value=p, alpha=self.alpha, delta_0=self.delta_0,
                       strategy=self.keyset.strategy, distances=[float(x) for x in distances],
                       innocent_level=level,
                       best_seeds=[int(s) for s in best_seeds] if best_seeds is not None else [],
                       rate_bound=bound, r_min=self.r_min, source_rate=self.source_rate)

    def audit(self, suspect: Generator, name: str | None = None) -> Verdict:
        if not name:
            name = getattr(suspect, "name", "suspect")
        return self.score(name, *self.reconstruct(suspect))
