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
    rule = dict(alpha=0.01, innocent_level=0.05, r_min=0.1)
    assert decide(conf=0.5, p_value=1e-4, rate_bound=0.9, **rule) == ATTRIBUTED
    assert decide(conf=0.0, p_value=1.0, rate_bound=0.095, **rule) == CLEAN
    assert decide(conf=0.1, p_value=0.05, rate_bound=0.3, **rule) == INCONCLUSIVE
    assert decide(conf=0.0, p_value=1.0, rate_bound=0.22, **rule) == INCONCLUSIVE  # 12 keys rule out too little


@given(st.integers(1, 200), st.data())
def test_rate_upper_is_a_monotone_bound(k, data):
    m = data.draw(st.integers(0, k))
    ub = score.rate_upper(m, k)
    assert m / k <= ub <= 1.0
    if m < k:
        assert score.rate_upper(m + 1, k) >= ub and score.rate_upper(m, k, 0.99) >= ub
    # the bound is one-sided at 95%: a true rate at the bound shows m or fewer matches 5% of the time
    if 0 < ub < 1:
        assert float(np.sum([math.comb(k, i) * ub ** i * (1 - ub) ** (k - i) for i in range(m + 1)])) == \
            pytest.approx(1 - score.RATE_CONFIDENCE, abs=1e-6)


def test_inheritance_is_relative_to_what_the_source_reproduces():
    assert score.inheritance_upper(0, 30, 1.0) == pytest.approx(0.0950, abs=1e-4)
    assert score.inheritance_upper(0, 30, 0.5) == pytest.approx(2 * score.rate_upper(0, 30))
    assert score.inheritance_upper(0, 30, 0.0) == 1.0 and score.inheritance_upper(30, 30, 0.5) == 1.0
    assert score.source_rate([0.05, 0.4, 0.1, 0.3], 0.15) == 0.5
