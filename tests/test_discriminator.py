"""The discriminator: scikit-learn's estimator contract, features, persistence without pickle."""
import json

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from attribcheck.errors import IntegrityError
from attribcheck.statistical.discriminator import ShadowDiscriminator
from attribcheck.statistical.features import profile_features


@parametrize_with_checks([ShadowDiscriminator(),
                          ShadowDiscriminator(classifier=RandomForestClassifier(n_estimators=5, random_state=0))],
                         expected_failed_checks=lambda est: {
                             # sorting the distances is the point (keys are exchangeable), so
                             # data whose classes live in particular columns is not separable
                             "check_classifiers_train": "order-invariant features by design"} if est.classifier is None else {})
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


def _profiles(rng, n, infringing):
    # an infringer reproduces a share of keys (small distances); an innocent rarely does
    d = rng.uniform(0.16, 0.4, size=(n, 30))
    if infringing:
        d[:, :12] = rng.uniform(0.02, 0.14, size=(n, 12))
    return rng.permuted(d, axis=1)


def test_separates_profiles_and_ignores_key_order():
    rng = np.random.default_rng(0)
    X = np.vstack([_profiles(rng, 20, True), _profiles(rng, 20, False)])
    y = np.r_[np.ones(20), np.zeros(20)].astype(int)
    est = ShadowDiscriminator().fit(X, y)
    test = np.vstack([_profiles(rng, 10, True), _profiles(rng, 10, False)])
    p = est.predict_proba(test)[:, 1]
    assert p[:10].min() > p[10:].max()
    np.testing.assert_allclose(est.predict_proba(test[:, ::-1]), est.predict_proba(test))


def test_features_layout():
    f = profile_features([[0.05, 0.3, 0.12]], bins=(0, 0.1, 0.15, 1))
    np.testing.assert_allclose(f, [[0.05, 0.12, 0.3, 1 / 3, 1 / 3, 1 / 3, (0.05 + 0.12 + 0.3) / 3, 0.05]])


def test_save_load_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(1)
    X = np.vstack([_profiles(rng, 8, True), _profiles(rng, 8, False)])
    y = np.r_[np.ones(8), np.zeros(8)].astype(int)
    for clf in (None, RandomForestClassifier(n_estimators=5, random_state=0)):
        est = ShadowDiscriminator(classifier=clf).fit(X, y)
        est.save(tmp_path / "d.json")
        assert b"\x80" not in (tmp_path / "d.json").read_bytes()  # plain JSON
        back = ShadowDiscriminator.load(tmp_path / "d.json")
        np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X))


def test_refuses_foreign_classes(tmp_path):
    X = [[0.1], [0.2], [0.3], [0.4]]
    (tmp_path / "d.json").write_text(json.dumps({"bins": [0, 1], "classifier": {"class": "os.system", "params": {}},
                                                 "X": X, "y": [1, 1, 0, 0]}))
    with pytest.raises(IntegrityError, match="classifier.class: 'os.system' is not on the allow-list"):
        ShadowDiscriminator.load(tmp_path / "d.json")
