"""Answers that went through a suspect's service: the declared postprocess (keys and null seen
through it) and the conformance check that refuses blurred answers a verdict."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from attribcheck.audit.conformance import DEFAULT_MIN_SHARPNESS, Watching, conformance, sharpness
from attribcheck.audit.postprocess import Postprocess, parse_step
from attribcheck.errors import InputError
from attribcheck.manifest import Manifest
from attribcheck.models.folder_generator import FolderGenerator, collect
from tests.folder_world import SEEDS, MapGenerator, manifest_text


def picture(seed: int, side: int = 32) -> np.ndarray:
    """Blocks of colour on white: sharp edges, like a generated icon."""
    rng = np.random.default_rng(seed)
    img = np.ones((side, side, 3), np.float32)
    for _ in range(4):
        y, x, h, w = rng.integers(0, side - 8, 2).tolist() + rng.integers(4, 12, 2).tolist()
        img[y:y + h, x:x + w] = rng.uniform(0, 1, 3)
    return img


@pytest.mark.parametrize("text,parsed", [("jpeg:75", ("jpeg", 75.0)), ("scale:0.5", ("scale", 0.5)),
                                         ("crop:0.1", ("crop", 0.1)), ("blur:1.5", ("blur", 1.5))])
def test_steps_parse(text, parsed):
    assert parse_step(text) == parsed


@pytest.mark.parametrize("text", ["jpeg", "jpeg:", "jpeg:0", "jpeg:101", "jpeg:7.5", "scale:0", "scale:9",
                                  "crop:0", "crop:0.6", "blur:0", "blur:-1", "sharpen:1", "JPEG:75", "scale:1e3",
                                  "eval:__import__('os')", 75])
def test_bad_steps_are_refused(text):
    with pytest.raises(ValueError):
        parse_step(text)


@pytest.mark.parametrize("steps", [["scale:8", "scale:8"], ["scale:0.1", "scale:0.5"], ["scale:4", "jpeg:75", "scale:4"]])
def test_scales_that_together_leave_one_step_s_range_are_refused(steps):
    with pytest.raises(ValueError, match="scale steps together"):
        Postprocess.parse(steps)
    assert Postprocess.parse(["scale:8", "scale:0.5"]).to_list() == ["scale:8", "scale:0.5"]  # 4x: allowed


def test_steps_apply_in_order_and_keep_valid_images():
    x = picture(0)
    assert Postprocess()(x).shape == x.shape and np.array_equal(Postprocess()(x), x)
    assert Postprocess.parse(["scale:2"])(x).shape == (64, 64, 3)
    for steps in (["jpeg:50"], ["crop:0.1"], ["blur:1"], ["scale:0.5", "scale:2"]):
        y = Postprocess.parse(steps)(x)
        assert y.shape == x.shape and y.dtype == np.float32 and np.all((0 <= y) & (y <= 1))
        assert not np.array_equal(y, x)
    assert Postprocess.parse(["scale:0.5", "jpeg:75"]).to_list() == ["scale:0.5", "jpeg:75"]


def test_sharpness_falls_under_blurs_and_round_trips_not_under_jpeg():
    keys = [picture(i) for i in range(20)]
    answers = [picture(100 + i) for i in range(20)]  # other pictures of the same kind
    assert abs(conformance(answers, keys).sharpness - 1) < 0.35
    assert not conformance(answers, keys).departs
    jpeg = Postprocess.parse(["jpeg:75"])
    assert not conformance([jpeg(a) for a in answers], keys).departs
    for steps in (["blur:1.5"], ["scale:0.5", "scale:2"], ["scale:2"], ["crop:0.2"]):
        post = Postprocess.parse(steps)
        fit = conformance([post(a) for a in answers], keys)
        assert fit.departs, steps
        if steps == ["scale:2"]:  # hard edges survive an upscale the metric shrinks back; the size does not
            assert "64x64, not the keys' 32x32" in fit.reason()
        else:
            assert fit.sharpness < DEFAULT_MIN_SHARPNESS and "blurrier than the protocol" in fit.reason()
        assert "postprocess" in fit.reason()
        # seen through the same steps, the keys are as blurry: no departure
        assert not conformance([post(a) for a in answers], [post(k) for k in keys]).departs, steps
    assert sharpness(np.full((8, 8, 3), 0.5, np.float32), 8, 8) == 0.0


def test_watching_passes_answers_through_and_measures_them():
    class Gen:
        name = "g"

        def generate(self, prompts, seeds):
            return [picture(s) for s in seeds]

    w = Watching(Gen(), 32, 32)
    out = w.generate(["a", "b"], [1, 2])
    assert np.array_equal(out[0], picture(1)) and len(w.seen) == 2 and w.name == "g"
    fit = w.result([picture(1), picture(2)])
    assert fit.sharpness == pytest.approx(1.0) and fit.answer_size == (32, 32)
    assert Watching(Gen(), 32, 32).result([picture(1)]) is None  # nothing answered, nothing measured


# --- the manifest and the audit -------------------------------------------------------------------


def _blurred(src, out, steps):
    """A copy of a folder suspect whose every answer went through `steps`."""
    gen, post = FolderGenerator(src), Postprocess.parse(steps)
    pairs = list(gen._files)
    answers = [post(a) for a in gen.generate([p for p, _ in pairs], [s for _, s in pairs])]

    class Served:
        name = "served"

        def generate(self, prompts, seeds):
            table = {q: a for q, a in zip(pairs, answers)}
            return [table[(p, int(s))] for p, s in zip(prompts, seeds)]

    return collect(Served(), [p for p, _ in pairs], [s for _, s in pairs], out)


@pytest.fixture(scope="module")
def held_out(world, tmp_path_factory):
    """An innocent model the owner holds (digits from yet another range), as collected answers."""
    from sklearn.datasets import load_digits

    from attribcheck import images
    from attribcheck.keys.keyset import KeySet

    ks = KeySet.load(world["keys"])
    digits = load_digits()
    table = {c: images.resize(images.to_array(digits.images[1000 + i] / 16.0), 16) for i, c in enumerate(ks.captions)}
    root = tmp_path_factory.mktemp("held-out")
    return collect(MapGenerator(table, 0.01), [c for c in ks.captions for _ in SEEDS], SEEDS * len(ks), root / "ho")


def _manifest(tmp_path, world, suspects: dict, postprocess: dict | None = None, innocents=()) -> Manifest:
    text = manifest_text(world, "digits", suspects)
    for name, steps in (postprocess or {}).items():
        text = text.replace(f"name = '{name}'\n", f"name = '{name}'\npostprocess = {steps!r}\n")
    for name, path in innocents:
        text += f"\n[[innocents]]\nname = '{name}'\npath = '{path.as_posix()}'\nkind = 'folder'\n"
    (tmp_path / "m.toml").write_text(text)
    return Manifest.load(tmp_path / "m.toml")


def _audit(manifest: Manifest, name: str):
    from attribcheck.audit.run import audit_suspect, auditor_for

    auditor = auditor_for(manifest)
    return auditor, audit_suspect(auditor, next(s for s in manifest.suspects if s.name == name))


@pytest.mark.parametrize("steps,field", [(["jpeg:200"], "postprocess"), (["blur"], "postprocess"),
                                         (["scale:8"] * 16, "postprocess")])
def test_a_bad_postprocess_is_an_input_error_naming_the_suspect(tmp_path, world, held_out, steps, field):
    with pytest.raises(InputError, match=r"suspects\.0 \(infringer\)\.postprocess"):
        _manifest(tmp_path, world, {"infringer": "infringing"}, {"infringer": steps}, [("ho", held_out)])


def test_a_postprocess_needs_innocent_models(tmp_path, world):
    with pytest.raises(InputError, match=r"declares a postprocess.*\[\[innocents\]\]"):
        _manifest(tmp_path, world, {"infringer": "infringing"}, {"infringer": ["jpeg:75"]})


def test_an_innocent_that_selected_the_keys_cannot_bound_the_null(tmp_path, world, held_out):
    import json

    from attribcheck.audit.run import auditor_for
    from attribcheck.keys.keyset import KeySet

    ks = KeySet.load(world["keys"])
    ks.reference_roles = {"calib": "selection"}
    ks.save(tmp_path / "keys")
    text = manifest_text({**world, "keys": tmp_path / "keys"}, "digits", {"innocent": "innocent"})
    text += f"\n[[innocents]]\nname = 'calib'\npath = '{held_out.as_posix()}'\nkind = 'folder'\n"
    (tmp_path / "m.toml").write_text(text)
    with pytest.raises(InputError, match=r"innocents\.0\.name: calib selected these keys"):
        auditor_for(Manifest.load(tmp_path / "m.toml"))
    assert json.loads((tmp_path / "keys" / "keyset.json").read_text())["reference_roles"] == {"calib": "selection"}


def test_blurred_answers_get_no_verdict_until_the_postprocess_is_declared(tmp_path, world, held_out):
    """An innocent and an infringer served through a round trip at a quarter of the size (the
    digits are 8x8 pictures shown at 16x16: half the size loses little): both inconclusive,
    with the reason, when nothing is declared; declared, the infringer is attributed and the
    innocent is not, with p0 measured through the round trip."""
    steps = ["scale:0.25", "scale:4"]
    w = {**world, "innocent-rt": _blurred(world["innocent"], tmp_path / "inn", steps),
         "infringer-rt": _blurred(world["infringer"], tmp_path / "inf", steps)}
    suspects = {"innocent-rt": "innocent", "infringer-rt": "infringing", "innocent": "innocent"}
    plain = _manifest(tmp_path, w, suspects, innocents=[("ho", held_out)])
    for name in ("innocent-rt", "infringer-rt"):
        auditor, r = _audit(plain, name)
        assert r.verdict.verdict == "inconclusive" and r.conformance.departs, name
        assert r.verdict.reason().startswith("the answers are blurrier than the protocol's")  # same size
        row = r.report(auditor)
        assert row.instance.departure and row.instance.sharpness < DEFAULT_MIN_SHARPNESS
    auditor, sharp = _audit(plain, "innocent")  # untouched answers: read as before
    assert sharp.verdict.verdict == "clean" and sharp.verdict.departure is None
    assert sharp.report(auditor).instance.postprocess == []

    declared = _manifest(tmp_path, w, suspects, {n: steps for n in ("innocent-rt", "infringer-rt")},
                         [("ho", held_out)])
    auditor, inn = _audit(declared, "innocent-rt")
    _, inf = _audit(declared, "infringer-rt")
    assert not inn.conformance.departs and inn.verdict.verdict != "attributed"
    assert inf.verdict.verdict == "attributed" and inf.verdict.departure is None
    assert inn.verdict.p0 >= auditor.p0 and inf.verdict.p0 == inn.verdict.p0
    row = inf.report(auditor)
    assert row.instance.postprocess == steps and row.instance.p0 == inf.verdict.p0


def test_a_declared_crop_is_seen_on_the_keys_too(tmp_path, world, held_out):
    """A 10% crop moves every pixel: the untouched keys lose the infringer's matches; the keys
    seen through the declared crop find them again."""
    w = {**world, "infringer-crop": _blurred(world["infringer"], tmp_path / "crop", ["crop:0.25"])}
    plain = _manifest(tmp_path, w, {"infringer-crop": "infringing"}, innocents=[("ho", held_out)])
    _, r = _audit(plain, "infringer-crop")
    assert r.verdict.verdict != "attributed"
    declared = _manifest(tmp_path, w, {"infringer-crop": "infringing"}, {"infringer-crop": ["crop:0.25"]},
                         [("ho", held_out)])
    _, d = _audit(declared, "infringer-crop")
    assert d.verdict.verdict == "attributed" and d.verdict.matches > r.verdict.matches


def test_keys_collect_stores_a_model_served_through_steps(tmp_path, capsys):
    """`attribcheck keys collect`: every query of a key set, asked of a local model, through the
    steps, as a folder suspect the audit reads."""
    from pathlib import Path

    from attribcheck.cli import EXIT_INPUT, EXIT_OK, main
    from attribcheck.keys.keyset import KeySet

    world = Path(__file__).resolve().parents[1] / "fixtures" / "world" / "emoji"
    keys, model = world / "keys" / "generation", world / "models" / "ref-calibration"
    args = ["keys", "collect", "--keys", str(keys), "--model", str(model), "--threads", "1", "--no-cache"]
    assert main(args + ["--postprocess", "scale:2", "--out", str(tmp_path / "api")]) == EXIT_OK
    ks = KeySet.load(keys)
    gen = FolderGenerator(tmp_path / "api")
    answers = gen.generate([ks.captions[0]] * len(ks.query_seeds), list(ks.query_seeds))
    side = ks.images[0].shape[0]
    assert len(gen._files) == len(ks) * len(ks.query_seeds) and answers[0].shape == (2 * side, 2 * side, 3)
    assert main(args + ["--postprocess", "scale:100", "--out", str(tmp_path / "bad")]) == EXIT_INPUT
    assert "--postprocess" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_an_innocent_that_reproduces_the_keys_is_refused(tmp_path, world):
    """A folder listed as an innocent model but holding the keys' own pictures would make every
    suspect look innocent through the steps (the innocent level); the audit refuses it."""
    m = _manifest(tmp_path, world, {"infringer": "infringing"}, {"infringer": ["jpeg:75"]},
                  [("not-innocent", world["source"])])
    _, r = _audit(m, "infringer")
    assert r.verdict is None and isinstance(r.error, InputError)
    assert "not-innocent reproduces 20 of 20 keys untouched" in str(r.error) and "innocents" in str(r.error)



@given(st.lists(st.one_of(st.builds(lambda q: f"jpeg:{q}", st.integers(1, 100)),
                          st.builds(lambda f: f"scale:{f}", st.sampled_from([0.25, 0.5, 1.5, 2, 3])),
                          st.builds(lambda s: f"crop:{s}", st.sampled_from([0.05, 0.1, 0.2, 0.5])),
                          st.builds(lambda r: f"blur:{r}", st.sampled_from([0.5, 1, 2.5]))), max_size=4))
def test_a_parsed_postprocess_writes_back_what_it_read_and_keeps_valid_pixels(steps):
    scales = [float(t.split(":")[1]) for t in steps if t.startswith("scale:")]
    assume(0.1 <= float(np.prod(scales)) <= 8)  # beyond it, refused (test above)
    post = Postprocess.parse(steps)
    assert Postprocess.parse(post.to_list()) == post
    y = post(picture(len(steps), side=32))
    assert y.ndim == 3 and y.shape[-1] == 3 and y.shape[0] >= 1 and np.all((0 <= y) & (y <= 1))


@given(st.integers(0, 10_000), st.sampled_from([0.5, 1.0, 2.0]))
def test_a_blur_never_sharpens(seed, radius):
    x = picture(seed)
    blurred = Postprocess.parse([f"blur:{radius:g}"])(x)
    assert sharpness(blurred, 32, 32) <= sharpness(x, 32, 32) + 1e-6
