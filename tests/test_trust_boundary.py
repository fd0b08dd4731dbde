"""The audit's trust boundary (issue 7): every untrusted input either gives a correct verdict
or a one-line error naming the file and the field, never a silent wrong verdict.

Discriminator files that would run code, forged guards, folder suspects that read outside
their folder, hand-made profile caches, tiny / transparent / degenerate suspect images and
out-of-range statistics. No model is needed: suspects are PNG folders or arrays.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attribcheck import images
from attribcheck.audit import score
from attribcheck.audit.reconstruct import reconstruction_distances
from attribcheck.errors import AttribcheckError, DegenerateOutputError, InputError, IntegrityError
from attribcheck.metrics.distance import RMSDistance, TiledRMSDistance, rms_distance, tiled_rms_distance
from attribcheck.models.folder_generator import FolderGenerator
from attribcheck.statistical.discriminator import ShadowDiscriminator
from attribcheck.statistical.fit import StatisticalAuditor
from tests.folder_world import PRIVATE

SIDE = 16


def emoji_like(seed: int, side: int = SIDE) -> np.ndarray:
    """A white picture with a small coloured blob: mostly background, like an emoji key."""
    rng = np.random.default_rng(seed)
    img = np.ones((side, side, 3), np.float32)
    y, x = rng.integers(2, side - 6, size=2)
    img[y:y + 5, x:x + 5] = rng.uniform(0, 0.6, size=3)
    return img


def write_folder(folder: Path, rows: list, pics: dict[str, np.ndarray | Image.Image] | None = None) -> Path:
    """A folder suspect: `rows` are written to queries.jsonl as given (dicts or raw lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, pic in (pics or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        pic = pic if isinstance(pic, Image.Image) else images.to_pil(pic)
        pic.save(folder / name)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    return folder


# -- 1. discriminator.json names only allow-listed estimators ---------------------------------

def separable(rng, n: int = 6, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    inf = rng.uniform(0.16, 0.4, size=(n, k))
    inf[:, : k // 2] = rng.uniform(0.01, 0.1, size=(n, k // 2))
    inn = rng.uniform(0.16, 0.4, size=(n, k))
    return np.vstack([inf, inn]), np.r_[np.ones(n), np.zeros(n)].astype(int)


def saved(tmp_path, classifier=None, rng_seed: int = 0, **metadata) -> tuple[Path, dict]:
    X, y = separable(np.random.default_rng(rng_seed))
    path = tmp_path / "discriminator.json"
    ShadowDiscriminator(classifier).fit(X, y).save(path, keyset_hash="abc", **metadata)
    return path, json.loads(path.read_text())


def test_a_crafted_class_is_refused_before_it_runs(tmp_path):
    path, data = saved(tmp_path)
    victim = tmp_path / "victim"
    (victim / "inside").mkdir(parents=True)
    marker = tmp_path / "ran"
    last_step = data["classifier"]["pipeline"][1]
    attacks = [{"class": "sklearn.datasets.clear_data_home", "params": {"data_home": str(victim)}},
               {"class": "sklearn.utils._testing.check_output", "params": {"args": ["touch", str(marker)]}}]
    for attack in attacks:
        for where in ("top", "step"):
            data["classifier"] = attack if where == "top" else {"pipeline": [attack, last_step]}
            path.write_text(json.dumps(data))
            with pytest.raises(IntegrityError, match=r"discriminator\.json: classifier.*allow-list"):
                ShadowDiscriminator.load(path, keyset_hash="abc")
            assert victim.is_dir() and (victim / "inside").is_dir() and not marker.exists()


@pytest.mark.parametrize("params, field", [({"C": {"__class__": "os.system"}}, "params.C"),
                                           ({"C": [1, [2]]}, "params.C"),
                                           ({"not_a_parameter": 1}, "params.not_a_parameter"),
                                           ({"max_iter": 10 ** 12}, "params.max_iter")])
def test_classifier_parameters_are_plain_bounded_data(tmp_path, params, field):
    path, data = saved(tmp_path)
    data["classifier"]["pipeline"][1]["params"].update(params)
    path.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match=rf"discriminator\.json: classifier\.pipeline\.1\.{field}"):
        ShadowDiscriminator.load(path, keyset_hash="abc")


def _set(data: dict, dotted: str, value):
    *head, last = dotted.split(".")
    for part in head:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


@pytest.mark.parametrize("field, value", [("bins", [0.0, 0.5, 0.2, 1.0]), ("bins", [0.0]), ("bins", "0-1"),
                                          ("X.3", [0.1, 0.2]), ("X.0.1", "NaN"), ("X.0.1", -1.0), ("X", []),
                                          ("y.0", 2), ("y.0", True), ("y", [1] * 12), ("y", [0, 1]),
                                          ("metadata.cv_accuracy", "high"), ("metadata.shadows", "s0"),
                                          ("surprise", 1)])
def test_discriminator_file_schema(tmp_path, field, value):
    path, data = saved(tmp_path)
    _set(data, field, value)
    # json.dumps writes float('nan') as a bare NaN, the way a hand-edited file would carry one
    path.write_text(json.dumps(data).replace('"NaN"', "NaN"))
    top = field.split(".")[0]
    with pytest.raises((InputError, IntegrityError), match=rf"discriminator\.json: {top}"):
        ShadowDiscriminator.load(path, keyset_hash="abc")


def test_saving_refuses_estimators_outside_the_allow_list(tmp_path):
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import RandomForestClassifier

    X, y = separable(np.random.default_rng(0))
    est = ShadowDiscriminator(DummyClassifier(strategy="prior")).fit(X, y)
    with pytest.raises(InputError, match="allow-list"):
        est.save(tmp_path / "d.json")
    assert not (tmp_path / "d.json").exists()
    # a randomised estimator must be reproducible, or its guard could not be recomputed
    est = ShadowDiscriminator(RandomForestClassifier(n_estimators=5)).fit(X, y)
    with pytest.raises(InputError, match="random_state"):
        est.save(tmp_path / "d.json")


def test_saved_json_has_no_bare_nan(tmp_path):
    X, y = separable(np.random.default_rng(0))
    with pytest.raises(ValueError):
        ShadowDiscriminator().fit(X, y).save(tmp_path / "d.json", note=float("nan"))
    assert not (tmp_path / "d.json").exists()


# -- 2. the guard is recomputed, never read from the file --------------------------------------

def test_a_forged_cv_accuracy_is_caught(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.uniform(0.1, 0.4, size=(12, 10))  # labels unrelated to the profiles: no separation
    y = np.r_[np.ones(6), np.zeros(6)].astype(int)
    est = ShadowDiscriminator().fit(X, y)
    honest = est.leave_one_out_accuracy()
    assert honest < 0.8
    path = tmp_path / "discriminator.json"
    est.save(path, keyset_hash="abc", cv_accuracy=honest)
    data = json.loads(path.read_text())
    data["metadata"]["cv_accuracy"] = 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(IntegrityError, match=r"discriminator\.json: metadata\.cv_accuracy"):
        ShadowDiscriminator.load(path, keyset_hash="abc")
    # without a stored value the guard is recomputed, and it keeps the verdict inconclusive
    del data["metadata"]["cv_accuracy"]
    path.write_text(json.dumps(data))
    back = ShadowDiscriminator.load(path, keyset_hash="abc")
    assert back.metadata_["cv_accuracy"] == pytest.approx(honest)
    aud = StatisticalAuditor(back, "detection")
    assert aud.verdict("s", np.zeros(10) + 0.01).verdict == "inconclusive"
    # an in-memory discriminator whose metadata was edited is not believed either
    back.metadata_["cv_accuracy"] = 1.0
    assert aud.verdict("s", np.zeros(10) + 0.01).cv_accuracy == pytest.approx(honest)


def test_statistical_auditor_validates_its_threshold_up_front():
    X, y = separable(np.random.default_rng(0))
    est = ShadowDiscriminator().fit(X, y)
    for bad in (0.3, 0.5, 1.5, float("nan")):
        with pytest.raises(InputError, match="threshold"):
            StatisticalAuditor(est, "detection", threshold=bad)


# -- 3. folder suspects read only inside their folder ------------------------------------------

def test_folder_paths_must_stay_inside(tmp_path):
    outside = tmp_path / "owner-keys" / "0000.png"
    outside.parent.mkdir()
    images.save(emoji_like(0), outside)
    ok = {"prompt": "a", "seed": 0, "file": "0.png"}
    pics = {"0.png": emoji_like(1), "sub/1.png": emoji_like(2)}
    for bad in ("../../etc/passwd", "../owner-keys/0000.png", str(outside), "sub/../../owner-keys/0000.png",
                "/etc/passwd", "link.png"):
        folder = tmp_path / f"s{abs(hash(bad))}"
        write_folder(folder, [ok, {"prompt": "b", "seed": 0, "file": bad}], pics)
        (folder / "link.png").symlink_to(outside)  # a symlink that escapes the folder
        with pytest.raises(IntegrityError, match=r"queries\.jsonl line 2: file: .*outside"):
            FolderGenerator(folder)
    # a symlink that stays inside is fine
    folder = write_folder(tmp_path / "fine", [ok, {"prompt": "b", "seed": 0, "file": "alias.png"},
                                              {"prompt": "c", "seed": 1, "file": "sub/1.png"}], pics)
    (folder / "alias.png").symlink_to(folder / "sub" / "1.png")
    gen = FolderGenerator(folder)
    assert np.allclose(gen.generate(["b"], [0])[0], gen.generate(["c"], [1])[0])


@pytest.mark.parametrize("line, error, field", [
    ('{"prompt": "b", "seed": 0, "file": ', InputError, "line 2"),
    ('[1, 2, 3]', InputError, "line 2"),
    ('{"prompt": 7, "seed": 0, "file": "0.png"}', InputError, "line 2: prompt"),
    ('{"prompt": "b", "seed": "0", "file": "0.png"}', InputError, "line 2: seed"),
    ('{"prompt": "b", "seed": 1.5, "file": "0.png"}', InputError, "line 2: seed"),
    ('{"prompt": "b", "seed": true, "file": "0.png"}', InputError, "line 2: seed"),
    ('{"prompt": "b", "seed": 0}', InputError, "line 2: file"),
    ('{"prompt": "b", "seed": 0, "file": 3}', InputError, "line 2: file"),
    ('{"prompt": "b", "seed": 0, "file": "missing.png"}', InputError, "line 2: file"),
    ('{"prompt": "a", "seed": 0, "file": "1.png"}', InputError, "line 2: file"),  # (a, 0) again, other file
])
def test_folder_rows_are_validated(tmp_path, line, error, field):
    folder = write_folder(tmp_path / "s", [{"prompt": "a", "seed": 0, "file": "0.png"}, line],
                          {"0.png": emoji_like(0), "1.png": emoji_like(1)})
    with pytest.raises(error, match=rf"queries\.jsonl {field}"):
        FolderGenerator(folder)


def test_folder_lists_missing_queries(tmp_path):
    folder = write_folder(tmp_path / "s", [{"prompt": "a", "seed": 0, "file": "0.png"},
                                           {"prompt": "a", "seed": 0, "file": "0.png"}],  # a repeat is harmless
                          {"0.png": emoji_like(0)})
    gen = FolderGenerator(folder)
    with pytest.raises(InputError, match=r"queries\.jsonl.*5 of 6 queries were never collected.*\('b', 0\)") as e:
        gen.generate(["a", "b", "b", "c", "c", "d"], [0, 0, 1, 0, 1, 0])
    assert "('d', 0)" not in str(e.value)  # the first few, then the count


# -- 4. shadow profile caches are keyed by content ---------------------------------------------

@pytest.fixture
def small_keyset():
    from attribcheck.keys.keyset import Key, KeySet
    from attribcheck.models.protocol import QueryProtocol

    keys = [Key(f"k{i}", f"caption {i}", emoji_like(i), 0.01, {"calib": 0.5}) for i in range(6)]
    return KeySet(keys, "detection", 0.15, {"name": "rms", "side": None}, QueryProtocol(), [0, 1],
                  reference_roles={"calib": "calibration"}, candidates=6, selection=PRIVATE)


@pytest.fixture
def fake_queries(monkeypatch):
    """Counts how often a shadow is really queried; its 'distances' are 0.3 + a tenth of the
    model file's first byte, so changed weights give a changed profile."""
    from attribcheck.audit.auditor import Auditor
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    calls = []

    class Stub:
        def __init__(self, path):
            self.path, self.name = Path(path), Path(path).name

    def measure(self, gen):
        calls.append(gen.path)
        byte = (gen.path / "unet.safetensors").read_bytes()[0]
        return np.full(len(self.keyset), 0.3 + byte / 2550)

    monkeypatch.setattr(DiffusersGenerator, "from_path", classmethod(lambda cls, path, *a, **k: Stub(path)))
    monkeypatch.setattr(Auditor, "measure", measure)
    return calls


def test_profile_cache_is_bound_to_weights_and_keys(tmp_path, small_keyset, fake_queries):
    from attribcheck.statistical.fit import model_profile

    shadow = tmp_path / "shadow-0"
    shadow.mkdir()
    (shadow / "unet.safetensors").write_bytes(bytes([10]) * 64)
    # a hand-made cache under the old name (folder name + key set hash) must not be believed
    old = shadow / "profiles" / f"shadow-0-{small_keyset.content_hash()[:16]}.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"distances": [0.0] * len(small_keyset)}))
    d = model_profile(small_keyset, shadow)
    assert len(fake_queries) == 1 and np.allclose(d, 0.3 + 10 / 2550)
    entries = [p for p in (shadow / "profiles").iterdir() if p != old]
    assert len(entries) == 1
    entry = json.loads(entries[0].read_text())
    from attribcheck.fingerprint import fingerprint

    assert entry["model_fingerprint"] == fingerprint(shadow)
    assert entry["keyset_hash"] == small_keyset.content_hash()
    # a second call reads the cache
    assert np.allclose(model_profile(small_keyset, shadow), d) and len(fake_queries) == 1
    # new weights in the same folder: queried again
    (shadow / "unet.safetensors").write_bytes(bytes([20]) * 65)
    assert np.allclose(model_profile(small_keyset, shadow), 0.3 + 20 / 2550) and len(fake_queries) == 2
    # a tampered entry (forged distances, wrong origin, wrong length, non-finite) is recomputed
    current = max((shadow / "profiles").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    good = json.loads(current.read_text())
    for forged in ({"keyset_hash": "0" * 64}, {"model_fingerprint": "0" * 64}, {"distances": [0.01] * 3},
                   {"distances": [None] * len(small_keyset)}, {"format_version": 99}):
        current.write_text(json.dumps({**good, **forged}))
        assert np.allclose(model_profile(small_keyset, shadow), 0.3 + 20 / 2550)
    current.write_text("{not json")
    assert np.allclose(model_profile(small_keyset, shadow), 0.3 + 20 / 2550)
    assert len(fake_queries) == 8


def test_profile_cache_is_written_atomically(tmp_path, small_keyset, fake_queries, monkeypatch):
    from attribcheck.statistical.fit import model_profile

    shadow = tmp_path / "shadow-1"
    shadow.mkdir()
    (shadow / "unet.safetensors").write_bytes(bytes([10]) * 64)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)  # the process dies between writing and renaming
    with pytest.raises(OSError, match="disk full"):
        model_profile(small_keyset, shadow)
    left = list((shadow / "profiles").glob("*.json")) if (shadow / "profiles").exists() else []
    assert left == []  # no half-written entry under a name a later run would read


# -- 5. image sizes and transparency -----------------------------------------------------------

@pytest.mark.parametrize("side", [1, 2, 8, 15])
def test_a_suspect_image_smaller_than_the_key_is_degenerate(side):
    key = emoji_like(0)
    grey = np.full((side, side, 3), 0.9, np.float32)
    for metric in (rms_distance, tiled_rms_distance, RMSDistance(), TiledRMSDistance(side=8)):
        with pytest.raises(DegenerateOutputError, match="smaller than the key"):
            metric(grey, key)


def test_tiny_grey_answers_are_an_error_not_attributed(tmp_path):
    keys = [emoji_like(i) for i in range(12)]
    captions = [f"emoji {i}" for i in range(12)]
    grey = {"grey.png": np.full((2, 2, 3), 0.9, np.float32)}
    folder = write_folder(tmp_path / "api", [{"prompt": c, "seed": s, "file": "grey.png"}
                                             for c in captions for s in range(4)], grey)
    with pytest.raises(DegenerateOutputError, match=r"grey\.png"):
        reconstruction_distances(FolderGenerator(folder), captions, keys, range(4), RMSDistance())


def test_larger_and_non_square_suspect_images_are_brought_to_the_key():
    key = emoji_like(0)
    big = np.repeat(np.repeat(key, 2, axis=0), 2, axis=1)  # the key at twice its side
    assert rms_distance(big, key) < 1e-6
    wide = np.repeat(key, 3, axis=1)  # 16 x 48: every side at least the key's
    assert rms_distance(wide, key) < 1e-6
    with pytest.raises(DegenerateOutputError):
        rms_distance(np.repeat(key[:8], 3, axis=1), key)  # 8 x 48: too few rows
    # an explicit common side still resizes both
    assert RMSDistance(side=8)(big, key) < 1e-6


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_answers_are_composited_onto_the_keys_background(tmp_path, mode):
    key = np.ones((SIDE, SIDE, 3), np.float32)
    key[4:12, 4:12] = 0.0  # a black square on white
    rgba = np.zeros((SIDE, SIDE, 4), np.uint8)  # transparent black everywhere ...
    rgba[4:12, 4:12] = (0, 0, 0, 255)  # ... but the square
    if mode == "P":  # palette entry 0 is transparent, entry 1 opaque black
        pic = Image.fromarray((rgba[..., 3] > 0).astype(np.uint8), "P")
        pic.putpalette([0, 0, 0] * 2)
        extra = {"transparency": 0}
    else:
        pic, extra = Image.fromarray(rgba, "RGBA").convert(mode), {}
    folder = tmp_path / "api"
    folder.mkdir()
    pic.save(folder / "a.png", **extra)
    write_folder(folder, [{"prompt": "square", "seed": 0, "file": "a.png"}])
    d = reconstruction_distances(FolderGenerator(folder), ["square"], [key], [0], RMSDistance())
    assert d[0] < 0.01
    # on a black key background the same answer would be all black: degenerate, not a match
    with pytest.raises(DegenerateOutputError):
        reconstruction_distances(FolderGenerator(folder), ["square"], [1 - key], [0], RMSDistance())


def test_key_background_is_estimated_from_its_border():
    key = emoji_like(3)
    assert np.allclose(images.border_colour(key), 1.0)
    dark = np.zeros((SIDE, SIDE, 3), np.float32)
    dark[5:9, 5:9] = 1.0
    assert np.allclose(images.border_colour(dark), 0.0)


# -- 6. degenerate outputs are an error for that suspect ---------------------------------------

class ArrayGenerator:
    def __init__(self, fn):
        self.name, self.fn = "arrays", fn

    def generate(self, prompts, seeds):
        return [self.fn(p, s) for p, s in zip(prompts, seeds)]


@pytest.mark.parametrize("kind, make", [
    ("non-finite", lambda p, s: np.full((SIDE, SIDE, 3), np.nan, np.float32)),
    ("non-finite", lambda p, s: np.where(np.arange(SIDE)[:, None, None] == 3, np.inf, emoji_like(s))
     .astype(np.float32)),
    ("constant", lambda p, s: np.zeros((SIDE, SIDE, 3), np.float32)),  # all black
    ("constant", lambda p, s: np.ones((SIDE, SIDE, 3), np.float32)),  # all white
    ("constant", lambda p, s: np.where(np.arange(SIDE * SIDE).reshape(SIDE, SIDE, 1) < 2, 0.0, 0.6)
     .repeat(3, axis=2).astype(np.float32)),  # grey with two stray black pixels (under 1%)
    # blank: one value plus less than one 8-bit level of noise
    ("constant", lambda p, s: np.full((SIDE, SIDE, 3), 0.93, np.float32)
     + np.random.default_rng(s).uniform(0, 1 / 512, (SIDE, SIDE, 3)).astype(np.float32)),
])
def test_degenerate_outputs_raise_before_scoring(kind, make):
    keys = [emoji_like(i) for i in range(5)]
    with pytest.raises(DegenerateOutputError, match=kind):
        reconstruction_distances(ArrayGenerator(make), [f"c{i}" for i in range(5)], keys, [0, 1], RMSDistance())


def test_oversized_files_are_refused(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "s", [{"prompt": "a", "seed": 0, "file": "0.png"}], {"0.png": emoji_like(0)})
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # a 16x16 answer now stands for a decompression bomb
    with pytest.raises(InputError, match=r"queries\.jsonl: file: cannot read 0\.png: 16x16 is larger"):
        FolderGenerator(folder).generate(["a"], [0])


def test_a_mostly_white_picture_is_not_degenerate():
    keys = [emoji_like(i) for i in range(5)]
    d = reconstruction_distances(ArrayGenerator(lambda p, s: emoji_like(int(p[1:]))), [f"c{i}" for i in range(5)],
                                 keys, [0], RMSDistance())
    assert np.allclose(d, 0.0)


def test_score_refuses_non_finite_distances():
    for bad in ([0.1, np.nan, 0.3], [0.1, np.inf], [0.2, -0.5]):
        with pytest.raises(InputError, match="distances"):
            score.matches(np.array(bad), 0.15)
        with pytest.raises(InputError, match="distances"):
            score.conf(np.array(bad), 0.15)


# -- 7. statistics out of range are refused ----------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -1.0, float("nan"), float("inf")])
def test_alpha_must_lie_in_the_open_unit_interval(alpha):
    with pytest.raises(InputError, match="alpha"):
        score.check_alpha(alpha)


@pytest.mark.parametrize("p0", [0.0, -0.1, 1.1, float("nan")])
def test_p0_must_lie_in_zero_one(p0):
    with pytest.raises(InputError, match="p0"):
        score.p_value(3, 10, p0)


@pytest.mark.parametrize("delta_0", [0.0, -0.15, float("nan"), float("inf")])
def test_delta_0_must_be_positive_and_finite(delta_0):
    with pytest.raises(InputError, match="delta_0"):
        score.matches(np.array([0.1, 0.2]), delta_0)
    with pytest.raises(InputError, match="delta_0"):
        score.conf(np.array([0.1, 0.2]), delta_0)


def test_valid_statistics_still_pass():
    assert score.check_alpha(0.01) == 0.01
    assert score.p_value(3, 10, 1.0) == pytest.approx(1.0)
    assert score.matches(np.array([0.1, 0.2]), 0.15) == 1


def test_errors_name_the_file_and_field(tmp_path):
    folder = write_folder(tmp_path / "s", ['{"prompt": "a", "seed": 0, "file": "../x.png"}'])
    with pytest.raises(AttribcheckError) as e:
        FolderGenerator(folder)
    assert e.value.where.endswith("queries.jsonl line 1") and e.value.field == "file"
    assert "\n" not in str(e.value)


def test_statistical_verdict_refuses_non_finite_profiles():
    X, y = separable(np.random.default_rng(0))
    aud = StatisticalAuditor(ShadowDiscriminator().fit(X, y), "detection")
    for bad in (np.r_[np.zeros(9), np.nan], np.zeros(9)):
        with pytest.raises(InputError, match="distances"):
            aud.verdict("s", bad)


def test_hostile_folder_suspects_become_error_rows_end_to_end(tmp_path, world):
    """Through `attribcheck audit`: the 2x2 grey answerer and the folder that points at the
    owner's key images get error rows of their kind; the honest suspects keep their verdicts."""
    from attribcheck.cli import main
    from attribcheck.keys.keyset import KeySet
    from tests.folder_world import manifest_text

    keyset = KeySet.load(world["keys"])
    queries = [(c, s) for c in keyset.captions for s in keyset.query_seeds]
    grey = write_folder(tmp_path / "grey", [{"prompt": c, "seed": s, "file": "g.png"} for c, s in queries],
                        {"g.png": np.full((2, 2, 3), 0.5, np.float32)})
    keys_rel = os.path.relpath(world["keys"] / "images", tmp_path / "thief")
    thief = write_folder(tmp_path / "thief", [{"prompt": c, "seed": s, "file": f"{keys_rel}/{i:04d}.png"}
                                              for i, c in enumerate(keyset.captions) for s in keyset.query_seeds])
    suspects = {"infringer": "infringing", "grey": "innocent", "thief": "innocent", "innocent": "innocent"}
    m = tmp_path / "m.toml"
    m.write_text(manifest_text({**world, "grey": grey, "thief": thief}, "digits", suspects))
    main(["audit", "--manifest", str(m), "--json", str(tmp_path / "r.json"), "-q"])
    rows = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["audits"][0]["suspects"]}
    assert rows["grey"]["outcome"] == "error" and rows["grey"]["error"]["kind"] == "degenerate-output"
    assert "smaller than the key" in rows["grey"]["error"]["message"]
    assert rows["thief"]["outcome"] == "error" and rows["thief"]["error"]["kind"] == "integrity"
    assert "outside" in rows["thief"]["error"]["message"] and rows["thief"].get("instance") is None
    assert rows["infringer"]["instance"]["verdict"] == "attributed"
    assert rows["innocent"]["instance"]["verdict"] == "clean"
