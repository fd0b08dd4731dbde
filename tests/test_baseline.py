"""Regression baselines: `--attrib-baseline-update` records, a later run compares and fails
with a diff table naming the suspect; a missing baseline names the command that creates it;
a new source checkpoint's lost keys and the re-selection advice. Over the torch-free folder
world, end to end with pytester."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from attribcheck.baseline.compare import Tolerance, compare, table
from attribcheck.baseline.selfcheck import advice, lost_keys
from tests.folder_world import HONEST, manifest_text

pytest_plugins = ["pytester"]
SUITES = Path(__file__).resolve().parents[1] / "suites"


@pytest.fixture
def suite(pytester, world):
    pytester.makepyfile(test_instance=(SUITES / "test_instance.py").read_text(),
                        test_baseline=(SUITES / "test_baseline.py").read_text())
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    return pytester


def run(suite, *args):
    return suite.runpytest("-p", "no:cacheprovider", *args)


def test_update_then_pass_then_an_edited_suspect_fails_with_a_diff_table(suite):
    res = run(suite, "--attrib-baseline-update")
    res.assert_outcomes(passed=5)  # 3 suspects + the self-check + the manifest's baseline
    res.stdout.fnmatch_lines(["*attribcheck baselines written*", "baselines/digits.json"])
    path = suite.path / "baselines/digits.json"
    text = path.read_text()
    base = json.loads(text)
    assert text == json.dumps(base, indent=2, sort_keys=True) + "\n"  # sorted keys, one suspect per block
    assert set(base["suspects"]) == {"infringer", "innocent", "partial"} and base["source"]["verdict"] == "attributed"
    inf = base["suspects"]["infringer"]
    assert inf["verdict"] == "attributed" and inf["conf"] == 1.0 and len(inf["distances"]) == 20
    assert all(round(d, 4) == d for d in inf["distances"].values())
    assert base["keyset"]["k"] == 20 and len(base["keyset"]["content_hash"]) == 64

    run(suite).assert_outcomes(passed=5)  # unchanged models: the comparison passes

    # edit the infringer's stored distances: two keys past the tolerance, one within it
    ids = sorted(inf["distances"])
    inf["distances"][ids[0]] += 0.1
    inf["distances"][ids[1]] += 0.03
    inf["distances"][ids[2]] += 0.015
    path.write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")
    res = run(suite)
    res.assert_outcomes(passed=4, failed=1)
    out = res.stdout.str()
    assert "test_matches_baseline[digits]" in out
    assert "digits: 2 differences from the baseline baselines/digits.json past tolerance (distance 0.02, conf 0.1)" in out
    res.stdout.re_match_lines([r".*suspect\s+key\s+old\s+new\s+change",
                               rf".*infringer\s+{ids[0]}\s+\d\.\d{{4}}\s+\d\.\d{{4}}\s+-0\.1000",
                               rf".*infringer\s+{ids[1]}\s+\d\.\d{{4}}\s+\d\.\d{{4}}\s+-0\.0300"], consecutive=False)
    assert ids[2] not in out.split("past tolerance")[1].split("If the change")[0]  # within tolerance: not listed
    res.stdout.re_match_lines([r".*review it and re-record: python3 -m pytest .*--attrib-baseline-update$"])
    # a looser tolerance passes the same drift
    run(suite, "--attrib-baseline-tol-distance", "0.2").assert_outcomes(passed=5)


def test_a_changed_verdict_fails_whatever_the_tolerance(suite):
    run(suite, "--attrib-baseline-update").assert_outcomes(passed=5)
    path = suite.path / "baselines/digits.json"
    base = json.loads(path.read_text())
    base["suspects"]["innocent"]["verdict"] = "inconclusive"
    path.write_text(json.dumps(base, indent=2, sort_keys=True))
    res = run(suite, "--attrib-baseline-tol-distance", "1", "--attrib-baseline-tol-conf", "1")
    res.assert_outcomes(passed=4, failed=1)
    res.stdout.re_match_lines([r".*innocent\s+verdict\s+inconclusive\s+clean"])


def test_missing_baseline_names_the_command_that_creates_it(suite):
    res = run(suite, "--attrib-baseline")
    res.assert_outcomes(passed=4, failed=1)
    res.stdout.fnmatch_lines(["*digits: no baseline at baselines/digits.json; create it with: "
                              "python3 -m pytest * --attrib-baseline-update"])
    res = run(suite, "-rs")  # not asked for, none recorded: the test says how to start, and skips
    res.assert_outcomes(passed=4, skipped=1)
    res.stdout.fnmatch_lines(["*no baseline at baselines/digits.json; create it with*"])


def test_a_new_source_checkpoint_lists_its_lost_keys_and_advises_reselection(suite, world):
    run(suite, "--attrib-baseline-update").assert_outcomes(passed=5)
    # the owner's "new checkpoint" reproduces only 4 of the 20 keys
    suite.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST, source="partial"))
    res = run(suite, "-k", "baseline")
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    assert "source self-check: the checkpoint no longer reproduces 16 of 20 keys" in out
    assert "It reproduces 4 of 20 keys (20% < 80%): re-select the key set" in out
    res.stdout.re_match_lines([r".*\(source\)\s+verdict\s+attributed\s+inconclusive"])


def test_compare_tolerances_and_key_set_changes():
    def snap(d, verdict="clean", conf=0.0, h="a" * 64):
        return {"keyset": {"content_hash": h}, "source": None,
                "suspects": {"s": {"verdict": verdict, "conf": conf, "distances": {"k1": d, "k2": 0.3}}}}

    tol = Tolerance(0.02, 0.1)
    assert compare(snap(0.30), snap(0.3199), tol) == []
    [d] = compare(snap(0.30), snap(0.33), tol)
    assert (d.suspect, d.key, d.old, d.new) == ("s", "k1", "0.3000", "0.3300")
    assert [x.key for x in compare(snap(0.3, conf=0.0), snap(0.3, conf=0.15), tol)] == ["conf"]
    assert compare(snap(0.3, conf=0.0), snap(0.3, conf=0.05), tol) == []
    [d] = compare(snap(0.3), snap(0.3, h="b" * 64), tol)
    assert d.key == "key set"
    old = snap(0.3)
    new = {**snap(0.3), "suspects": {"t": old["suspects"]["s"]}}
    assert {(x.suspect, x.new) for x in compare(old, new, tol)} == {("s", "(not audited)"), ("t", "clean")}
    text = table(compare(snap(0.30), snap(0.35), tol))
    assert text.splitlines()[0].split() == ["suspect", "key", "old", "new", "change"] and "+0.0500" in text


def test_selfcheck_advice():
    old = {"distances": {"a": 0.05, "b": 0.1, "c": 0.12, "d": 0.3, "e": 0.01}}
    new = {"distances": {"a": 0.05, "b": 0.2, "c": 0.12, "d": 0.3, "e": 0.01}}
    assert lost_keys(old, new, 0.15) == ["b"]
    assert "no longer reproduces 1 of 5 keys (b)" in advice(old, new, 0.15)
    assert "re-select" in advice(old, new, 0.15)  # 3 of 5 = 60% < 80%
    assert "the key set holds" in advice(old, new, 0.15, reselect=0.5)
    assert advice(old, old, 0.15, reselect=0.5) == ""


def test_early_stopped_runs_compare_verdicts_only_and_never_record(suite):
    run(suite, "--attrib-baseline-update").assert_outcomes(passed=5)
    res = run(suite, "--attrib-early-stop", "-k", "baseline")
    res.assert_outcomes(passed=1)  # same verdicts; its partial distances are not compared
    path = suite.path / "baselines/digits.json"
    base = json.loads(path.read_text())
    base["suspects"]["partial"]["verdict"] = "clean"
    path.write_text(json.dumps(base))
    res = run(suite, "--attrib-early-stop", "-k", "baseline")
    res.assert_outcomes(failed=1)
    res.stdout.re_match_lines([r".*partial\s+verdict\s+clean\s+inconclusive"])
    res = run(suite, "--attrib-early-stop", "--attrib-baseline-update", "-k", "baseline")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*record it without --attrib-early-stop*"])


def test_self_check_warns_to_reselect_without_a_baseline(suite, world, tmp_path):
    # a "new checkpoint" that reproduces 16 of 20 keys: attributed, but below 0.9 of its keys
    res = run(suite, "-k", "source", "--attrib-reselect-below", "0.9")
    res.assert_outcomes(passed=1, deselected=4)
    assert "re-select" not in res.stdout.str()  # the world's source reproduces all 20
    from attribcheck.assertions import AttributionWarning, assert_source_reproduces
    from attribcheck.audit.verdict import Verdict

    v = Verdict("source", "attributed", 0.8, 16, 20, 0.1, 1e-9, 0.01, 0.15, "generation")
    with pytest.warns(AttributionWarning, match=r"reproduces 16 of 20 keys \(80% < 90%\): re-select"):
        assert_source_reproduces(v, 0.9)
