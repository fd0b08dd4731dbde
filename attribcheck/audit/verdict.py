"""The three-state verdict and the record that carries its evidence."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

ATTRIBUTED, INCONCLUSIVE, CLEAN = "attributed", "inconclusive", "clean"
EXPECTED_VERDICT = {"infringing": ATTRIBUTED, "innocent": CLEAN}


@dataclass
class Verdict:
    name: str
    verdict: str
    conf: float
    matches: int
    k: int
    p0: float
    p_value: float
    alpha: float
    delta_0: float
    strategy: str
    distances: list[float] = field(default_factory=list)
    innocent_level: float = 0.0  # the share of keys held-out innocent references reproduce
    best_seeds: list[int] = field(default_factory=list)  # per key, the query seed closest to it
    # why no verdict is read from these answers (audit/conformance.py); the verdict is then inconclusive
    departure: str | None = None

    def to_dict(self, with_distances: bool = True) -> dict:
        d = asdict(self)
        if not with_distances:
            d.pop("distances")
            d.pop("best_seeds")
        return d

    def evidence(self) -> str:
        return (f"conf={self.conf:.3f}, m/K={self.matches}/{self.k}, p-value={self.p_value:.3g}, "
                f"p0={self.p0:.3f}, alpha={self.alpha}, delta_0={self.delta_0}, keys={self.strategy}")

    def reason(self) -> str:
        """Why this verdict, in one sentence."""
        if self.departure:
            return self.departure
        if self.verdict == ATTRIBUTED:
            return (f"p-value {self.p_value:.3g} < alpha {self.alpha}: it reproduces more keys than an "
                    f"innocent model would by chance (p0={self.p0:.3f})")
        if self.verdict == CLEAN:
            return (f"conf {self.conf:.3f} <= {self.innocent_level:.3f}, the innocent references' level: "
                    f"it reproduces no more keys than innocent models")
        return (f"p-value {self.p_value:.3g} >= alpha {self.alpha}, but conf {self.conf:.3f} > "
                f"{self.innocent_level:.3f}, the innocent references' level")

    def summary(self) -> str:
        return (f"{self.name}: {self.verdict} (conf={self.conf:.3f}, m/K={self.matches}/{self.k}, "
                f"p={self.p_value:.3g}, p0={self.p0:.3f}, alpha={self.alpha}, "
                f"delta_0={self.delta_0}, keys={self.strategy})")


def decide(conf: float, p_value: float, alpha: float, innocent_level: float) -> str:
    """attributed when the binomial test rejects 'innocent' at alpha; clean when the suspect
    reproduces no more than innocent reference models do; inconclusive in between."""
    if p_value < alpha:
        return ATTRIBUTED
    if conf <= innocent_level:
        return CLEAN
    return INCONCLUSIVE


AS_EXPECTED, CONTRADICTION = "as-expected", "contradiction"


def outcome(verdict: str, expect: str) -> str:
    """How a verdict stands to its expectation: a contradiction (an innocent attributed, an
    infringer cleared), inconclusive, or as expected. The one rule every gate reads."""
    if verdict == (ATTRIBUTED if expect == "innocent" else CLEAN):
        return CONTRADICTION
    return INCONCLUSIVE if verdict == INCONCLUSIVE else AS_EXPECTED
