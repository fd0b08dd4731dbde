"""Scoring statistics: monotonicity and agreement with direct computation."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribcheck.audit import score
from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, INCONCLUSIVE, decide


@given(k=st.integers(1, 100), p0=st.floats(0.001, 0.999), data=st.data())
def test_p_value_non_increasing_in_matches(k, p0, data):
    m = data.draw(st.integers(0, k - 1))
    assert score.p_value(m + 1, k, p0) <= score.p_value(m, k, p0) + 1e-12


@given(k=st.integers(1, 60), delta=st.floats(0.01, 0.5), data=st.data())
def test_conf_monotone_in_matches(k, delta, data):
    d = np.array(data.draw(st.lists(st.floats(0, 1), min_size=k, max_size=k)))
    i = int(np.argmax(d))
    more = d.copy()
    more[i] = 0.0  # one more key reproduced
    assert score.conf(more, delta) >= score.conf(d, delta)
    assert score.matches(d, delta) == sum(x < delta for x in d)


def test_p_value_matches_the_binomial_tail():
    k, p0 = 30, 0.05
    for m in (0, 1, 5, 10, 30):
        direct = sum(math.comb(k, j) * p0 ** j * (1 - p0) ** (k - j) for j in range(m, k + 1))
        assert score.p_value(m, k, p0) == pytest.approx(direct, rel=1e-9)


@given(trials=st.integers(1, 500), k=st.integers(1, 100), data=st.data())
def test_p0_upper_is_a_conservative_bound(trials, k, data):
    hits = data.draw(st.integers(0, trials))
    ub = score.p0_upper(hits, trials, k)
    assert ub >= hits / trials and ub >= 1 / (2 * k) and ub <= 1.0
    if hits < trials:
        assert score.p0_upper(hits + 1, trials, k) >= ub


def test_verdict_three_states():
    assert decide(conf=0.5, p_value=1e-4, alpha=0.01, innocent_level=0.05) == ATTRIBUTED
    assert decide(conf=0.0, p_value=1.0, alpha=0.01, innocent_level=0.05) == CLEAN
    assert decide(conf=0.1, p_value=0.05, alpha=0.01, innocent_level=0.05) == INCONCLUSIVE
