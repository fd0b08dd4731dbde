"""Assertions for audit tests: every failure message carries the whole evidence.

The rule for expectations: a test fails when the verdict *contradicts* the expectation
(an `innocent` suspect attributed; an `infringing` suspect cleared as clean). An
`inconclusive` verdict means the evidence cannot support either answer; it passes with an
`AttributionWarning` that carries the evidence, or fails under `strict=True`
(`pytest --attrib-strict`), for gates that must reach a decision.
"""
from __future__ import annotations

import warnings

from attribcheck.audit.verdict import (CONTRADICTION, EXPECTED_VERDICT, INCONCLUSIVE, reproduces_own_keys,
                                       outcome)


class AttributionWarning(UserWarning):
    """An audit outcome that passes but deserves a look (an inconclusive innocent)."""


def assert_expected(verdict, expect: str, strict: bool = False) -> None:
    """Fail when `verdict` (instance-level or statistical) contradicts the expectation `infringing` or `innocent`
    (and, with `strict`, when it is inconclusive)."""
    if expect not in EXPECTED_VERDICT:
        raise ValueError(f"expect must be one of {sorted(EXPECTED_VERDICT)}, not {expect!r}")
    if outcome(verdict.verdict, expect) == CONTRADICTION or (strict and verdict.verdict == INCONCLUSIVE):
        raise AssertionError(
            f"{verdict.name}: expected {expect} (verdict {EXPECTED_VERDICT[expect]}), found "
            f"{verdict.verdict}: {verdict.reason()} [{verdict.evidence()}]")
    if verdict.verdict == INCONCLUSIVE:
        warnings.warn(AttributionWarning(
            f"{verdict.name}: expected {expect}, found inconclusive (no contradiction, so it passes): "
            f"{verdict.reason()} [{verdict.evidence()}]"), stacklevel=2)


def assert_source_reproduces(verdict, reselect_below: float | None = None) -> None:
    """The self-check: the source must be attributed to its own key set. With `reselect_below`
    (a share of the keys), a source still attributed but reproducing fewer of its keys warns
    that the key set should be re-selected from this checkpoint."""
    if not reproduces_own_keys(verdict):
        raise AssertionError(
            f"the source is not attributed to its own keys (found {verdict.verdict}: {verdict.reason()}); "
            f"the key set is stale, or the source checkpoint or sampler changed [{verdict.evidence()}]")
    if reselect_below is not None and verdict.conf < reselect_below:
        warnings.warn(AttributionWarning(
            f"the source reproduces {verdict.matches} of {verdict.k} keys ({verdict.conf:.0%} < {reselect_below:.0%}): "
            f"re-select the key set from this checkpoint (attribcheck keys select), then re-record the "
            f"baselines [{verdict.evidence()}]"), stacklevel=2)
