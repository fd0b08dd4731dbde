"""Instance-level scoring: matches, conf, the null rate p0 and the binomial p-value.

Pure functions on numbers, so the statistics are testable without any model.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def matches(distances: np.ndarray, delta_0: float) -> int:
    """How many keys the model reproduces: r(k) < delta_0 (strict, as in METHOD.md)."""
    return int(np.sum(np.asarray(distances) < delta_0))


def conf(distances: np.ndarray, delta_0: float) -> float:
    """The paper's conf: the share of key samples reproduced. Range [0, 1], higher = more evidence."""
    d = np.asarray(distances)
    return matches(d, delta_0) / len(d) if len(d) else 0.0


def p_value(m: int, k: int, p0: float) -> float:
    """P[Binomial(k, p0) >= m]: how often an innocent model reproduces m or more keys by chance."""
    if m <= 0:
        return 1.0
    return float(stats.binom.sf(m - 1, k, p0))


def p0_upper(hits: int, trials: int, k: int, level: float = 0.95) -> float:
    """A one-sided Clopper-Pearson upper bound on the innocent reproduction rate, floored at 1/(2K).

    The bound, not the point estimate: a handful of reference models cannot show the rate is
    zero, and an underestimated p0 would accuse innocents.
    """
    if trials <= 0:
        return 0.5
    if hits >= trials:
        upper = 1.0
    else:
        upper = float(stats.beta.ppf(level, hits + 1, trials - hits))
    return max(upper, 1.0 / (2 * k))
