"""Issue 16, from the attacker's side: declarations checked against the answers (item 3),
innocents held to the suspects' standard (item 4), independent keys (item 5).

Each case is a way to flip a verdict with something the audit reads: a postprocess declared
for answers that never went through it, an "innocent" that is not one, a key counted twice.
Every one must end attributed, inconclusive with the reason, or a one-line input error; never
clean for an infringer, never a silent change of p0. The folder world (tests/folder_world.py)
keeps them fast: no model is run.
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from attribcheck import images
from attribcheck.audit.verdict import ATTRIBUTED, INCONCLUSIVE
from attribcheck.errors import InputError
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.manifest import Manifest
from attribcheck.metrics.distance import get_distance
from attribcheck.models.protocol import QueryProtocol
from attribcheck.models.folder_generator import FolderGenerator, collect
from tests.folder_world import SEEDS, MapGenerator
from tests.test_postprocess import _audit, _blurred, _manifest, held_out  # noqa: F401  (a fixture)


def _served(src, out, change):
    """A copy of a folder suspect whose every answer went through `change` (image -> image)."""
    gen = FolderGenerator(src)
    pairs = list(gen._files)
    answers = [change(a) for a in gen.generate([p for p, _ in pairs], [s for _, s in pairs])]
    table = dict(zip(pairs, answers))

    class Served:
        name = "served"

        def generate(self, prompts, seeds):
            return [table[(p, int(s))] for p, s in zip(prompts, seeds)]

    return collect(Served(), [p for p, _ in pairs], [s for _, s in pairs], out)


def _checkerboard(image, amplitude):
    h, w = image.shape[:2]
    board = (np.indices((h, w)).sum(axis=0) % 2 * 2 - 1)[..., None] * amplitude
    return np.clip(image[..., :3] + board, 0, 1).astype(np.float32)


def _lenient(manifest):
    """The same manifest with [audit] r_min = 0.5 (a clean verdict needs less evidence)."""
    text = re.sub(r"(?m)^r_min = .*\n", "", manifest.path.read_text()).replace("[audit]\n", "[audit]\nr_min = 0.5\n", 1)
    manifest.path.write_text(text)
    return Manifest.load(manifest.path)


# --- 3. a declaration never clears what the undeclared audit attributes ---------------------------

WRONG = [["blur:2"], ["crop:0.5"], ["jpeg:1"], ["scale:2"], ["blur:1", "jpeg:50"], ["crop:0.2", "scale:0.5", "scale:2"],
         ["scale:0.25", "scale:4"], ["scale:2", "scale:0.5"], ["jpeg:100"], ["blur:0.5"]]


@pytest.mark.parametrize("steps", WRONG, ids="+".join)
def test_a_wrong_declaration_never_clears_an_attributed_infringer(tmp_path, world, held_out, steps):
    """The infringer's untouched answers are attributed; declared through steps they never
    went through, they stay attributed (the untouched reading) and are never clean."""
    plain = _manifest(tmp_path, world, {"infringer": "infringing"}, innocents=[("ho", held_out)])
    _, before = _audit(plain, "infringer")
    assert before.verdict.verdict == ATTRIBUTED
    declared = _manifest(tmp_path, world, {"infringer": "infringing"}, {"infringer": steps}, [("ho", held_out)])
    _, r = _audit(declared, "infringer")
    assert r.error is None, r.error
    assert r.verdict.verdict == ATTRIBUTED and r.verdict.matches == before.verdict.matches
    assert r.verdict.p0 == before.verdict.p0  # the untouched null: the reading it rests on


def test_a_wrong_declaration_on_an_inconclusive_suspect_is_not_clean(tmp_path, world, held_out):
    """The partial copier (4 of 20 keys) is inconclusive untouched. A no-op declaration and an
    [[innocents]] model at the same 4 keys (not attributable: p = 0.3) would raise the
    innocent level through the steps to 0.2 and clear it; it stays inconclusive, with why.
    (r_min 0.5: with 20 keys the default 0.1 clears no one, and the declaration is the attack.)"""
    ks = KeySet.load(world["keys"])
    other = FolderGenerator(world["innocent"])
    table = {c: (ks.images[i] if i < 4 else other.generate([c], [0])[0]) for i, c in enumerate(ks.captions)}
    four = collect(MapGenerator(table, 0.01), [c for c in ks.captions for _ in SEEDS], SEEDS * len(ks),
                   tmp_path / "four")
    plain = _lenient(_manifest(tmp_path, world, {"partial": "innocent"}, innocents=[("four", four)]))
    _, before = _audit(plain, "partial")
    assert before.verdict.verdict == INCONCLUSIVE
    for steps in (["jpeg:100"], ["scale:2", "scale:0.5"]):
        m = _lenient(_manifest(tmp_path, world, {"partial": "innocent"}, {"partial": steps}, [("four", four)]))
        _, r = _audit(m, "partial")
        assert r.verdict.verdict == INCONCLUSIVE, steps
        assert "cannot clear" in r.verdict.reason() and "+".join(steps) in r.verdict.reason()


def test_a_declaration_the_answers_did_not_go_through_is_named(tmp_path, world, held_out):
    """Untouched innocent answers read against keys seen through a blur they never went
    through: far sharper than those keys, so the declared reading is inconclusive with the
    reason (the untouched reading, clean, cannot attribute them either)."""
    m = _manifest(tmp_path, world, {"innocent": "innocent"}, {"innocent": ["blur:2"]}, [("ho", held_out)])
    _, r = _audit(m, "innocent")
    assert r.verdict.verdict == INCONCLUSIVE and r.conformance.departs
    assert "sharper than the protocol's" in r.verdict.reason() and "blur:2" in r.verdict.reason()
    assert "did not go through the declared postprocess" in r.verdict.reason()


def test_a_right_declaration_still_reads_through_the_steps(tmp_path, world, held_out):
    """The honest case: a cropped infringer, declared, is attributed through the steps (its
    untouched reading is not: the crop moved every pixel), a blurred innocent is not attributed."""
    w = {**world, "infringer-crop": _blurred(world["infringer"], tmp_path / "crop", ["crop:0.25"]),
         "innocent-rt": _blurred(world["innocent"], tmp_path / "rt", ["scale:0.25", "scale:4"])}
    m = _manifest(tmp_path, w, {"infringer-crop": "infringing", "innocent-rt": "innocent"},
                  {"infringer-crop": ["crop:0.25"], "innocent-rt": ["scale:0.25", "scale:4"]}, [("ho", held_out)])
    auditor, inf = _audit(m, "infringer-crop")
    _, inn = _audit(m, "innocent-rt")
    assert inf.verdict.verdict == ATTRIBUTED and inf.verdict.p0 >= auditor.p0 and inf.verdict.departure is None
    assert inn.verdict.verdict != ATTRIBUTED and inn.error is None


# --- 4. innocents held to the suspects' standard --------------------------------------------------


def test_noise_added_to_an_infringer_s_answers_is_not_read_as_clean(tmp_path, world, held_out):
    """A +-0.3 checkerboard over an infringer's answers hides every key from the pixel metric;
    answers that much sharper than the keys depart from the protocol: inconclusive, not clean."""
    w = {**world, "noisy": _served(world["infringer"], tmp_path / "noisy", lambda a: _checkerboard(a, 0.3))}
    m = _manifest(tmp_path, w, {"noisy": "infringing"}, innocents=[("ho", held_out)])
    _, r = _audit(m, "noisy")
    assert r.verdict.matches == 0 and r.verdict.verdict == INCONCLUSIVE
    assert "sharper than the protocol's" in r.verdict.reason()


@pytest.mark.parametrize("poison", ["checkerboard", "noise"])
def test_a_poisoned_innocent_is_refused(tmp_path, world, held_out, poison):
    """The source's own answers under a +-0.5 checkerboard (or pure noise) reproduce no key
    untouched, so the old check let them in; through a round trip the checkerboard averages
    away and the 'innocent' reproduces every key, raising p0 and the innocent level until a
    declared infringer is cleared. Its answers fail the suspects' conformance check."""
    rng = np.random.default_rng(0)
    change = (lambda a: _checkerboard(a, 0.5)) if poison == "checkerboard" else (
        lambda a: rng.uniform(0, 1, a[..., :3].shape).astype(np.float32))
    w = {**world, "infringer-rt": _blurred(world["infringer"], tmp_path / "inf", ["scale:0.5", "scale:2"])}
    bad = _served(world["source"], tmp_path / "bad", change)
    m = _manifest(tmp_path, w, {"infringer-rt": "infringing"}, {"infringer-rt": ["scale:0.5", "scale:2"]},
                  [("ho", held_out), ("poisoned", bad)])
    _, r = _audit(m, "infringer-rt")
    assert r.verdict is None and isinstance(r.error, InputError)
    assert "poisoned" in str(r.error) and "innocents" in str(r.error) and "\n" not in str(r.error)


def test_an_innocent_far_above_the_others_through_the_steps_is_refused(world, held_out):
    """The rule itself, where the null through the steps is measured: an innocent that
    reproduces every key through a round trip while the other reproduces none (the source's
    answers moved one pixel: as sharp as any answer, so conformance does not stop them) is
    one the binomial test would attribute against the others' rate: it is named and refused,
    never averaged into p0 or the innocent level."""
    from attribcheck.audit.auditor import Auditor
    from attribcheck.audit.null_through import through
    from attribcheck.audit.postprocess import Postprocess

    ks = KeySet.load(world["keys"])
    seeds = list(ks.query_seeds)

    def grid(folder, change=lambda a: a):
        gen = FolderGenerator(folder)
        return [[change(gen.generate([c], [s])[0][..., :3]) for s in seeds] for c in ks.captions]

    post = Postprocess.parse(["scale:0.5", "scale:2"])
    answers = {"ho": grid(held_out)}
    assert through(Auditor(ks), post, answers).p0 < 0.2
    answers["quiet"] = grid(world["source"], lambda a: np.roll(a, 1, axis=0))
    with pytest.raises(InputError, match=r"quiet \(scale:0.5\+scale:2\) reproduces 20 of 20 keys.*would attribute it"):
        through(Auditor(ks), post, answers)


def test_a_selection_reference_under_another_name_is_recognised(tmp_path, world, held_out):
    """The key set's selection reference (keys were chosen for it to miss: biased low) listed
    under another name: its distances on the keys equal the stored ones, so it is that
    reference, whatever it is called."""
    from attribcheck.audit.reconstruct import reconstruction_distances

    ks = KeySet.load(world["keys"])
    d = reconstruction_distances(FolderGenerator(held_out), ks.captions, ks.images, ks.query_seeds,
                                 get_distance(ks.distance))
    for k, v in zip(ks.keys, d):
        k.r_references["base"] = float(v)
    ks.reference_roles = {**ks.reference_roles, "base": "selection"}
    ks.save(tmp_path / "keys")
    m = _manifest(tmp_path, {**world, "keys": tmp_path / "keys"}, {"infringer": "infringing"},
                  {"infringer": ["jpeg:75"]}, [("fresh-name", held_out)])
    _, r = _audit(m, "infringer")
    assert r.verdict is None and isinstance(r.error, InputError)
    assert "fresh-name" in str(r.error) and "'base'" in str(r.error) and "selection" in str(r.error)


def test_innocent_shadows_far_above_the_references_are_refused(world):
    """A discriminator file with 40 added innocent shadows that match half the keys would
    raise p0 until an infringer is inconclusive; each is tested against the key set's held-out
    references and refused by name."""
    from attribcheck.audit.auditor import Auditor

    ks = KeySet.load(world["keys"])
    honest = {f"shadow:h{i}": np.full(len(ks), 0.4) for i in range(4)}
    assert Auditor(ks, innocents=honest).p0 < 0.2
    half = np.where(np.arange(len(ks)) % 2 == 0, 0.01, 0.4)
    bad = {**honest, **{f"shadow:added-{i}": half for i in range(40)}}
    with pytest.raises(InputError, match=r"shadow:added-0 reproduces 10 of 20 keys.*would attribute it"):
        Auditor(ks, innocents=bad)


def test_the_shipped_nulls_pass_the_outlier_rule():
    """No innocent shadow of the shipped discriminators is refused (the overlap shadows, the
    highest, sit at p = 0.42 and 0.56 against the held-out references)."""
    from pathlib import Path

    from attribcheck.audit.auditor import Auditor
    from attribcheck.statistical.fit import innocent_profiles

    root = Path(__file__).resolve().parents[1] / "fixtures"
    for keys in (root / "world/emoji/keys/generation", root / "world-partial/emoji-web/keys/detection"):
        ks = KeySet.load(keys)
        assert Auditor(ks, innocents=innocent_profiles(keys / "discriminator.json", ks)).p0 < 0.2


# --- 5. independent keys --------------------------------------------------------------------------


def _rewrite(src, out, edit):
    """A copy of a key set folder with keyset.json edited by `edit(dict)` and its hash recomputed
    (the attacker controls the file; the hash proves only that it is self-consistent)."""
    shutil.copytree(src, out)
    raw = json.loads((out / "keyset.json").read_text())
    edit(raw)
    keys = [Key(k["id"], k["caption"], images.load(out / k["image"]), k["r_source"], k["r_references"])
            for k in raw["keys"]]
    made = KeySet(keys, raw["strategy"], raw["delta_0"], raw["distance"], QueryProtocol(**raw["protocol"]),
                  raw["query_seeds"], raw["source"], raw["reference_roles"], raw["candidates"], raw["selection"])
    raw["content_hash"] = made.content_hash()
    (out / "keyset.json").write_text(json.dumps(raw))
    return out


def test_one_key_copied_under_twelve_ids_is_refused(tmp_path, world):
    def copy(raw):
        raw["keys"] = [{**raw["keys"][0], "id": f"copy-{i}"} for i in range(12)]

    folder = _rewrite(world["keys"], tmp_path / "ks", copy)
    with pytest.raises(InputError, match=r"keyset\.json: keys: keys 'copy-0' and 'copy-1' repeat one caption"):
        KeySet.load(folder)


def test_a_caption_repeated_up_to_case_and_spaces_is_refused(tmp_path, world):
    def recaption(raw):
        raw["keys"][5]["caption"] = "  " + raw["keys"][2]["caption"].upper().replace(" ", "   ") + "\n"

    folder = _rewrite(world["keys"], tmp_path / "ks", recaption)
    with pytest.raises(InputError, match=r"keys 'k2' and 'k5' repeat one caption"):
        KeySet.load(folder)


def test_one_picture_under_two_captions_is_refused_at_save_and_at_load(tmp_path, world):
    """The same image (plus a little noise) under another caption: within half of delta_0 of
    the first, one piece of evidence counted twice."""
    def picture(raw):
        raw["keys"][7]["image"] = raw["keys"][3]["image"]

    folder = _rewrite(world["keys"], tmp_path / "ks", picture)
    with pytest.raises(InputError, match=r"keys 'k3' and 'k7' lie 0\.0000 apart, within half of delta_0"):
        KeySet.load(folder)
    ks = KeySet.load(world["keys"])
    ks.keys[7].image = np.clip(ks.keys[3].image + np.random.default_rng(0).normal(0, 0.02, ks.keys[3].image.shape), 0, 1)
    with pytest.raises(InputError, match=r"keyset\.json: keys: keys 'k3' and 'k7' lie 0\.0[0-9]+ apart"):
        ks.save(tmp_path / "again")
    assert not (tmp_path / "again" / "keyset.json").exists()


def test_the_shipped_key_sets_are_independent():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "fixtures"
    folders = [p.parent for p in root.glob("world*/*/keys/*/keyset.json")]
    assert len(folders) >= 6
    for folder in folders:
        KeySet.load(folder)  # validate: captions and pictures apart


def _apart(ks) -> bool:
    """Every two keys: other captions (whitespace and case aside) and images delta_0 / 2 apart."""
    metric = get_distance(ks.distance)
    forms = [" ".join(c.split()).lower() for c in ks.captions]
    return len(set(forms)) == len(forms) and all(
        metric(ks.images[j], ks.images[i]) >= ks.delta_0 / 2 for j in range(len(ks)) for i in range(j))


def test_selection_never_produces_what_validate_refuses(tmp_path):
    """Detection over a pool where one caption comes twice (up to case and spaces), each time
    with a picture the source reproduces, and Baseline 2 without `distinct` over copies of a
    few images: both key sets keep one of each and save."""
    from attribcheck.data.dataset import CaptionDataset, Sample
    from attribcheck.keys.select import DetectionSelector, RandomSelector
    from tests.test_selection import MEMORIZED, PROMPTS, Model, context, picture

    other = picture("another", "picture")
    ctx = context()
    ctx.source = Model("source", frozenset(MEMORIZED), copies={"  PROMPT 0": other})
    image = lambda p: ctx.source.generate([p], [0])[0] if p in MEMORIZED else picture("train", p)  # noqa: E731
    pool = CaptionDataset([Sample(f"id{i}", p, image(p)) for i, p in enumerate(PROMPTS)]
                          + [Sample("again", "  PROMPT 0", other)])
    ks = DetectionSelector().select(ctx, pool)
    assert _apart(ks) and ks.selection["counts"]["not_independent"] == 1
    ks.save(tmp_path / "detection")

    samples = []
    for i in range(12):
        samples.append(Sample(f"img{i}", f"prompt {i}", picture("train", i)))
        samples += [Sample(f"img{i}~c{c}", f"prompt {i}", picture("train", i)) for c in range(1, 8 if i < 3 else 1)]
    plain = RandomSelector(k=10, distinct=False).select(context(), CaptionDataset(samples, "d_s"))
    assert _apart(plain) and plain.selection["counts"]["not_independent"] > 0
    plain.save(tmp_path / "random")
