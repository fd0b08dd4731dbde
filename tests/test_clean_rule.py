"""A clean verdict must rule something out (issue 19, item 2).

Hostile cases, each clean under the rule this replaced ("no more keys than the innocent
references"): a key set that cannot decide (2 keys, innocents at 43% of the keys, random keys
the source reproduces half of), no innocent model at all, and answers that carry no
information about their captions (one image for every caption, pure noise).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from attribcheck import images
from attribcheck.audit import score
from attribcheck.audit.auditor import Auditor
from attribcheck.audit.power import power_report
from attribcheck.audit.run import audit_suspect
from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, DEFAULT_R_MIN, INCONCLUSIVE, decide
from attribcheck.errors import InputError
from attribcheck.evidence.page import headline
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.manifest import Manifest
from attribcheck.models.spec import SuspectSpec
from attribcheck.models.folder_generator import collect
from attribcheck.models.protocol import QueryProtocol
from tests.folder_world import PRIVATE, MapGenerator, manifest_text

DOCS = Path(__file__).resolve().parent.parent / "docs"
HIT, MISS = 0.05, 0.4


def keyset(k: int, cal_hits: int = 0, source_hits: int | None = None, references: bool = True) -> KeySet:
    """k keys; a calibration reference reproducing the first `cal_hits`; the source reproducing
    the first `source_hits` (default all)."""
    source_hits = k if source_hits is None else source_hits
    keys = [Key(str(i), f"c{i}", np.zeros((4, 4, 3), np.float32), HIT if i < source_hits else MISS,
                {"base": MISS, "cal": HIT if i < cal_hits else MISS} if references else {}) for i in range(k)]
    roles = {"base": "selection", "cal": "calibration"} if references else {}
    return KeySet(keys, "generation", 0.15, {"name": "rms"}, QueryProtocol(), [0], reference_roles=roles,
                  selection=PRIVATE)


def dist(m: int, k: int) -> np.ndarray:
    return np.r_[np.full(m, HIT), np.full(k - m, MISS)]


# -- the rule on recorded distances -------------------------------------------------------------

def test_innocents_at_43_percent_clear_no_infringer():
    # digits, random keys: innocents reproduce 13 of 30, so an infringer at 12 of 30 was clean
    v = Auditor(keyset(30, cal_hits=13)).score("infringer", dist(12, 30))
    assert v.p_value >= v.alpha and v.conf <= v.innocent_level  # the old rule's clean
    assert v.verdict == INCONCLUSIVE and v.rate_bound > v.r_min
    assert "cannot rule out an infringer inheriting 10% of the keys with 30 keys" in v.reason()


def test_two_keys_decide_nothing():
    for m in (0, 1):
        assert Auditor(keyset(2)).score("s", dist(m, 2)).verdict != CLEAN


def test_one_of_30_is_no_clean_verdict():
    # the partial world's infringer-rho0.3-s0 under Strategy 2: 1 of 30, innocents at 1 of 30
    v = Auditor(keyset(30, cal_hits=1)).score("infringer", dist(1, 30))
    assert v.verdict == INCONCLUSIVE and v.rate_bound == pytest.approx(score.rate_upper(1, 30))


def test_random_keys_the_source_half_reproduces_clear_nobody_at_zero():
    # the partial world's random keys: the source reproduces 15 of 30; an infringer at 0 of 30
    # inherited 0 of 15, which rules out little
    half = Auditor(keyset(30, source_hits=15)).score("infringer", dist(0, 30))
    assert half.source_rate == 0.5 and half.verdict == INCONCLUSIVE
    assert half.rate_bound == pytest.approx(score.rate_upper(0, 30) / 0.5)
    assert "the source reproduces (15 of 30)" in half.reason()
    full = Auditor(keyset(30)).score("innocent", dist(0, 30))
    assert full.verdict == CLEAN and full.rate_bound < full.r_min == DEFAULT_R_MIN
    assert "rules out" in full.reason() and "10%" in full.reason() and "r_min=0.1" in full.summary()


def test_no_innocent_model_clears_nobody():
    auditor = Auditor(keyset(40, references=False))
    assert auditor.p0 == 0.5 and not auditor.null_models
    v = auditor.score("noise", dist(0, 40))
    assert v.verdict == INCONCLUSIVE and v.innocent_level is None
    assert "no innocent model" in v.reason()
    page = headline({"verdict": v.verdict, "matches": 0, "k": 40, "p_value": 1.0, "alpha": 0.01,
                     "innocent_level": None, "rate_bound": v.rate_bound, "r_min": v.r_min, "source_rate": 1.0})
    assert "held-out innocent models do" not in page and "no innocent model" in page


def test_a_larger_r_min_clears_smaller_key_sets():
    # K = 20 rules out no less than 14% at 95%: the default cannot clear it, r_min = 0.2 can
    assert Auditor(keyset(20)).score("s", dist(0, 20)).verdict == INCONCLUSIVE
    assert Auditor(keyset(20), r_min=0.2).score("s", dist(0, 20)).verdict == CLEAN
    with pytest.raises(InputError, match="r_min"):
        Auditor(keyset(20), r_min=0.0)


def test_decide_never_clears_without_a_bound_below_r_min():
    assert decide(0.5, 1e-4, 0.01, 0.05, 1.0, 0.1) == ATTRIBUTED
    assert decide(0.0, 1.0, 0.01, 0.05, 0.09, 0.1) == CLEAN
    assert decide(0.0, 1.0, 0.01, 0.05, 0.1, 0.1) == INCONCLUSIVE  # the bound must lie below r_min
    assert decide(0.0, 1.0, 0.01, None, 0.0, 0.1) == INCONCLUSIVE  # no innocent model measured


def test_power_states_what_a_key_set_can_clear():
    assert "clean" in power_report(30, 0.05, 0.01).summary() and "0.095" in power_report(30, 0.05, 0.01).summary()
    twelve = power_report(12, 0.12, 0.01).summary()
    assert "cannot rule out an infringer inheriting 10%" in twelve and "29 keys" in twelve


def test_manifest_r_min(tmp_path, world):
    p = tmp_path / "m.toml"
    p.write_text(manifest_text(world, "m", {}, r_min=0.2))
    assert Manifest.load(p).r_min == 0.2
    p.write_text(manifest_text(world, "m", {}, r_min=None))
    assert Manifest.load(p).r_min == DEFAULT_R_MIN
    for bad in (0, 1.5, "x"):
        p.write_text(manifest_text(world, "m", {}, r_min=bad))
        with pytest.raises(InputError, match="m.toml: audit.r_min"):
            Manifest.load(p)


# -- the project's own benches, rescored --------------------------------------------------------

def rescore(old: str, m: int, k: int, source: float, has_innocents: bool = True) -> str:
    """A stored verdict under the clean rule: the new rule only adds conditions to 'clean'
    (attributed and the innocent-level test are unchanged)."""
    if old != CLEAN:
        return old
    return decide(0.0, 1.0, 0.01, 0.0 if has_innocents else None, score.inheritance_upper(m, k, source),
                  DEFAULT_R_MIN)


def stored_rows():
    """(file, label, expect, old verdict, m, k, source share) for every stored verdict."""
    bench = json.loads((DOCS / "bench_instance.json").read_text())
    for world, d in bench["datasets"].items():
        for strategy, rows in d["verdicts"].items():
            for name, v in rows.items():
                expect = "infringing" if name.startswith("infringer") or name == "source" else "innocent"
                yield ("instance", f"{world}/{strategy}/{name}", expect, v["verdict"], v["matches"], v["k"],
                       d["source_conf"][strategy])
    for f in ("bench_robust.json", "bench_robust_partial.json"):
        d = json.loads((DOCS / f).read_text())
        for r in d["rows"]:
            for col, conf in (("verdict", "conf"), ("verdict_audit", "conf"), ("verdict_declared", "conf_declared")):
                if r.get(col):
                    yield (f, f"{r['suspect']}/{r['change']}/{r['metric']}/{col}", r["expect"], r[col],
                           round(r[conf] * d["k"]), d["k"], 1.0)


def evade_rows():
    """(label, expect, level, verdict, row) for every point of bench evade, both levels."""
    d = json.loads((DOCS / "bench_evade.json").read_text())
    for r in d["rows"]:
        for level in ("instance", "statistical"):
            if r.get(level):
                yield f"{r['subject']}/{r['evasion']}/{r['strength']}", r["expect"], level, r[level]["verdict"], r


# how long the partial world's suspects train (2,500 steps)
SUSPECT_STEPS = json.loads((DOCS.parent / "fixtures" / "world-partial" / "world.json").read_text())["suspect_steps"]


def test_no_stored_infringer_is_clean(capsys):
    # the benches were re-run under the clean rule (2026-12-07; before it, 14 infringer rows of
    # bench instance and bench robust were clean): none is now, in any bench, at either level
    rows = list(stored_rows())
    assert len(rows) > 800
    assert [r[1] for r in rows if r[2] == "infringing" and r[3] == CLEAN] == []
    evade = list(evade_rows())
    assert len(evade) > 80
    # one measured exception: an infringer washed longer on real pairs than it was ever trained
    # (4,000 steps at its own rate) keeps no trace either level can read (0/39, P 0.02, its
    # distances inside the innocents' range); it is clean, and clean only with both levels agreeing
    cleared = [r for r in evade if r[1] == "infringing" and r[3] == CLEAN]
    for label, _, level, _, row in cleared:
        assert row["evasion"] == "wash" and row["strength"]["steps"] > SUSPECT_STEPS, label
        assert level == "instance" and row["statistical"]["p_infringing"] <= 0.1, label
    assert len(cleared) <= 1
    # and what is stored obeys the rule: rescoring a stored verdict changes none
    assert [r[1] for r in rows if rescore(r[3], r[4], r[5], r[6]) != r[3]] == []
    inn = [r for r in rows if r[2] == "innocent"]
    with capsys.disabled():
        print(f"\nstored rows {len(rows)} + {len(evade)} evade: infringers clean 0 + {len(cleared)} washed "
              f"past their training; innocents clean "
              f"{sum(r[3] == CLEAN for r in inn)} of {len(inn)}")


def test_no_stored_innocent_is_attributed():
    # issue 19's other half, on what the audit outputs (bench robust's plain "verdict" column is
    # a reading the audit does not make: answers read against the untouched null). Until keys
    # had to state their public check, the emoji world's overlap innocent was attributed with
    # Strategy 1 and random keys selected without one (11 and 13 of 30): now inconclusive
    as_audited = [r for r in stored_rows() if r[0] == "instance" or r[1].endswith(("/verdict_audit", "/verdict_declared"))]
    assert len(as_audited) > 400
    accused = [r[1] for r in as_audited if r[2] == "innocent" and r[3] == ATTRIBUTED]
    accused += [label for label, expect, _, verdict, _ in evade_rows() if expect == "innocent" and verdict == ATTRIBUTED]
    assert accused == []
    overlap = json.loads((DOCS / "bench_instance.json").read_text())["datasets"]["emoji"]["verdicts"]
    for strategy in ("detection", "random"):
        v = overlap[strategy]["innocent-overlap-s0"]
        assert v["p_value"] < v["alpha"] and v["verdict"] == INCONCLUSIVE and "public training data" in v["withheld"]


# -- answers that carry no information about their captions -------------------------------------

K_INFO = 40


@pytest.fixture(scope="module")
def info_world(tmp_path_factory):
    from sklearn.datasets import load_digits

    digits = load_digits()
    pics = [images.resize(images.to_array(d / 16.0), 16) for d in digits.images[:400]]
    labels = list(digits.target[:400])
    captions = [f"a handwritten {labels[i]}, sample {i}" for i in range(K_INFO)]

    def other(i: int, start: int) -> np.ndarray:
        return pics[next(j for j in range(start + i, 400) if labels[j] != labels[i])]

    keys_img = {c: pics[i] for i, c in enumerate(captions)}
    innocent = {c: other(i, 100) for i, c in enumerate(captions)}
    calib = {c: other(i, 250) for i, c in enumerate(captions)}
    one = innocent[captions[0]]  # one plausible image, whatever the caption
    rng = np.random.default_rng(0)
    noise = {c: images.resize_to(rng.random((10, 10, 3)).astype(np.float32), 16, 16) for c in captions}

    class Noise:  # blotches as sharp as the keys: the conformance check lets them through
        name = "noise"

        def generate(self, prompts, seeds):
            return [images.resize_to(np.random.default_rng([int(s), sum(map(ord, p))]).random((10, 10, 3)).astype(
                np.float32), 16, 16) for p, s in zip(prompts, seeds)]

    root = tmp_path_factory.mktemp("info")
    seeds = [0, 1, 2]
    gens = {"infringer": MapGenerator(keys_img, 0.03), "innocent": MapGenerator(innocent, 0.01),
            "one-image": MapGenerator({c: one for c in captions}, 0.01), "noise": Noise(),
            "fixed-noise": MapGenerator(noise, 0.0)}
    folders = {n: collect(g, [c for c in captions for _ in seeds], seeds * K_INFO, root / n) for n, g in gens.items()}
    from attribcheck.metrics.distance import get_distance

    d = get_distance({"name": "rms", "side": None})
    keys = [Key(f"k{i}", c, keys_img[c], 0.0, {"calib": d(calib[c], keys_img[c])}) for i, c in enumerate(captions)]
    ks = KeySet(keys, "detection", 0.15, {"name": "rms", "side": None}, QueryProtocol(), seeds,
                reference_roles={"calib": "calibration"}, candidates=K_INFO, selection=PRIVATE)
    return Auditor(ks), folders


def _audit(info_world, name: str, expect: str):
    auditor, folders = info_world
    return audit_suspect(auditor, SuspectSpec(name, folders[name], expect, "folder"))


@pytest.mark.parametrize("name", ["one-image", "noise"])
def test_answers_that_ignore_their_captions_are_never_clean(info_world, name):
    r = _audit(info_world, name, "innocent")
    assert r.error is None, r.error
    assert r.verdict.verdict == INCONCLUSIVE and r.verdict.departure and "caption" in r.verdict.departure
    assert r.caption_info is not None and r.caption_info.departs


def test_genuine_answers_are_not_flagged(info_world):
    inn, inf = _audit(info_world, "innocent", "innocent"), _audit(info_world, "infringer", "infringing")
    assert not inn.caption_info.departs and not inf.caption_info.departs
    assert inn.verdict.verdict == CLEAN and inf.verdict.verdict == ATTRIBUTED


def test_a_fixed_answer_per_caption_is_information(info_world):
    # one noise image per caption, the same for every seed: the answers differ by caption, so
    # they carry information about it (this is no blob); the bound decides, not the departure
    r = _audit(info_world, "fixed-noise", "innocent")
    assert not r.caption_info.departs and r.verdict.departure is None


def test_the_audit_line_and_report_say_what_clean_rules_out(tmp_path, world, capsys):
    from attribcheck.cli import main

    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", {"innocent": "innocent"}))  # r_min 0.15: 20 keys
    assert main(["audit", "--manifest", str(m), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "rules out, at 95% confidence, an infringer inheriting 15% of the keys" in out
    rows = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["audits"][0]["suspects"]}
    v = rows["innocent"]["instance"]
    assert v["verdict"] == CLEAN and v["rate_bound"] < v["r_min"] == 0.15 and v["source_rate"] == 1.0
    assert v["caption_info"]["p_value"] < 0.01 and "This rules out an infringer inheriting 15%" in headline(v)


# -- a clean verdict needs the statistical level's agreement --------------------------------------

class _Discriminator:
    """A StatisticalAuditor stand-in that gives every suspect the same P(infringing)."""

    def __init__(self, p: float, cv: float = 1.0):
        self.p, self.cv, self.seen = p, cv, []

    def verdict(self, name, distances):
        from attribcheck.statistical.verdict import StatisticalVerdict, decide_statistical

        self.seen.append(len(distances))
        return StatisticalVerdict(name, decide_statistical(self.p, 0.9, self.cv, 0.8), self.p, 0.9, self.cv, 0.8,
                                  20, len(distances), "detection")


@pytest.mark.parametrize("p, cv, verdict", [(0.05, 1.0, CLEAN), (0.09, 1.0, CLEAN), (0.12, 1.0, INCONCLUSIVE),
                                            (0.5, 1.0, INCONCLUSIVE), (0.99, 1.0, INCONCLUSIVE),
                                            (0.5, 0.6, CLEAN)])  # a discriminator under its accuracy floor says nothing
@pytest.mark.parametrize("early_stop", [False, True])
def test_clean_needs_the_statistical_level_on_the_innocent_side(info_world, p, cv, verdict, early_stop):
    # bench evade: an infringer washed 2,000 steps matched 0 of 39 keys (clean at the instance
    # level) while the discriminator still gave it P 0.12
    auditor, folders = info_world
    disc = _Discriminator(p, cv)
    r = audit_suspect(auditor, SuspectSpec("innocent", folders["innocent"], "innocent", "folder"), statistical=disc,
                      early_stop=early_stop)
    assert r.error is None, r.error
    assert r.verdict.verdict == verdict and r.verdict.matches == 0
    assert disc.seen == [K_INFO]  # read once, on every key (early stopping asked every query)
    if verdict == INCONCLUSIVE:
        assert r.queries is None and "statistical level does not clear it" in r.verdict.reason()
        assert f"P(infringing) {p:.3f} > 0.1" in r.verdict.withheld
        from attribcheck.report import SuspectReport

        row = SuspectReport.model_validate(r.report(auditor))
        assert row.instance.withheld == r.verdict.withheld and row.outcome == "inconclusive"
    else:
        assert r.verdict.withheld is None


def test_the_statistical_level_never_turns_a_verdict_clean(info_world):
    auditor, folders = info_world
    r = audit_suspect(auditor, SuspectSpec("one-image", folders["one-image"], "innocent", "folder"),
                      statistical=_Discriminator(0.0))
    assert r.verdict.verdict == INCONCLUSIVE and r.verdict.withheld is None and r.verdict.departure


@pytest.mark.parametrize("name", ["innocent", "infringer"])
def test_completing_an_early_stop_asks_nothing_twice_and_gives_the_full_audits_distances(info_world, name):
    # a suspect headed for clean under --early-stop is asked the rest for the statistical level:
    # what early stopping asked is not asked again (it used to rerun the whole audit)
    from attribcheck.audit.early_stop import audit_early
    from attribcheck.models.folder_generator import FolderGenerator

    auditor, folders = info_world
    asked = []

    class Counting(FolderGenerator):
        def generate(self, prompts, seeds):
            asked.extend(zip(prompts, seeds))
            return super().generate(prompts, seeds)

    v, q = audit_early(auditor, Counting(folders[name]), name, None, lambda verdict: True)
    full = auditor.audit(FolderGenerator(folders[name]), name)
    assert len(asked) == len(set(asked)) == q.full == q.asked
    assert v.verdict == full.verdict and np.array_equal(v.distances, full.distances)
    assert list(v.best_seeds) == list(full.best_seeds)
