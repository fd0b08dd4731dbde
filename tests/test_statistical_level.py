"""The statistical level: verdict rules, the discriminator bound to its key set, and the
plugin's statistical test end to end (pytester, over the plugin tests' world)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attribcheck.audit.reconstruct import reconstruction_distances
from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, INCONCLUSIVE
from attribcheck.errors import InputError, IntegrityError
from attribcheck.keys.keyset import KeySet
from attribcheck.metrics.distance import get_distance
from attribcheck.statistical.discriminator import ShadowDiscriminator
from attribcheck.statistical.fit import FILENAME, StatisticalAuditor, fit_profiles
from attribcheck.statistical.verdict import decide_statistical
from tests.folder_world import HONEST, MapGenerator, manifest_text

pytest_plugins = ["pytester"]
STAT_SUITE = (Path(__file__).resolve().parents[1] / "suites" / "test_statistical.py").read_text()
INSTANCE_SUITE = (Path(__file__).resolve().parents[1] / "suites" / "test_instance.py").read_text()


@pytest.mark.parametrize("p, cv, expected", [(0.95, 1.0, ATTRIBUTED), (0.05, 1.0, CLEAN), (0.5, 1.0, INCONCLUSIVE),
                                             (0.99, 0.6, INCONCLUSIVE), (0.01, 0.6, INCONCLUSIVE)])
def test_decide_statistical(p, cv, expected):
    assert decide_statistical(p, 0.9, cv, 0.8) == expected


@pytest.mark.parametrize("p, missed, expected", [(0.05, (1, 0), INCONCLUSIVE), (0.95, (1, 0), ATTRIBUTED),
                                                 (0.95, (0, 1), INCONCLUSIVE), (0.05, (0, 1), CLEAN),
                                                 (0.5, (0, 0), INCONCLUSIVE)])
def test_a_side_the_discriminator_got_wrong_held_out_is_not_claimed(p, missed, expected):
    assert decide_statistical(p, 0.9, 0.95, 0.8, *missed) == expected


def test_held_out_misses_count_each_side():
    """Two clusters and one infringing shadow inside the innocent one: held out, it is called
    innocent (one miss on the infringing side), and no innocent is called infringing."""
    rng = np.random.default_rng(0)
    inn = rng.uniform(0.3, 0.4, (16, 12))
    inf = rng.uniform(0.02, 0.12, (6, 12))
    weak = rng.uniform(0.3, 0.4, (1, 12))
    est = ShadowDiscriminator().fit(np.vstack([inn, inf, weak]), np.array([0] * 16 + [1] * 7))
    assert est.held_out_misses() == (1, 0)
    from attribcheck.statistical.verdict import StatisticalVerdict

    p = float(est.predict_proba(rng.uniform(0.3, 0.4, (1, 12)))[0, 1])
    v = StatisticalVerdict("s", decide_statistical(p, 0.9, est.guard_accuracy(), 0.8, *est.held_out_misses()), p,
                           0.9, est.guard_accuracy(), 0.8, 23, 12, "detection", missed_infringing=1)
    assert p <= 0.1 and v.verdict == INCONCLUSIVE and "does not clear anyone" in v.reason()


def test_decide_rejects_a_threshold_at_or_below_half():
    with pytest.raises(InputError):
        decide_statistical(0.7, 0.5, 1.0, 0.8)


def shadow_profiles(keyset: KeySet, world, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Shadows as caption->image maps: infringing ones copy 6..20 of the keys, innocent ones
    at most one (by chance, as real innocents do); profiles measured like any suspect's."""
    from attribcheck.models.folder_generator import FolderGenerator

    other = FolderGenerator(world["innocent"], "innocent")
    other_imgs = {c: other.generate([c], [keyset.query_seeds[0]])[0] for c in keyset.captions}
    dist = get_distance(keyset.distance)
    X, y = [], []
    for i in range(n):
        rng = np.random.default_rng(i)
        copied = set(rng.choice(len(keyset), 6 + 14 * i // n, replace=False))
        inf = {c: (k.image if j in copied else other_imgs[c]) for j, (c, k) in enumerate(zip(keyset.captions, keyset.keys))}
        lucky = set(rng.choice(len(keyset), i % 2, replace=False))
        inn = {c: (k.image if j in lucky else other_imgs[c]) for j, (c, k) in enumerate(zip(keyset.captions, keyset.keys))}
        for table, label in ((inf, 1), (inn, 0)):
            gen = MapGenerator(table, 0.02 + 0.01 * i)
            X.append(reconstruction_distances(gen, keyset.captions, keyset.images, keyset.query_seeds, dist))
            y.append(label)
    return np.array(X), np.array(y)


@pytest.fixture
def fitted(world, tmp_path):  # noqa: F811
    keyset = KeySet.load(world["keys"])
    X, y = shadow_profiles(keyset, world)
    keys = tmp_path / "keys"
    keyset.save(keys)
    est = fit_profiles(keyset, X, y, [f"s{i}" for i in range(len(y))], path=keys / FILENAME)
    return keys, keyset, est


def test_discriminator_is_saved_with_its_key_set(fitted):
    keys, keyset, est = fitted
    data = json.loads((keys / FILENAME).read_text())
    assert data["metadata"]["keyset_hash"] == keyset.content_hash()
    assert data["metadata"]["cv_accuracy"] == est.metadata_["cv_accuracy"]
    aud = StatisticalAuditor.for_keyset(keys, keyset)
    assert np.allclose(aud.discriminator.predict_proba(est.X_fit_), est.predict_proba(est.X_fit_))
    # another key set (one key fewer) must not load this discriminator
    with pytest.raises(IntegrityError, match="another key set"):
        StatisticalAuditor.for_keyset(keys, keyset.head(len(keyset) - 1))


def test_statistical_auditor_verdicts(fitted):
    _, keyset, est = fitted
    # built by hand it knows no key set's public check, and accuses no one until told it may
    unchecked = StatisticalAuditor(est, keyset.strategy).verdict("copy", np.zeros(len(keyset)) + 0.01)
    assert unchecked.verdict == INCONCLUSIVE and "public training data" in unchecked.reason()
    aud = StatisticalAuditor(est, keyset.strategy, cannot_accuse=None)
    copy = aud.verdict("copy", np.zeros(len(keyset)) + 0.01)
    far = aud.verdict("far", np.zeros(len(keyset)) + 0.4)
    assert copy.verdict == ATTRIBUTED and copy.p_infringing >= 0.9
    assert far.verdict == CLEAN and far.p_infringing <= 0.1
    assert "P(infringing)" in copy.evidence() and copy.k == len(keyset)
    # a discriminator whose shadows do not separate supports no verdict
    weak = StatisticalAuditor(est, keyset.strategy, min_cv_accuracy=1.01)
    assert weak.verdict("copy", np.zeros(len(keyset))).verdict == INCONCLUSIVE
    assert "cannot support a verdict" in weak.verdict("copy", np.zeros(len(keyset))).reason()


def test_suite_asserts_the_statistical_verdict(pytester, world, fitted):  # noqa: F811
    keys, _, est = fitted
    pytester.makepyfile(test_instance=INSTANCE_SUITE, test_statistical=STAT_SUITE)
    text = manifest_text({**world, "keys": keys}, "digits", HONEST)
    pytester.path.joinpath("digits.toml").write_text(text)
    res = pytester.runpytest("-p", "no:cacheprovider", "-rA", "--attrib-json", "v.json")
    res.assert_outcomes(passed=7)  # 4 instance-level (3 suspects + source) + 3 statistical
    out = res.stdout.str()
    assert "PASSED test_statistical.py::test_statistical_verdict_matches_expectation[digits::infringer]" in out
    # the summary has a table of its own for the statistical level
    res.stdout.re_match_lines([r".*statistical level \(shadow discriminator\)",
                               r".*digits::infringer\s.*infringing\s.*attributed\s.*(0\.9\d\d|1\.000)",
                               r".*digits::innocent\s.*innocent\s.*clean\s.*0\.\d+"], consecutive=False)
    report = json.loads(pytester.path.joinpath("v.json").read_text())
    rows = {r["name"]: r for r in report["audits"][0]["suspects"]}
    assert rows["infringer"]["statistical"]["verdict"] == ATTRIBUTED
    assert rows["innocent"]["statistical"]["verdict"] == CLEAN
    # the guard in the report is the one recomputed from the shadows, not a stored number
    assert rows["infringer"]["statistical"]["cv_accuracy"] == pytest.approx(est.guard_accuracy())
    # flipped expectations: the statistical test fails with its evidence
    flipped = manifest_text({**world, "keys": keys}, "digits", {"infringer": "innocent"})
    pytester.path.joinpath("digits.toml").write_text(flipped)
    res = pytester.runpytest("-p", "no:cacheprovider", "-k", "statistical")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*infringer: expected innocent (verdict clean), found attributed*P(infringing)=*"])


def test_statistical_tests_only_for_key_sets_with_a_discriminator(pytester, world):  # noqa: F811
    pytester.makepyfile(test_statistical=STAT_SUITE)
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    res = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*no suspects*"])


def test_discriminator_load_refuses_a_foreign_class(tmp_path):
    X, y = np.array([[0.1, 0.2], [0.3, 0.4], [0.05, 0.1], [0.4, 0.5]]), np.array([1, 0, 1, 0])
    ShadowDiscriminator().fit(X, y).save(tmp_path / "d.json", keyset_hash="abc")
    data = json.loads((tmp_path / "d.json").read_text())
    data["classifier"]["pipeline"][1]["class"] = "os.system"
    (tmp_path / "d.json").write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match="not on the allow-list"):
        ShadowDiscriminator.load(tmp_path / "d.json", keyset_hash="abc")
