"""The key set artifact: round trip, content hash, redaction."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from attribcheck.errors import InputError, IntegrityError
from attribcheck.keys.keyset import MIN_KEYS, Key, KeySet, caption_form, quantise
from attribcheck.models.protocol import QueryProtocol

img = arrays(np.float32, (6, 6, 3), elements=st.floats(0, 1, width=32))
key = st.builds(Key, id=st.text("abc-0123", min_size=1, max_size=8),
                caption=st.text(min_size=1, max_size=30).filter(lambda s: s.strip()),
                image=img, r_source=st.floats(0, 1), r_references=st.fixed_dictionaries(
                    {"base": st.floats(0, 1), "cal": st.floats(0, 1)}))


def make(keys):
    return KeySet(keys, "generation", 0.15, {"name": "rms", "side": None}, QueryProtocol(steps=7),
                  [0, 1], "src", {"base": "selection", "cal": "calibration"}, 99)


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(key, min_size=MIN_KEYS, max_size=MIN_KEYS + 2,
                     unique_by=(lambda k: k.id, lambda k: caption_form(k.caption))))
def test_round_trip(tmp_path_factory, keys):
    for i, k in enumerate(keys):  # independent pictures (validate refuses copies): one bright square each
        k.image[0, i % 6, i // 6 % 3] = 1.0
        k.image[1:, :, :] = quantise(np.full((5, 6, 3), i / len(keys), np.float32))
    ks = make(keys)
    folder = ks.save(tmp_path_factory.mktemp("ks"))
    back = KeySet.load(folder)
    assert back.manifest() == ks.manifest()
    assert back.content_hash() == ks.content_hash()
    for a, b in zip(back.images, ks.images):
        np.testing.assert_array_equal(a, b)


def keys_(n: int = MIN_KEYS, refs=None) -> list[Key]:
    refs = {"base": 0.3, "cal": 0.4} if refs is None else refs
    return [Key(str(i), f"caption {i}", np.full((6, 6, 3), i / 10, np.float32), 0.01 * i, dict(refs))
            for i in range(n)]


def saved(tmp_path, **edit) -> dict:
    make(keys_()).save(tmp_path)
    m = json.loads((tmp_path / "keyset.json").read_text())
    m.update(edit)
    (tmp_path / "keyset.json").write_text(json.dumps(m))
    return m


def test_tampering_is_detected(tmp_path):
    saved(tmp_path, delta_0=0.5)
    with pytest.raises(IntegrityError, match="keyset.json: content_hash: .*altered"):
        KeySet.load(tmp_path)


def test_too_few_keys_refused_at_save_and_load(tmp_path):
    with pytest.raises(InputError, match=f"keys: {MIN_KEYS - 1} keys; a key set needs at least {MIN_KEYS}"):
        make(keys_(MIN_KEYS - 1)).save(tmp_path / "a")
    with pytest.raises(InputError, match="at least"):
        make([]).save(tmp_path / "b")
    m = saved(tmp_path / "c")
    m["keys"] = m["keys"][:2]
    (tmp_path / "c" / "keyset.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match=r"keyset.json: keys: .*at least 5"):
        KeySet.load(tmp_path / "c")


@pytest.mark.parametrize("edit, field", [
    ({"delta_0": -0.1}, "delta_0"),
    ({"query_seeds": []}, "query_seeds"),
    ({"format_version": 1}, "format_version"),
    ({"strategy": "../x"}, "strategy"),
    ({"extra": 1}, "extra"),
    ({"protocol": {"scheduler": "os.system"}}, "protocol.scheduler"),
    ({"protocol": {"steps": 0}}, "protocol.steps"),
    ({"reference_roles": {"base": "judge", "cal": "calibration"}}, "reference_roles.base"),
])
def test_malformed_key_set_names_the_field(tmp_path, edit, field):
    saved(tmp_path, **edit)
    with pytest.raises(InputError, match=f"keyset.json: {field}"):
        KeySet.load(tmp_path)


def test_key_image_path_cannot_leave_the_folder(tmp_path):
    m = saved(tmp_path / "ks")
    m["keys"][0]["image"] = "../../etc/passwd"
    (tmp_path / "ks" / "keyset.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match=r"keys.0.image"):
        KeySet.load(tmp_path / "ks")


def test_non_finite_distances_refused(tmp_path):
    m = saved(tmp_path)
    text = json.dumps(m).replace('"r_source": 0.0', '"r_source": NaN', 1)
    (tmp_path / "keyset.json").write_text(text)
    with pytest.raises(InputError, match=r"keys.0.r_source"):
        KeySet.load(tmp_path)


def test_runtime_is_not_part_of_the_hash(tmp_path):
    """Device and batch size are runtime options: no key set field holds them."""
    m = saved(tmp_path)
    assert set(m["protocol"]) == {"scheduler", "steps", "guidance_scale", "height", "width", "dtype"}
    ks = make(keys_())
    from attribcheck.models.protocol import QueryProtocol

    other = KeySet(ks.keys, ks.strategy, ks.delta_0, ks.distance, QueryProtocol(steps=7, dtype="float16"),
                   ks.query_seeds, ks.source, ks.reference_roles, ks.candidates)
    assert other.content_hash() != ks.content_hash()  # dtype changes images: it is hashed


def test_redacted_report_hides_captions_and_images():
    ks = make([Key(str(i), "a secret caption", np.zeros((6, 6, 3), np.float32), 0.05, {"base": 0.3, "cal": 0.3})
               for i in range(MIN_KEYS)])
    text = json.dumps(ks.redacted())
    assert "secret" not in text and "images/" not in text and ks.content_hash() in text


def test_head_keeps_order_and_protocol():
    keys = [Key(str(i), f"c{i}", np.zeros((6, 6, 3), np.float32), 0.01 * i, {"base": 0.5}) for i in range(5)]
    ks = make(keys).head(3)
    assert [k.id for k in ks.keys] == ["0", "1", "2"] and ks.protocol.steps == 7


@pytest.mark.parametrize("metric, field", [({"name": "rms", "side": "big"}, "distance"),
                                           ({"name": "tiled_rms", "tiles": 0}, "distance"),
                                           ({"name": "rms", "colour": 1}, "distance"),
                                           ({"name": "nope"}, "distance")])
def test_key_set_metric_parameters_are_checked(tmp_path, metric, field):
    saved(tmp_path, distance=metric)
    with pytest.raises(InputError, match=f"keyset.json: {field}"):
        KeySet.load(tmp_path)
