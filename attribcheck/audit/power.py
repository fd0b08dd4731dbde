"""What a key set can detect: the binomial test's power, before any suspect is queried.

With K keys and p0's bound, a suspect is attributed only from `min_matches` matches up; a
suspect that inherits each key with probability q reaches that with probability
`power(q)`. An owner should know both before accusing anyone, or before trusting a clean run.
"""
from __future__ import annotations

from dataclasses import dataclass

from scipy import special

from attribcheck.audit.score import p_value


def min_matches(k: int, p0: float, alpha: float) -> int | None:
    """The fewest matches of K keys with p-value < alpha; None when even K/K is not enough."""
    for m in range(1, k + 1):
        if p_value(m, k, p0) < alpha:
            return m
    return None


def power(k: int, p0: float, alpha: float, inheritance: float) -> float:
    """P(attributed) for a suspect that reproduces each key with probability `inheritance`."""
    m = min_matches(k, p0, alpha)
    return 0.0 if m is None else float(special.bdtrc(m - 1, k, inheritance))


@dataclass(frozen=True)
class PowerReport:
    k: int
    p0: float
    alpha: float
    min_matches: int | None

    @property
    def min_conf(self) -> float | None:
        """The smallest conf that can be attributed at alpha."""
        return None if self.min_matches is None else self.min_matches / self.k

    def power(self, inheritance: float) -> float:
        return power(self.k, self.p0, self.alpha, inheritance)

    def summary(self) -> str:
        if self.min_matches is None:
            return (f"K={self.k}, p0={self.p0:.3f}, alpha={self.alpha}: no suspect can be attributed "
                    f"(even {self.k}/{self.k} matches has p >= alpha); more keys or a lower p0 are needed")
        table = ", ".join(f"{q:.1f}: {self.power(q):.2f}" for q in (0.1, 0.2, 0.3, 0.5, 0.7))
        return (f"K={self.k}, p0={self.p0:.3f}, alpha={self.alpha}: attributed from {self.min_matches}/{self.k} "
                f"matches (conf >= {self.min_conf:.3f}); power by per-key inheritance rate {table}")


def power_report(k: int, p0: float, alpha: float) -> PowerReport:
    return PowerReport(k, p0, alpha, min_matches(k, p0, alpha))
