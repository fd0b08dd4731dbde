"""What a key set can detect: the binomial test's power, before any suspect is queried.

With K keys and p0's bound, a suspect is attributed only from `min_matches` matches up; a
suspect that inherits each key with probability q reaches that with probability
`power(q)`. An owner should know both before accusing anyone, or before trusting a clean run.

The other side: a clean verdict needs the suspect's inheritance bound below r_min
(audit/verdict.py), so a key set clears at most `max_clean_matches` matches, and at best (no
match) rules out an infringer inheriting `min_rate_cleared` of the keys.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from attribcheck.audit.score import RATE_CONFIDENCE, inheritance_upper, p0_upper, p_value
from attribcheck.audit.verdict import DEFAULT_R_MIN


# how many more innocent models `keys power` prices (a few cheap shadows' worth)
MORE_INNOCENTS = 5


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


def max_clean_matches(k: int, source_rate: float, r_min: float) -> int | None:
    """The most matches of K keys whose inheritance bound lies below r_min; None: even 0 is not."""
    best = None
    for m in range(k + 1):
        if inheritance_upper(m, k, source_rate) >= r_min:
            break
        best = m
    return best


@dataclass(frozen=True)
class PowerReport:
    k: int
    p0: float
    alpha: float
    min_matches: int | None
    source_rate: float = 1.0  # the share of the keys the source reproduces
    r_min: float = DEFAULT_R_MIN
    # what p0's bound rests on (keys reproduced, innocent models measured); None: p0 was given
    null_hits: int | None = None
    null_models: int = 0
    # why these keys accuse no one whatever they match (KeySet.public_check absent); None: they may
    cannot_accuse: str | None = None

    def with_more_innocents(self, extra: int) -> tuple[float, int | None]:
        """p0's bound and the fewest attributed matches if `extra` more innocent models were
        measured and reproduced none of the keys (the best they can do: each adds K trials)."""
        p0 = p0_upper(self.null_hits or 0, (self.null_models + extra) * self.k, self.k)
        return p0, min_matches(self.k, p0, self.alpha)

    def more_innocents(self, extra: int = MORE_INNOCENTS) -> str:
        """What `extra` more innocent models (e.g. cheap shadows) would buy, in one sentence."""
        p0, m = self.with_more_innocents(extra)
        if p0 >= self.p0:  # the 1/(2K) floor already binds: more innocents cannot lower p0
            return f"more innocent models cannot lower p0 below its floor 1/(2K) = {p0:.3f}: more keys can"
        head = (f"with {extra} more innocent models that reproduce none of the keys, p0's bound falls from "
                f"{self.p0:.3f} to {p0:.3f}")
        if m == self.min_matches:
            return head + (", and attribution still needs " + (f"{m}/{self.k}" if m else "more keys"))
        now = "nothing" if self.min_matches is None else f"{self.min_matches}/{self.k}"
        return head + f" and {'nothing' if m is None else f'{m}/{self.k}'} is attributed (now {now})"

    @property
    def min_rate_cleared(self) -> float:
        """The smallest inheritance rate a clean verdict on these keys can rule out (no match)."""
        return inheritance_upper(0, self.k, self.source_rate)

    @property
    def max_clean_matches(self) -> int | None:
        return max_clean_matches(self.k, self.source_rate, self.r_min)

    def keys_to_clear(self) -> int | None:
        """The fewest keys (with this source share) on which no match clears: the bound on 0 of K,
        1 - (1 - confidence)^(1/K), lies below r_min x source_rate from there on."""
        target = self.r_min * self.source_rate
        if not 0 < target < 1:
            return None
        return math.floor(math.log(1 - RATE_CONFIDENCE) / math.log(1 - target)) + 1

    def clears(self) -> str:
        """What a clean verdict on these keys can rule out, in one sentence."""
        of = "of the keys" if self.source_rate >= 1 else f"of the keys the source reproduces ({self.source_rate:.0%})"
        smallest = f"the smallest rate it can clear is {self.min_rate_cleared:.3f} at {RATE_CONFIDENCE:.0%} confidence"
        if self.max_clean_matches is None:
            need = self.keys_to_clear()
            return (f"no suspect can be clean: with {self.k} keys it cannot rule out an infringer inheriting "
                    f"{self.r_min:.0%} {of} ({smallest})" + (f"; {need} keys at least are needed" if need else ""))
        return (f"clean from at most {self.max_clean_matches}/{self.k} matches (and no more than the innocents), "
                f"ruling out an infringer inheriting {self.r_min:.0%} {of} ({smallest})")

    @property
    def min_conf(self) -> float | None:
        """The smallest conf that can be attributed at alpha."""
        return None if self.min_matches is None or self.cannot_accuse else self.min_matches / self.k

    def power(self, inheritance: float) -> float:
        return power(self.k, self.p0, self.alpha, inheritance)

    def summary(self) -> str:
        more = "" if self.null_hits is None else f"; {self.more_innocents()}"
        if self.cannot_accuse:
            return (f"K={self.k}, p0={self.p0:.3f}, alpha={self.alpha}: no suspect can be attributed: "
                    f"{self.cannot_accuse}; {self.clears()}")
        if self.min_matches is None:
            return (f"K={self.k}, p0={self.p0:.3f}, alpha={self.alpha}: no suspect can be attributed "
                    f"(even {self.k}/{self.k} matches has p >= alpha); more keys or a lower p0 are needed; "
                    f"{self.clears()}{more}")
        table = ", ".join(f"{q:.1f}: {self.power(q):.2f}" for q in (0.1, 0.2, 0.3, 0.5, 0.7))
        return (f"K={self.k}, p0={self.p0:.3f}, alpha={self.alpha}: attributed from {self.min_matches}/{self.k} "
                f"matches (conf >= {self.min_conf:.3f}); power by per-key inheritance rate {table}; "
                f"{self.clears()}{more}")


def power_report(k: int, p0: float, alpha: float, source_rate: float = 1.0, r_min: float = DEFAULT_R_MIN,
                 null_hits: int | None = None, null_models: int = 0, cannot_accuse: str | None = None) -> PowerReport:
    return PowerReport(k, p0, alpha, min_matches(k, p0, alpha), source_rate, r_min, null_hits, null_models,
                       cannot_accuse)
