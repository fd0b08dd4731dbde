"""Instance-level scoring: matches, conf, the null rate p0 and the binomial p-value.

Pure functions on numbers, so the statistics are testable without any model.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special  # not scipy.stats: it costs seconds at start-up, every run

from attribcheck.errors import InputError

# Every function checks what it is given (the manifest layer validates too; this is defence in
# depth for library users): a NaN distance is no miss, and alpha = 1.5 attributes anyone.


def _number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x)


def check_alpha(alpha: float) -> float:
    """The test's level: in (0, 1). alpha >= 1 would attribute a suspect with no matches at all."""
    if not (_number(alpha) and 0 < alpha < 1):
        raise InputError(f"{alpha!r} outside (0, 1)", "score", "alpha")
    return alpha


def check_p0(p0: float) -> float:
    """The null reproduction rate: in (0, 1]."""
    if not (_number(p0) and 0 < p0 <= 1):
        raise InputError(f"{p0!r} outside (0, 1]", "score", "p0")
    return p0


def check_delta_0(delta_0: float) -> float:
    if not (_number(delta_0) and delta_0 > 0):
        raise InputError(f"{delta_0!r} is not a positive finite threshold", "score", "delta_0")
    return delta_0


def check_distances(distances) -> np.ndarray:
    """Reconstruction distances: a 1-D array of finite values >= 0, never silently counted."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1:
        raise InputError(f"expected one distance per key, got shape {d.shape}", "score", "distances")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        bad = int(np.sum(~np.isfinite(d) | (d < 0)))
        raise InputError(f"{bad} of {len(d)} are not finite values >= 0", "score", "distances")
    return d


def matches(distances: np.ndarray, delta_0: float) -> int:
    """How many keys the model reproduces: r(k) < delta_0 (strict, as in METHOD.md)."""
    return int(np.sum(check_distances(distances) < check_delta_0(delta_0)))


def conf(distances: np.ndarray, delta_0: float) -> float:
    """The paper's conf: the share of key samples reproduced. Range [0, 1], higher = more evidence."""
    d = check_distances(distances)
    m = matches(d, delta_0)  # checks delta_0 even when there are no keys
    return m / len(d) if len(d) else 0.0


def p_value(m: int, k: int, p0: float) -> float:
    """P[Binomial(k, p0) >= m]: how often an innocent model reproduces m or more keys by chance."""
    check_p0(p0)
    if not (0 <= m <= k):
        raise InputError(f"{m} matches out of {k} keys", "score", "matches")
    if m <= 0:
        return 1.0
    return float(special.bdtrc(m - 1, k, p0))  # P[Binomial(k, p0) > m - 1]


def p0_upper(hits: int, trials: int, k: int, level: float = 0.95) -> float:
    """A one-sided Clopper-Pearson upper bound on the innocent reproduction rate, floored at 1/(2K).

    The bound, not the point estimate: a handful of reference models cannot show the rate is
    zero, and an underestimated p0 would accuse innocents.
    """
    if not (0 <= hits <= max(trials, 0)) or k < 1 or not 0 < level < 1:
        raise InputError(f"hits={hits}, trials={trials}, k={k}, level={level}", "score", "p0")
    if trials <= 0:
        return 0.5
    return max(rate_upper(hits, trials, level), 1.0 / (2 * k))


# The confidence of the bound a clean verdict rests on: a clean verdict lets an infringer at
# the stated rate through at most 5% of the time.
RATE_CONFIDENCE = 0.95


def rate_upper(m: int, k: int, confidence: float = RATE_CONFIDENCE) -> float:
    """A one-sided Clopper-Pearson upper bound on a per-key rate seen as m of k: the rate lies
    below it with probability `confidence` (0 of 30 keys: 0.095; 0 of 12: 0.221)."""
    if not (0 <= m <= k) or k < 1 or not 0 < confidence < 1:
        raise InputError(f"m={m}, k={k}, confidence={confidence}", "score", "rate")
    return 1.0 if m >= k else float(special.betaincinv(m + 1, k - m, confidence))


def source_rate(r_source, delta_0: float) -> float:
    """The share of the keys the source itself reproduces (its r_S below delta_0): what an
    infringer can inherit at most. 1 for keys selected by Strategy 1 or 2; about 0.5 for
    random keys on the partial world, whose source memorised half of them."""
    d = check_distances(r_source)
    return matches(d, delta_0) / len(d) if len(d) else 0.0


def inheritance_upper(m: int, k: int, source: float) -> float:
    """The upper bound on the share of the source's reproducible keys the suspect inherits:
    rate_upper(m, k) / source, at most 1 (1 when the source reproduces none)."""
    if k < 1 or source <= 0:  # no keys, or none the source reproduces: nothing is ruled out
        return 1.0
    return min(1.0, rate_upper(m, k) / source)
