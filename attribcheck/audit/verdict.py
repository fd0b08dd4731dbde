"""The three-state verdict and the record that carries its evidence."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Final, Literal

from attribcheck.audit.score import RATE_CONFIDENCE

ATTRIBUTED: Final = "attributed"
INCONCLUSIVE: Final = "inconclusive"
CLEAN: Final = "clean"
EXPECTED_VERDICT = {"infringing": ATTRIBUTED, "innocent": CLEAN}

# A clean verdict rules out, at RATE_CONFIDENCE, an infringer inheriting this share (or more)
# of the keys the source reproduces (manifest: [audit] r_min). 0.1 with 95%: the paper's K = 30
# keys clear a suspect that matches none of them (bound 0.095) and no fewer keys can (29 at
# least); a suspect at 1 of 30 (bound 0.149) is not cleared, nor one at 0 of 30 random keys
# the source reproduces half of (0.19): the partial world's weakest infringers read exactly so.
DEFAULT_R_MIN = 0.1


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
    # the share of keys held-out innocent references reproduce; None: no innocent model was measured
    innocent_level: float | None = 0.0
    best_seeds: list[int] = field(default_factory=list)  # per key, the query seed closest to it
    # why no verdict is read from these answers (audit/conformance.py); the verdict is then inconclusive
    departure: str | None = None
    # an upper bound (RATE_CONFIDENCE) on the share of the source's keys the suspect inherits
    # (audit/score.py: inheritance_upper); clean needs it below r_min. 1: it rules out nothing
    rate_bound: float = 1.0
    r_min: float = DEFAULT_R_MIN
    source_rate: float = 1.0  # the share of the keys the source itself reproduces
    # why a reading was withheld (then inconclusive): a clean one, because another level of the
    # audit does not clear the suspect (audit/run.py: _clean_needs_every_level); an attributed
    # one, because the keys were never checked against public data (KeySet.public_check)
    withheld: str | None = None

    def to_dict(self, with_distances: bool = True) -> dict:
        d = asdict(self)
        if not with_distances:
            d.pop("distances")
            d.pop("best_seeds")
        return d

    def evidence(self) -> str:
        return (f"conf={self.conf:.3f}, m/K={self.matches}/{self.k}, p-value={self.p_value:.3g}, "
                f"p0={self.p0:.3f}, alpha={self.alpha}, delta_0={self.delta_0}, keys={self.strategy}, "
                f"rate<{self.rate_bound:.3f}, r_min={self.r_min:g}")

    def _of_keys(self) -> str:
        if self.source_rate >= 1:
            return "of the keys"
        return f"of the keys the source reproduces ({round(self.source_rate * self.k)} of {self.k})"

    def rules_out(self) -> str:
        """What a clean verdict rules out."""
        return (f"it rules out, at {RATE_CONFIDENCE:.0%} confidence, an infringer inheriting {self.r_min:.0%} "
                f"{self._of_keys()} (its rate's upper bound {self.rate_bound:.3f} < r_min {self.r_min:g})")

    def reason(self) -> str:
        """Why this verdict, in one sentence."""
        if self.departure:
            return self.departure
        if self.withheld:
            return self.withheld
        if self.verdict == ATTRIBUTED:
            return (f"p-value {self.p_value:.3g} < alpha {self.alpha}: it reproduces more keys than an "
                    f"innocent model would by chance (p0={self.p0:.3f})")
        if self.innocent_level is None:
            return (f"no innocent model was measured on these keys (p0 {self.p0:.3f} is a fallback): "
                    f"nothing shows what an innocent model reproduces, so nothing rules an infringer out")
        if self.verdict == CLEAN:
            return (f"conf {self.conf:.3f} <= {self.innocent_level:.3f}, the innocent references' level, and "
                    f"{self.rules_out()}")
        if self.conf > self.innocent_level:
            return (f"p-value {self.p_value:.3g} >= alpha {self.alpha}, but conf {self.conf:.3f} > "
                    f"{self.innocent_level:.3f}, the innocent references' level")
        return (f"it reproduces no more keys than the innocent references ({self.innocent_level:.3f}), but it "
                f"cannot rule out an infringer inheriting {self.r_min:.0%} {self._of_keys()} with {self.k} keys "
                f"({self.matches} matched: its rate's {RATE_CONFIDENCE:.0%} upper bound is {self.rate_bound:.3f})")

    def summary(self) -> str:
        return (f"{self.name}: {self.verdict} (conf={self.conf:.3f}, m/K={self.matches}/{self.k}, "
                f"p={self.p_value:.3g}, p0={self.p0:.3f}, alpha={self.alpha}, "
                f"delta_0={self.delta_0}, keys={self.strategy}, rate<{self.rate_bound:.3f}, r_min={self.r_min:g})")


def decide(conf: float, p_value: float, alpha: float, innocent_level: float | None, rate_bound: float,
           r_min: float) -> str:
    """attributed when the binomial test rejects 'innocent' at alpha; clean only when the evidence
    rules an infringer out: the suspect reproduces no more than innocent reference models do
    (`innocent_level`; None: none was measured, and nothing is clean) *and* `rate_bound`, an
    upper bound on the share of the source's keys it inherits, lies below `r_min`; inconclusive
    otherwise (METHOD.md, instance-level attribution).

    Why relative to the source: an infringer inherits only what the source reproduces. On the
    partial world's random keys the source reproduces 15 of 30, so a suspect at 0 of 30
    inherited 0 of 15, which bounds its inheritance at 0.19, not at 0 of 30's 0.095. Why a bound on
    the suspect's own rate rather than the key set's power at r_min: the bound is what this
    suspect's matches show, it is reported with every verdict, and it needs no second level
    (power 0.8? 0.95?) beside RATE_CONFIDENCE."""
    if p_value < alpha:
        return ATTRIBUTED
    if innocent_level is not None and conf <= innocent_level and rate_bound < r_min:
        return CLEAN
    return INCONCLUSIVE


def withhold_accusation(verdict: str, cannot_accuse: str | None, evidence: str) -> tuple[str, str | None]:
    """(verdict, why it was withheld): an attributed reading from keys that may accuse no one
    (KeySet.cannot_accuse) is inconclusive, with the evidence and the reason; any other
    reading stands. Both levels apply it (Auditor.score, StatisticalAuditor.verdict)."""
    if verdict == ATTRIBUTED and cannot_accuse:
        return INCONCLUSIVE, f"{evidence}, but {cannot_accuse}"
    return verdict, None


def reproduces_own_keys(v: Verdict) -> bool:
    """The source's self-check: attributed to its own keys, or it would be but for keys that
    may accuse no one (KeySet.public_check): the source is no suspect, and what the check asks is
    whether it still reproduces its keys under the protocol."""
    p, alpha = getattr(v, "p_value", None), getattr(v, "alpha", None)  # a statistical verdict has neither
    return v.verdict == ATTRIBUTED or (v.departure is None and p is not None and alpha is not None and p < alpha)


AS_EXPECTED: Final = "as-expected"
CONTRADICTION: Final = "contradiction"


Outcome = Literal["as-expected", "contradiction", "inconclusive"]


def outcome(verdict: str, expect: str) -> Outcome:
    """How a verdict stands to its expectation: a contradiction (an innocent attributed, an
    infringer cleared), inconclusive, or as expected. The one rule every gate reads."""
    if verdict == (ATTRIBUTED if expect == "innocent" else CLEAN):
        return CONTRADICTION
    return INCONCLUSIVE if verdict == INCONCLUSIVE else AS_EXPECTED
