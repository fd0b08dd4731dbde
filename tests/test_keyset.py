"""The key set artifact: round trip, content hash, redaction."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attribcheck.keys.keyset import Key, KeySet
from attribcheck.models.generator import SamplerConfig

img = arrays(np.float32, (6, 6, 3), elements=st.floats(0, 1, width=32))
key = st.builds(Key, id=st.text("abc-0123", min_size=1, max_size=8),
                caption=st.text(min_size=1, max_size=30).filter(lambda s: s.strip()),
                image=img, r_source=st.floats(0, 1), r_references=st.fixed_dictionaries(
                    {"base": st.floats(0, 1), "cal": st.floats(0, 1)}))


def make(keys):
    return KeySet(keys, "generation", 0.15, {"name": "rms", "side": None}, SamplerConfig(steps=7),
                  [0, 1], "src", {"base": "selection", "cal": "calibration"}, 99)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(key, min_size=1, max_size=5))
def test_round_trip(tmp_path_factory, keys):
    ks = make(keys)
    folder = ks.save(tmp_path_factory.mktemp("ks"))
    back = KeySet.load(folder)
    assert back.manifest() == ks.manifest()
    assert back.content_hash() == ks.content_hash()
    for a, b in zip(back.images, ks.images):
        np.testing.assert_array_equal(a, b)


def test_tampering_is_detected(tmp_path):
    ks = make([Key("a", "a red heart", np.zeros((6, 6, 3), np.float32), 0.05, {"base": 0.3, "cal": 0.4})])
    ks.save(tmp_path)
    m = json.loads((tmp_path / "keyset.json").read_text())
    m["delta_0"] = 0.5
    (tmp_path / "keyset.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="hash"):
        KeySet.load(tmp_path)


def test_redacted_report_hides_captions_and_images():
    ks = make([Key("a", "a secret caption", np.zeros((6, 6, 3), np.float32), 0.05, {"base": 0.3})])
    text = json.dumps(ks.redacted())
    assert "secret" not in text and "images/" not in text and ks.content_hash() in text


def test_head_keeps_order_and_protocol():
    keys = [Key(str(i), f"c{i}", np.zeros((6, 6, 3), np.float32), 0.01 * i, {"base": 0.5}) for i in range(5)]
    ks = make(keys).head(3)
    assert [k.id for k in ks.keys] == ["0", "1", "2"] and ks.sampler.steps == 7
