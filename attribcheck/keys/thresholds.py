"""How a key set's thresholds are chosen: the paper's fixed values, or calibrated per source
and metric from what the reference models do on the same candidates.

Calibrated (the default): `delta_0` is the `innocent_rate` quantile of the selection
references' reconstruction distances over all candidates, so that at delta_0 reference
models "reproduce" at most that share of candidates; a fixed 0.15 means something else on
every metric and image domain (small emoji on white sit 0.05-0.25 apart whatever they show).
Strategy 2's agreement rule is calibrated against the references too: how often two of a
reference's generations for one prompt coincide within delta_0 (over all candidates; a 95%
upper bound) is the base rate b; a prompt counts as memorized when so many of the source's n generations coincide
with their medoid that P[Binomial(n - 1, b) >= that many] < `agreement_level`. A source that
reproduces a training image with four seeds in sixteen is found; one whose prompts merely look
alike, as every model's do, is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

PAPER_DELTA_0 = 0.15  # the paper's fixed threshold (SD-scale models, RMS on 512px)


@dataclass(frozen=True)
class Thresholds:
    mode: Literal["calibrated", "fixed"] = "calibrated"
    delta_0: float = PAPER_DELTA_0  # used as is in fixed mode
    innocent_rate: float = 0.05  # calibrated: share of candidates references reproduce at delta_0
    agreement: float = 0.5  # fixed mode: share of the n generations within delta_0 of their medoid
    agreement_level: float = 0.05  # calibrated: how unlikely the agreement must be for a reference

    def __post_init__(self):
        if self.mode not in ("calibrated", "fixed"):
            raise ValueError(f"thresholds mode {self.mode!r}: calibrated or fixed")
        if not 0 < self.innocent_rate < 0.5:
            raise ValueError(f"innocent_rate {self.innocent_rate} outside (0, 0.5)")
        if not 0 < self.delta_0 <= 1 or not 0 < self.agreement <= 1 or not 0 < self.agreement_level < 1:
            raise ValueError("delta_0 and agreement must lie in (0, 1], agreement_level in (0, 1)")

    def choose_delta_0(self, reference_distances: np.ndarray) -> float:
        """delta_0 for this source: fixed, or the innocent_rate quantile of what the references do."""
        if self.mode == "fixed":
            return self.delta_0
        d = np.asarray(reference_distances, dtype=np.float64).ravel()
        if not d.size:
            from attribcheck.errors import InputError

            raise InputError("calibrating delta_0 needs reference models; pass --reference, or fixed thresholds",
                             "keys select", "--reference")
        return float(np.quantile(d, self.innocent_rate, method="lower"))

    def memorized(self, agreeing: np.ndarray, n: int, base_rate: float | None) -> np.ndarray:
        """Which candidates Strategy 2 treats as memorized, from how many of the source's other
        n - 1 generations lie within delta_0 of the medoid, and the references' base rate."""
        agreeing = np.asarray(agreeing)
        if self.mode == "fixed":  # the paper: m of n (the medoid included) within delta_0
            return agreeing + 1 >= self.agreement * n
        assert base_rate is not None, "the calibrated mode needs the references' base rate"
        p = np.where(agreeing >= 1, special.bdtrc(np.maximum(agreeing - 1, 0), n - 1, min(base_rate, 1.0)), 1.0)
        return (agreeing >= 1) & (p < self.agreement_level)

    def record(self, delta_0: float) -> dict:
        if self.mode == "fixed":
            return {"mode": "fixed", "delta_0": delta_0, "agreement": self.agreement}
        return {"mode": "calibrated", "delta_0": delta_0, "innocent_rate": self.innocent_rate,
                "agreement_level": self.agreement_level}
