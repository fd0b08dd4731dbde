"""Early stopping gives the full audit's verdict, from fewer queries, and says what it asked."""
from __future__ import annotations

import json

import numpy as np
import pytest

from attribcheck.audit.auditor import Auditor
from attribcheck.audit.early_stop import audit_early, settled, verdict_at
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.models.protocol import QueryProtocol
from tests.folder_world import PRIVATE

pytest_plugins = ["pytester"]

K, SEEDS, DELTA_0 = 24, [0, 1, 2, 3], 0.15
RMS = {"name": "rms", "side": None}


def keyset(rng) -> KeySet:
    """K keys (mid-grey textures, so key + offset never clips) and two calibration references,
    one of which reproduces a few keys: p0 and the innocent level both above zero."""
    keys = []
    for i in range(K):
        img = (0.35 + 0.3 * rng.random((16, 16, 3))).astype(np.float32)
        refs = {"cal-a": 0.3, "cal-b": 0.1 if i < 3 else 0.3}
        keys.append(Key(f"k{i}", f"caption {i}", img, 0.01, refs))
    return KeySet(keys, "detection", DELTA_0, RMS, QueryProtocol(), SEEDS,
                  reference_roles={"cal-a": "calibration", "cal-b": "calibration"}, candidates=K,
                  selection=PRIVATE)


class Offsets:
    """Answers the key image shifted by a chosen constant per (key, seed): RMS = that constant."""

    def __init__(self, ks: KeySet, d: np.ndarray):
        self.name, self.d, self.asked = "offsets", d, 0
        self.by_caption = {c: (i, img) for i, (c, img) in enumerate(zip(ks.captions, ks.images))}
        self.seed_index = {s: j for j, s in enumerate(ks.query_seeds)}

    def generate(self, prompts, seeds):
        self.asked += len(prompts)
        out = []
        for p, s in zip(prompts, seeds):
            i, img = self.by_caption[p]
            out.append(np.asarray(img, np.float32) + np.float32(self.d[i, self.seed_index[s]]))
        return out


def suspects(rng, n: int):
    """Suspects across the whole range: each (key, seed) matches with the suspect's own rate."""
    for j in range(n):
        rate = j / (n - 1)
        hit = rng.random((K, len(SEEDS))) < rate
        yield np.where(hit, rng.uniform(0.01, 0.14, hit.shape), rng.uniform(0.16, 0.34, hit.shape))


def check_against_the_full_audit(chunk) -> int:
    """60 suspects across the range, early-stopped and full: the checks; returns queries saved."""
    rng = np.random.default_rng(0)
    ks = keyset(rng)
    auditor = Auditor(ks, alpha=0.01, r_min=0.3)  # 24 keys: the default r_min clears nobody (test_clean_rule.py)
    seen, saved = set(), 0
    for d in suspects(rng, 60):
        full_gen, early_gen = Offsets(ks, d), Offsets(ks, d)
        full = auditor.audit(full_gen, "s")
        early, queries = audit_early(auditor, early_gen, "s", chunk)
        assert early.verdict == full.verdict
        seen.add(full.verdict)
        assert queries.asked == early_gen.asked <= full_gen.asked == queries.full
        saved += queries.full - queries.asked
        for i, asked in enumerate(queries.seeds):
            assert asked == SEEDS[:len(asked)]  # in order
            if chunk is None:
                assert asked  # a whole round at a time: every key asked at least once
            if not asked:
                assert early.distances[i] == 1.0 and early.best_seeds[i] == -1  # a miss at the bound
            if early.distances[i] < DELTA_0:
                assert full.distances[i] < DELTA_0  # a match so far is a match of the full audit
            if len(asked) == len(SEEDS):
                assert early.distances[i] == pytest.approx(full.distances[i], abs=1e-6)
                assert early.best_seeds[i] == full.best_seeds[i]
        rounds = max(len(a) for a in queries.seeds)
        misses = [len(a) for i, a in enumerate(queries.seeds) if not early.distances[i] < DELTA_0]
        # a key not matched is asked every round until the stop (the stopping round: perhaps not yet)
        assert all(n in (rounds, rounds - 1) for n in misses)
        if chunk is None:
            assert all(n == rounds for n in misses)
        undecided = sum(1 for n in misses if n < len(SEEDS))
        if undecided:  # it stopped with answers still to ask: the verdict was fixed by then
            assert settled(auditor, early.matches, undecided, K) == full.verdict
        # the evidence is on the same side of every threshold as the full audit's
        assert early.matches <= full.matches
    assert seen == {"attributed", "inconclusive", "clean"}  # the check covered every verdict
    assert saved > 0
    return saved


@pytest.mark.parametrize("chunk", [None, 1, 5])  # a round in one batch (a model); key by key (an API)
def test_early_stopping_gives_the_full_audits_verdict_with_fewer_queries(chunk):
    check_against_the_full_audit(chunk)


def test_key_by_key_saves_more_than_whole_rounds():
    assert check_against_the_full_audit(1) > check_against_the_full_audit(None)


def test_settled_only_when_every_final_count_agrees():
    rng = np.random.default_rng(1)
    auditor = Auditor(keyset(rng), alpha=0.01, r_min=0.3)
    verdicts = [verdict_at(auditor, m, K) for m in range(K + 1)]
    assert verdicts[0] == "clean" and verdicts[-1] == "attributed"
    for m in range(K + 1):
        for u in range(K - m + 1):
            expected = verdicts[m] if len(set(verdicts[m:m + u + 1])) == 1 else None
            assert settled(auditor, m, u, K) == expected


def test_plugin_and_report_mark_what_was_not_asked(pytester, world):
    from tests.folder_world import HONEST, manifest_text

    pytester.makepyfile(test_instance=(__import__("pathlib").Path(__file__).resolve().parents[1]
                                       / "suites" / "test_instance.py").read_text())
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    for flag, name in (([], "full.json"), (["--attrib-early-stop"], "early.json")):
        r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--attrib-json", name, *flag)
        r.assert_outcomes(passed=len(HONEST) + 1, warnings=r.parseoutcomes().get("warnings", 0))
    full, early = (json.loads(pytester.path.joinpath(n).read_text()) for n in ("full.json", "early.json"))
    rows = {s["name"]: s for s in full["audits"][0]["suspects"]}
    early_rows = {s["name"]: s for s in early["audits"][0]["suspects"]}
    for name, row in rows.items():
        e = early_rows[name]
        assert e["instance"]["verdict"] == row["instance"]["verdict"]
        assert "queries" not in row["instance"] or row["instance"]["queries"] is None
        assert e["instance"]["early_stop"] is True
        assert e["instance"]["queries"] == sum(len(k["seeds_queried"]) for k in e["keys"])
        assert e["instance"]["queries_full"] == len(e["keys"]) * 2
        assert all(k.get("seeds_queried") is None for k in row["keys"])
    # the infringer matches every key at its first seed: half the queries
    assert early_rows["infringer"]["instance"]["queries"] == len(early_rows["infringer"]["keys"])
