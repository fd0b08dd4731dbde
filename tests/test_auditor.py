"""The audit's score -> verdict step on recorded distances (no model needed)."""
import numpy as np

from attribcheck.audit.auditor import Auditor, innocent_level, null_rate
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.models.protocol import QueryProtocol
from tests.folder_world import PRIVATE


def keyset(cal_hits: int, k: int = 20) -> KeySet:
    keys = [Key(str(i), f"c{i}", np.zeros((4, 4, 3), np.float32), 0.05,
                {"base": 0.4, "cal": 0.05 if i < cal_hits else 0.4}) for i in range(k)]
    return KeySet(keys, "generation", 0.15, {"name": "rms"}, QueryProtocol(), [0],
                  reference_roles={"base": "selection", "cal": "calibration"}, selection=PRIVATE)


def test_levels_come_from_held_out_references_only():
    ks = keyset(cal_hits=4)
    assert innocent_level(ks) == 0.2
    assert null_rate(ks) > 0.2  # an upper bound on the rate, above the observed 4/20
    assert innocent_level(keyset(0)) == 0.0 and null_rate(keyset(0)) > 0  # zero hits is not p0 = 0


def test_three_verdicts_on_recorded_distances():
    # 20 keys rule out no less than 14% of them: the default r_min (0.1) clears nobody here
    d = lambda m: np.r_[np.full(m, 0.05), np.full(20 - m, 0.4)]  # noqa: E731
    assert Auditor(keyset(cal_hits=2)).score("s", d(0)).verdict == "inconclusive"
    auditor = Auditor(keyset(cal_hits=2), r_min=0.3)  # innocent level 0.1
    assert auditor.score("s", d(2)).verdict == "clean"  # 2 of 20: its rate's 95% bound is 0.28 < 0.3
    assert auditor.score("s", d(4)).verdict == "inconclusive"
    assert auditor.score("s", d(15)).verdict == "attributed"
    v = auditor.score("s", d(15))
    assert (v.matches, v.k, v.conf, v.innocent_level) == (15, 20, 0.75, 0.1) and v.p_value < 0.01
