"""Keys that anyone trained on public data reproduces accuse no one.

The attack: the owner's training images are public (or partly so), and a key set is selected
without checking its keys against them. An innocent model trained on the same public images
reproduces those keys as the source does. Measured in bench instance, emoji world: an innocent
trained on half of the public D_S matched 11 of 30 unchecked Strategy 1 keys and was attributed.

A key set may accuse only when its record says how the keys were checked: public images
dropped (`keys select --public`), a twin trained on the source's data as a filter (`--twin`),
or the owner's declaration that the data is private (`--private`). Every other key set can
still clear a suspect or leave it inconclusive, at both levels, and says why up front.
"""
import json

import numpy as np
import pytest

from attribcheck.audit.auditor import Auditor
from attribcheck.audit.early_stop import audit_early
from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, INCONCLUSIVE
from attribcheck.errors import IntegrityError
from attribcheck.keys.keyset import NOT_PUBLIC_CHECKED, Key, KeySet
from attribcheck.models.protocol import QueryProtocol

HIT, MISS, K = 0.05, 0.4, 30
CHECKED = {
    "public": {"thresholds": {"public_images": 89}},
    "twin": {"thresholds": {"filter_only": ["twin"]}},
    "private": {"thresholds": {"data_private": True}},
}
# records that look like a check and are not one: each must leave the keys unable to accuse
FORGED = {
    "no record": {},
    "no public images": {"thresholds": {"public_images": 0, "filter_only": [], "data_private": False}},
    "count as text": {"thresholds": {"public_images": "89"}},
    "count as bool": {"thresholds": {"public_images": True}},
    "negative count": {"thresholds": {"public_images": -3}},
    "private as text": {"thresholds": {"data_private": "yes"}},
    "private as 1": {"thresholds": {"data_private": 1}},
    "twin not a reference": {"thresholds": {"filter_only": ["someone"]}},
    "twin that only calibrated": {"thresholds": {"filter_only": ["cal"]}},
    "twin as text": {"thresholds": {"filter_only": "twin"}},
    "thresholds as list": {"thresholds": [["data_private", True]]},
    "declared at the top": {"data_private": True, "public_images": 89},
}


def keyset(selection: dict) -> KeySet:
    rng = np.random.default_rng(0)
    keys = [Key(str(i), f"caption {i}", rng.uniform(0, 1, (8, 8, 3)).astype(np.float32), HIT,
                {"base": MISS, "twin": MISS, "cal": MISS}) for i in range(K)]
    roles = {"base": "selection", "twin": "selection", "cal": "calibration"}
    return KeySet(keys, "detection", 0.15, {"name": "rms"}, QueryProtocol(), [0], reference_roles=roles,
                  selection=selection)


def overlap_innocent(m: int = 11) -> np.ndarray:
    """An innocent trained on the public images: it reproduces the keys that are public ones."""
    return np.r_[np.full(m, HIT), np.full(K - m, MISS)]


@pytest.mark.parametrize("record", FORGED, ids=list(FORGED))
def test_unchecked_keys_accuse_no_one(record):
    a = Auditor(keyset(FORGED[record]))
    assert a.public_check is None
    v = a.score("overlap-innocent", overlap_innocent())
    assert v.p_value < v.alpha  # what the binomial test alone would have called attributed
    assert v.verdict == INCONCLUSIVE and "public training data" in v.reason() and "11/30" in v.reason()
    # all 30 matched: still no accusation; the power statement says so before any query
    assert a.score("copier", overlap_innocent(K)).verdict == INCONCLUSIVE
    assert a.power().min_conf is None and "no suspect can be attributed" in a.power().summary()


@pytest.mark.parametrize("how", CHECKED)
def test_checked_keys_accuse_and_say_how(how):
    a = Auditor(keyset(CHECKED[how]))
    assert a.public_check
    v = a.score("infringer", overlap_innocent())
    assert v.verdict == ATTRIBUTED and v.withheld is None
    assert "attributed from" in a.power().summary()


def test_unchecked_keys_still_clear():
    """Clearing needs no public check: a suspect that reproduces nothing is cleared either way."""
    assert Auditor(keyset({})).score("innocent", overlap_innocent(0)).verdict == CLEAN


def test_early_stop_never_stops_on_an_accusation_it_cannot_make():
    class Copier:  # answers every caption with its key: every key matched
        name = "copier"

        def __init__(self, ks):
            self.table = dict(zip(ks.captions, ks.images))

        def generate(self, prompts, seeds):
            return [self.table[p] for p in prompts]

    for selection, expected in (({}, INCONCLUSIVE), (CHECKED["private"], ATTRIBUTED)):
        ks = keyset(selection)
        v, _ = audit_early(Auditor(ks), Copier(ks))
        assert v.verdict == expected


def test_statistical_level_withholds_too(tmp_path):
    from attribcheck.statistical.discriminator import ShadowDiscriminator
    from attribcheck.statistical.fit import StatisticalAuditor

    rng = np.random.default_rng(0)
    X = np.r_[rng.uniform(0.3, 0.5, (10, K)), rng.uniform(0.0, 0.1, (10, K))]
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    est = ShadowDiscriminator().fit(X, y)
    for selection, expected in (({}, INCONCLUSIVE), (CHECKED["twin"], ATTRIBUTED)):
        ks = keyset(selection)
        folder = ks.save(tmp_path / ("keys-" + str(bool(selection))))
        est.save(folder / "discriminator.json", keyset_hash=ks.content_hash())
        sv = StatisticalAuditor.for_keyset(folder, KeySet.load(folder)).verdict("s", np.full(K, 0.05))
        assert sv.verdict == expected
        assert (sv.withheld is not None) == (expected == INCONCLUSIVE)
        if sv.withheld:
            assert NOT_PUBLIC_CHECKED in sv.reason()


def test_the_declaration_is_covered_by_the_hash(tmp_path):
    """Adding the declaration to a saved key set afterwards is an altered key set, not a check."""
    folder = keyset({}).save(tmp_path / "keys")
    path = folder / "keyset.json"
    d = json.loads(path.read_text())
    d["selection"] = CHECKED["private"]
    path.write_text(json.dumps(d))
    with pytest.raises(IntegrityError, match="content_hash"):
        KeySet.load(folder)


def test_the_shipped_key_sets_state_their_check():
    """The suites' key sets may accuse, and each says how; the emoji world's Strategy 1 and
    random keys were selected without a public filter from a wholly public D_S, and may not."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "fixtures"
    checked = {p.parent.relative_to(root).as_posix(): KeySet.load(p.parent, verify=False).public_check
               for p in root.glob("*/*/keys/*/keyset.json")}
    assert checked["world/emoji/keys/generation"].startswith("keys reproduced by ref-twin")
    assert "89 public training images" in checked["world-partial/emoji-web/keys/detection"]
    for name in ("world/emoji/keys/detection", "world/emoji/keys/random", "world-partial/emoji-web/keys/random"):
        assert checked[name] is None


def test_an_audit_with_unchecked_keys_says_why_it_accuses_no_one(world, tmp_path, capsys):
    """The whole path, CLI to report and evidence page: the infringer is inconclusive with the
    reason, the source still passes its self-check, and the page says no accusation up front."""
    from dataclasses import replace

    from attribcheck.cli import EXIT_OK, main
    from tests.folder_world import manifest_text

    ks = KeySet.load(world["keys"])
    assert ks.public_check  # the folder world's owner declared its data private
    unchecked = replace(ks, selection={}).save(tmp_path / "keys")
    manifest = tmp_path / "digits.toml"
    manifest.write_text(manifest_text({**world, "keys": unchecked}, "digits",
                                      {"infringer": "infringing", "innocent": "innocent"}))
    rc = main(["audit", "--manifest", str(manifest), "--json", str(tmp_path / "r.json"), "--no-cache",
               "--report", str(tmp_path / "evidence")])
    out = capsys.readouterr().out
    assert rc == EXIT_OK and "no suspect can be attributed" in out  # inconclusive is no failure without --strict
    entry = json.loads((tmp_path / "r.json").read_text())["audits"][0]
    rows = {r["name"]: r for r in entry["suspects"]}
    assert entry["keyset"]["public_check"] is None
    infringer = rows["infringer"]["instance"]
    assert infringer["verdict"] == INCONCLUSIVE and infringer["p_value"] < infringer["alpha"]
    assert "public training data" in infringer["withheld"]
    assert rows["source"]["outcome"] == "as-expected"  # the self-check asks for reproduction, not accusation
    page = next((tmp_path / "evidence").glob("*.html")).read_text()
    assert "No accusation: the keys were not checked against public training data" in page


def test_random_keys_record_no_check_they_did_not_make():
    """Baseline 2 applies no filter: given --public or --twin it used to record them anyway,
    and its keys (a copier's training images) then accused an innocent trained on them."""
    from attribcheck.keys.select import SelectionContext, get_selector

    images = {f"caption {i}": np.random.default_rng(i).uniform(0, 1, (8, 8, 3)).astype(np.float32)
              for i in range(8)}

    class Copier:  # a source that reproduces its training images (and draws something for any other prompt)
        name = "copier"

        def generate(self, prompts, seeds):
            return [images.get(p, images["caption 0"]) for p in prompts]

    from attribcheck.data.dataset import CaptionDataset, Sample

    pool = CaptionDataset([Sample(f"id{i}", c, x) for i, (c, x) in enumerate(images.items())])
    from attribcheck.keys.thresholds import Thresholds

    for extra, want in (({"public": list(images.values())}, None), ({"references": {"twin": Copier()},
                                                                     "filter_only": ("twin",)}, None),
                        ({"private": True}, "declared")):
        ctx = SelectionContext(source=Copier(), references=extra.pop("references", {}), query_seeds=[0],
                               thresholds=Thresholds(mode="fixed", delta_0=0.15), **extra)
        ks = get_selector("random", k=6).select(ctx, pool)
        assert (ks.public_check is None) if want is None else (want in ks.public_check)


def test_early_stop_settles_on_the_reading_so_the_self_check_holds():
    """With unchecked keys, early stopping used to settle at 'inconclusive' after the first
    match (clean out of reach), so the source's p-value rested on one key and its self-check
    failed; it now asks until the reading is settled, as with checked keys."""
    class Source:
        name = "source"

        def __init__(self, ks):
            self.table = dict(zip(ks.captions, ks.images))

        def generate(self, prompts, seeds):
            return [self.table[p] for p in prompts]

    from attribcheck.audit.verdict import reproduces_own_keys

    ks = keyset({})
    v, queries = audit_early(Auditor(ks), Source(ks), chunk=1)
    assert v.verdict == INCONCLUSIVE and v.p_value < v.alpha and "public training data" in v.withheld
    assert reproduces_own_keys(v)
    checked, q2 = audit_early(Auditor(keyset(CHECKED["private"])), Source(ks), chunk=1)
    assert checked.verdict == ATTRIBUTED and q2.asked == queries.asked  # the same queries either way
