"""Detection metrics against scikit-learn's reference implementations."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from attribcheck.metrics.classification import TABLE1, accuracy, roc_auc, roc_curve, tpr_at_fpr

labelled = st.integers(2, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda y: 0 < sum(y) < len(y)),
    st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.7, 0.9, 1.0]) | st.floats(0, 1), min_size=n, max_size=n)))


@given(labelled)
def test_auc_and_roc_match_sklearn(data):
    y, s = map(np.array, data)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    fpr, tpr, _ = roc_curve(y, s)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


@given(labelled, st.sampled_from([0.0, 0.01, 0.1, 0.5]))
def test_tpr_at_fpr_matches_the_sklearn_curve(data, max_fpr):
    y, s = map(np.array, data)
    sk_fpr, sk_tpr, _ = sk_roc_curve(y, s, drop_intermediate=False)
    assert tpr_at_fpr(y, s, max_fpr) == pytest.approx(sk_tpr[sk_fpr <= max_fpr].max())


@given(labelled)
def test_accuracy_matches_sklearn(data):
    y, s = map(np.array, data)
    assert accuracy(y, s) == pytest.approx(accuracy_score(y, (s >= 0.5).astype(int)))


def test_metrics_declare_range_and_direction():
    for m in TABLE1.values():
        assert (m.lower, m.upper, m.higher_is_better) == (0.0, 1.0, True)
    assert TABLE1["tpr_at_1_fpr"]([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    with pytest.raises(ValueError, match="both"):
        roc_auc([1, 1], [0.2, 0.3])
