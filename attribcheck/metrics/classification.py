"""Detection metrics for the statistical level: accuracy, ROC AUC, TPR at a fixed FPR.

Functional forms hold the arithmetic; the `Metric` classes add the metadata a report needs
(range, direction). Scores are P(infringing); labels are 1 = infringing, 0 = innocent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _check(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    y, s = np.asarray(y_true).astype(int), np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and of one length")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 (innocent) or 1 (infringing)")
    return y, s


def accuracy(y_true, y_score, threshold: float = 0.5) -> float:
    y, s = _check(y_true, y_score)
    return float(np.mean((s >= threshold).astype(int) == y))


def roc_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), one point per distinct score, from (0, 0) upward."""
    y, s = _check(y_true, y_score)
    pos, neg = y.sum(), len(y) - y.sum()
    if pos == 0 or neg == 0:
        raise ValueError("ROC needs both infringing and innocent examples")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps, fps = np.cumsum(y)[last], (last + 1) - np.cumsum(y)[last]
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos], np.r_[np.inf, s[last]]


def roc_auc(y_true, y_score) -> float:
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fpr(y_true, y_score, max_fpr: float) -> float:
    """The best TPR among thresholds whose FPR does not exceed max_fpr (no interpolation:
    an operating point a user can actually pick)."""
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


@dataclass(frozen=True)
class Metric:
    name: str
    lower: float = 0.0
    upper: float = 1.0
    higher_is_better: bool = True

    def __call__(self, y_true, y_score) -> float:
        return FUNCTIONS[self.name](y_true, y_score, **self.kwargs())

    def kwargs(self) -> dict:
        return {}


@dataclass(frozen=True)
class TPRAtFPR(Metric):
    name: str = "tpr_at_fpr"
    max_fpr: float = 0.1

    def kwargs(self) -> dict:
        return {"max_fpr": self.max_fpr}


FUNCTIONS: dict[str, Callable[..., float]] = {"accuracy": accuracy, "auc": roc_auc, "tpr_at_fpr": tpr_at_fpr}
TABLE1 = {"accuracy": Metric("accuracy"), "auc": Metric("auc"),
          "tpr_at_10_fpr": TPRAtFPR(max_fpr=0.10), "tpr_at_1_fpr": TPRAtFPR(max_fpr=0.01)}
