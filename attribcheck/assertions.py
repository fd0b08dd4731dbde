"""Assertions for audit tests: every failure message carries the whole evidence.

The rule for expectations: a test fails when the verdict *contradicts* the expectation
(an `innocent` suspect attributed; an `infringing` suspect cleared as clean). An
`inconclusive` verdict means the evidence cannot support either answer; it passes with an
`AttributionWarning` that carries the evidence, or fails under `strict=True`
(`pytest --attrib-strict`), for gates that must reach a decision.
"""
from __future__ import annotations

import warnings

from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, EXPECTED_VERDICT, INCONCLUSIVE, Verdict


class AttributionWarning(UserWarning):
    """An audit outcome that passes but deserves a look (an inconclusive innocent)."""


def evidence(v: Verdict) -> str:
    return (f"conf={v.conf:.3f}, m/K={v.matches}/{v.k}, p-value={v.p_value:.3g}, p0={v.p0:.3f}, "
            f"alpha={v.alpha}, delta_0={v.delta_0}, keys={v.strategy}")


def _why(v: Verdict) -> str:
    if v.verdict == ATTRIBUTED:
        return (f"p-value {v.p_value:.3g} < alpha {v.alpha}: it reproduces more keys than an innocent "
                f"model would by chance (p0={v.p0:.3f})")
    if v.verdict == CLEAN:
        return (f"conf {v.conf:.3f} <= {v.innocent_level:.3f}, the innocent references' level: it reproduces "
                f"no more keys than innocent models")
    return (f"p-value {v.p_value:.3g} >= alpha {v.alpha}, but conf {v.conf:.3f} > {v.innocent_level:.3f}, "
            f"the innocent references' level")


def assert_expected(verdict: Verdict, expect: str, strict: bool = False) -> None:
    """Fail when `verdict` contradicts the expectation `infringing` or `innocent`
    (and, with `strict`, when it is inconclusive)."""
    if expect not in EXPECTED_VERDICT:
        raise ValueError(f"expect must be one of {sorted(EXPECTED_VERDICT)}, not {expect!r}")
    contradiction = ATTRIBUTED if expect == "innocent" else CLEAN
    if verdict.verdict == contradiction or (strict and verdict.verdict == INCONCLUSIVE):
        raise AssertionError(
            f"{verdict.name}: expected {expect} (verdict {EXPECTED_VERDICT[expect]}), found "
            f"{verdict.verdict}: {_why(verdict)} [{evidence(verdict)}]")
    if verdict.verdict == INCONCLUSIVE:
        warnings.warn(AttributionWarning(
            f"{verdict.name}: expected {expect}, found inconclusive (no contradiction, so it passes): "
            f"{_why(verdict)} [{evidence(verdict)}]"), stacklevel=2)


def assert_source_reproduces(verdict: Verdict) -> None:
    """The self-check: the source must be attributed to its own key set."""
    if verdict.verdict != ATTRIBUTED:
        raise AssertionError(
            f"the source is not attributed to its own keys (found {verdict.verdict}: {_why(verdict)}); "
            f"the key set is stale, or the source checkpoint or sampler changed [{evidence(verdict)}]")
