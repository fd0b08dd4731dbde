"""The statistical-level verdict: the discriminator's P(infringing) for a suspect's profile."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, INCONCLUSIVE
from attribcheck.errors import InputError


@dataclass
class StatisticalVerdict:
    name: str
    verdict: str
    p_infringing: float
    threshold: float  # attributed at >= threshold, clean at <= 1 - threshold
    cv_accuracy: float  # the discriminator's leave-one-out accuracy on its own shadows
    min_cv_accuracy: float
    shadows: int
    k: int
    strategy: str
    departure: str | None = None  # why no verdict is read from the suspect's answers (then inconclusive)
    # held out in turn, infringing shadows it called innocent / innocent shadows it called infringing
    missed_infringing: int = 0
    missed_innocent: int = 0
    withheld: str | None = None  # why an accusation was withheld (then inconclusive)

    def to_dict(self) -> dict:
        return asdict(self)

    def evidence(self) -> str:
        return (f"P(infringing)={self.p_infringing:.3f}, threshold={self.threshold}, "
                f"shadow leave-one-out accuracy={self.cv_accuracy:.2f} ({self.shadows} shadows), "
                f"K={self.k}, keys={self.strategy}")

    def reason(self) -> str:
        if self.departure:
            return self.departure
        if self.withheld:
            return self.withheld
        if self.cv_accuracy < self.min_cv_accuracy:
            return (f"the discriminator tells its own shadows apart only {self.cv_accuracy:.2f} of the time "
                    f"(< {self.min_cv_accuracy}): it cannot support a verdict")
        if self.verdict == ATTRIBUTED:
            return f"the discriminator gives P(infringing) {self.p_infringing:.3f} >= {self.threshold}"
        if self.p_infringing <= 1 - self.threshold and self.missed_infringing:
            return (f"the discriminator gives P(infringing) {self.p_infringing:.3f}, but held out it called "
                    f"{self.missed_infringing} of its infringing shadows innocent: it does not clear anyone")
        if self.p_infringing >= self.threshold and self.missed_innocent:
            return (f"the discriminator gives P(infringing) {self.p_infringing:.3f}, but held out it called "
                    f"{self.missed_innocent} of its innocent shadows infringing: it accuses no one")
        if self.verdict == CLEAN:
            return f"the discriminator gives P(infringing) {self.p_infringing:.3f} <= {1 - self.threshold:.3g}"
        return (f"the discriminator's P(infringing) {self.p_infringing:.3f} lies between "
                f"{1 - self.threshold:.3g} and {self.threshold}")

    def summary(self) -> str:
        return f"{self.name}: {self.verdict} (statistical; {self.evidence()})"


def decide_statistical(p_infringing: float, threshold: float, cv_accuracy: float, min_cv_accuracy: float,
                       missed_infringing: int = 0, missed_innocent: int = 0) -> str:
    """attributed at P >= threshold, clean at P <= 1 - threshold, each only on a side where the
    discriminator, holding out each shadow in turn, never got one wrong: one that has called
    an infringing shadow innocent may be wrong the same way about a weak infringer, so it does
    not clear (and symmetrically does not accuse); inconclusive otherwise, and always when its
    leave-one-out accuracy is under min_cv_accuracy."""
    if not 0.5 < threshold <= 1:  # false for NaN too
        raise InputError(f"{threshold!r} outside (0.5, 1]", "statistical verdict", "threshold")
    for name, value in (("p_infringing", p_infringing), ("cv_accuracy", cv_accuracy)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
            raise InputError(f"{value!r} is not a probability", "statistical verdict", name)
    if cv_accuracy < min_cv_accuracy:
        return INCONCLUSIVE
    if p_infringing >= threshold and not missed_innocent:
        return ATTRIBUTED
    if p_infringing <= 1 - threshold and not missed_infringing:
        return CLEAN
    return INCONCLUSIVE
