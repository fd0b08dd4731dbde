"""The pytest plugin, end to end with `pytester`, over a small honest world without torch.

The world: 20 key samples (digits from sklearn, 16x16 RGB), a key set whose calibration
reference misses every key, and suspects as collected-image folders: a source and an
infringer that return the key images plus a little noise, an innocent that returns other
digits, and a partial copier that reproduces 4 of 20 keys (inconclusive).
"""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from attribcheck.assertions import AttributionWarning, assert_expected, assert_source_reproduces
from attribcheck.audit.verdict import Verdict
from attribcheck.errors import InputError
from attribcheck.manifest import Manifest

pytest_plugins = ["pytester"]

from tests.folder_world import DELTA_0, HONEST, K, SEEDS, manifest_text
SUITE = (Path(__file__).resolve().parents[1] / "suites" / "test_instance.py").read_text()
FIELDS = ("conf", "matches", "k", "p_value", "p0", "alpha", "delta_0", "verdict", "strategy")




@pytest.fixture
def suite(pytester, world):
    """The shipped suite with one honest manifest beside it."""
    pytester.makeini("[pytest]\njunit_family = xunit1\n")
    pytester.makepyfile(test_instance=SUITE)
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    return pytester


def test_honest_suite_passes_and_reports(suite):
    res = suite.runpytest("-p", "no:cacheprovider", "--junitxml=junit.xml", "--attrib-json=out/v.json", "-rA")
    res.assert_outcomes(passed=4)  # 3 suspects + the source self-check
    out = res.stdout.str()
    assert "PASSED test_instance.py::test_suspect_matches_expectation[digits::infringer]" in out
    assert "AttributionWarning" in out and "partial: expected innocent, found inconclusive" in out
    # the summary table: one row per audited model
    assert out.count("attribcheck verdicts") == 1
    res.stdout.re_match_lines([r".*digits::infringer\s+.*infringing\s+.*attributed\s+.*1\.000\s+.*20/20",
                               r".*digits::innocent\s+.*innocent\s+.*clean\s+.*0\.000\s+.*0/20",
                               r".*digits::partial\s+.*innocent\s+.*inconclusive\s+.*0\.200\s+.*4/20",
                               r".*digits::source\s+.*infringing\s+.*attributed"], consecutive=False)
    # junit (xunit1) carries the evidence of every audit test
    cases = {c.get("name"): c for c in ET.parse(suite.path / "junit.xml").getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in
             cases["test_suspect_matches_expectation[digits::infringer]"].iter("property")}
    assert set(FIELDS) <= set(props) and props["verdict"] == "attributed" and props["matches"] == "20"
    assert props["strategy"] == "detection" and float(props["delta_0"]) == DELTA_0
    # the report: the shipped schema, every suspect with its per-key evidence
    report = json.loads((suite.path / "out/v.json").read_text())
    validate_report(report)
    [audit] = report["audits"]
    rows = {r["name"]: r for r in audit["suspects"]}
    assert set(rows) == {"infringer", "innocent", "partial", "source"} and rows["source"]["role"] == "source"
    assert rows["innocent"]["instance"]["verdict"] == "clean" and rows["infringer"]["instance"]["k"] == K
    assert [r["outcome"] for r in audit["suspects"]] == ["as-expected", "as-expected", "inconclusive", "as-expected"]
    keys = rows["partial"]["keys"]
    assert len(keys) == K and sum(k["matched"] for k in keys) == 4 and {k["best_seed"] for k in keys} <= set(SEEDS)
    assert audit["keyset"]["k"] == K and len(audit["keyset"]["content_hash"]) == 64
    assert all(len(r["fingerprint"]) == 64 for r in rows.values())


def test_flipped_expectation_fails_with_the_evidence(suite, world):
    flipped = {**HONEST, "infringer": "innocent", "innocent": "infringing"}
    suite.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", flipped))
    res = suite.runpytest("-p", "no:cacheprovider")
    res.assert_outcomes(passed=2, failed=2)
    out = res.stdout.str()
    assert "infringer: expected innocent (verdict clean), found attributed" in out
    assert "innocent: expected infringing (verdict attributed), found clean" in out
    for needle in ("conf=1.000", "m/K=20/20", "m/K=0/20", "p-value=", "p0=", "alpha=0.01", "delta_0=0.15"):
        assert needle in out, needle


def test_alpha_override_and_explicit_manifest(pytester, world):
    # no manifest beside the test: only the one passed on the command line is audited
    pytester.makepyfile(test_instance=SUITE)
    pytester.path.joinpath("m").mkdir()
    pytester.path.joinpath("m/one.toml").write_text(manifest_text(world, "one", {"infringer": "infringing"}))
    res = pytester.runpytest("-p", "no:cacheprovider", "--attrib-manifest", "m/one.toml",
                             "--attrib-alpha", "1e-30", "--attrib-json", "v.json")
    # p = p0^20 ~ 1e-17 is no longer below alpha: the infringer (and source) are inconclusive;
    # the infringer's test warns, the source's self-check fails; --attrib-strict fails both
    res.assert_outcomes(failed=1, passed=1)
    assert "alpha=1e-30" in res.stdout.str()
    rows = json.loads(pytester.path.joinpath("v.json").read_text())["audits"][0]["suspects"]
    assert {r["instance"]["alpha"] for r in rows} == {1e-30}
    assert {r["instance"]["verdict"] for r in rows} == {"inconclusive"}
    strict = pytester.runpytest("-p", "no:cacheprovider", "--attrib-manifest", "m/one.toml",
                                "--attrib-alpha", "1e-30", "--attrib-strict")
    strict.assert_outcomes(failed=2)


def test_stale_source_fails_the_self_check(suite, world):
    suite.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", {}, source="innocent"))
    res = suite.runpytest("-p", "no:cacheprovider", "-k", "source")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*source is not attributed to its own keys*stale*m/K=0/20*"])


def test_fixtures_cache_and_device(pytester, world):
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    pytester.makepyfile("""
        import pytest
        seen = {}

        def test_first(attrib_suspect, attrib_verdict):
            seen[attrib_suspect.name] = attrib_verdict

        def test_again(attrib_suspect, attrib_verdict):
            assert seen[attrib_suspect.name] is attrib_verdict  # computed once per session

        def test_manifest_level(attrib_manifest, attrib_auditor, attrib_keyset, attrib_runtime, request):
            assert attrib_auditor.keyset is attrib_keyset and len(attrib_keyset) == 20
            assert attrib_runtime.device == "cuda:7" and attrib_runtime.batch_size == 5  # options reach the runtime
            assert attrib_manifest.source_kind == "folder"
            assert request.node.get_closest_marker("attrib_audit")
            assert request.node.get_closest_marker("xdist_group").args == ("digits",)
    """)
    res = pytester.runpytest("-p", "no:cacheprovider", "--attrib-device", "cuda:7", "--attrib-batch-size", "5", "-v")
    res.assert_outcomes(passed=7)
    res.stdout.fnmatch_lines(["*test_manifest_level[[]digits[]] PASSED*"])


def test_no_manifest_skips(pytester):
    pytester.makepyfile(test_instance=SUITE)
    res = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    res.assert_outcomes(skipped=2)
    res.stdout.fnmatch_lines(["*no suspects; pass --attrib-manifest*"])


def test_broken_manifest_is_an_error_not_a_skip(suite):
    suite.path.joinpath("digits.toml").write_text("[audit\nname = 'digits'\n")
    res = suite.runpytest("-p", "no:cacheprovider")
    assert res.ret not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert "digits.toml is not valid TOML" in res.stdout.str() + res.stderr.str()


def test_markers_and_options_registered(pytester):
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.attrib_audit:*"])
    res = pytester.runpytest("--help")
    res.stdout.fnmatch_lines(["attribcheck (*):", "*--attrib-manifest=PATH*", "*--attrib-alpha=FLOAT*",
                              "*--attrib-json=PATH*", "*--attrib-device=DEVICE*"])


def test_plugin_imports_without_torch():
    code = ("import sys, attribcheck.plugin; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_xdist_summary_once_and_complete(suite, world):
    pytest.importorskip("xdist")
    suite.path.joinpath("emoji.toml").write_text(
        manifest_text(world, "emoji", {"infringer": "infringing", "innocent": "innocent"}))
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
                                     "--attrib-json", "v.json")
    res.assert_outcomes(passed=7)  # (3 + 1) digits + (2 + 1) emoji
    out = res.stdout.str()
    assert out.count("attribcheck verdicts") == 1
    table = [line.split("│")[0].strip() for line in out.splitlines() if "│" in line]
    assert table == ["digits::infringer", "digits::innocent", "digits::partial", "digits::source",
                     "emoji::infringer", "emoji::innocent", "emoji::source"]
    report = json.loads(suite.path.joinpath("v.json").read_text())
    validate_report(report)
    assert [len(a["suspects"]) for a in report["audits"]] == [4, 3]


def validate_report(report: dict) -> None:
    """Against the schema shipped in the package (which must be the one the code defines)."""
    import jsonschema

    from attribcheck.report import SCHEMA_PATH, json_schema

    shipped = json.loads(SCHEMA_PATH.read_text())
    assert shipped == json.loads(json.dumps(json_schema())), "regenerate attribcheck/schemas/report.schema.json"
    jsonschema.validate(report, shipped)


def test_unauditable_suspect_is_an_error_row_and_a_one_line_failure(suite, world, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "queries.jsonl").write_text('{"prompt": "x", "seed": 0, "file": "../../etc/passwd"}\n')
    world = {**world, "broken": broken}
    suite.path.joinpath("digits.toml").write_text(
        manifest_text(world, "digits", {"broken": "innocent", "infringer": "infringing"}))
    res = suite.runpytest("-p", "no:cacheprovider", "--attrib-json", "v.json", "--attrib-batch-size", "7")
    res.assert_outcomes(passed=2, errors=1)  # an input problem is an error, a contradiction a failure
    res.stdout.fnmatch_lines(["*digits::broken: integrity error: *queries.jsonl*file*"])
    assert "Traceback" not in res.stdout.str()
    report = json.loads(suite.path.joinpath("v.json").read_text())
    validate_report(report)
    rows = {r["name"]: r for r in report["audits"][0]["suspects"]}
    assert rows["broken"]["outcome"] == "error" and rows["broken"]["error"]["kind"] == "integrity"
    assert rows["infringer"]["instance"]["verdict"] == "attributed"  # the others' verdicts are kept
    assert report["runtime"]["batch_size"] == 7


@pytest.mark.parametrize("text, needle", [
    ("alhpa = 0.5", "audit.alhpa: unknown key"),
    ("alpha = 1.5", "audit.alpha: Input should be less than 1"),
    ("threshold = 0.3", "audit.threshold"),
])
def test_bad_manifest_fields_are_usage_errors(suite, world, text, needle):
    suite.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST) .replace(
        "source_kind = 'folder'\n", f"source_kind = 'folder'\n{text}\n"))
    res = suite.runpytest("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.INTERRUPTED  # a collection error: nothing is audited
    assert f"digits.toml: {needle}" in res.stdout.str() and "Traceback" not in res.stdout.str()


def test_two_manifests_with_one_name_are_refused(suite, world):
    suite.path.joinpath("again.toml").write_text(manifest_text(world, "digits", {"infringer": "infringing"}))
    res = suite.runpytest("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    assert "audit.name: 'digits' is also the name of" in res.stdout.str()


# -- the assertions and the manifest field, without pytester --------------------------------

def verdict(v: str, m: int) -> Verdict:
    return Verdict("s", v, m / 20, m, 20, 0.14, 0.5, 0.01, 0.15, "detection")


def test_assert_expected_rules():
    assert_expected(verdict("attributed", 20), "infringing")
    assert_expected(verdict("clean", 0), "innocent")
    for expect in ("innocent", "infringing"):
        with pytest.warns(AttributionWarning, match="inconclusive"):
            assert_expected(verdict("inconclusive", 4), expect)
        with pytest.raises(AssertionError, match="found inconclusive"):
            assert_expected(verdict("inconclusive", 4), expect, strict=True)
    for v, expect in (("attributed", "innocent"), ("clean", "infringing")):
        with pytest.raises(AssertionError, match=r"conf=.*m/K=.*p-value=.*alpha=.*delta_0="):
            assert_expected(verdict(v, 4), expect)
    with pytest.raises(ValueError):
        assert_expected(verdict("clean", 0), "guilty")
    with pytest.raises(AssertionError, match="stale"):
        assert_source_reproduces(verdict("clean", 0))


def test_manifest_source_kind(tmp_path, world):
    p = tmp_path / "m.toml"
    head = f"[audit]\nsource = '{world['source'].as_posix()}'\nkeys = '{world['keys'].as_posix()}'\n"
    p.write_text(head)
    assert Manifest.load(p).source_kind == "diffusers"
    p.write_text(head + "source_kind = 'api'\n")
    with pytest.raises(InputError, match="m.toml: audit.source_kind"):
        Manifest.load(p)


@pytest.mark.parametrize("body, field", [
    ("alpha = 0", "audit.alpha"), ("alpha = -1", "audit.alpha"), ("alpha = nan", "audit.alpha"),
    ("alpha = 1.5", "audit.alpha"), ("alhpa = 0.1", "audit.alhpa"), ("delta_0 = -0.1", "audit.delta_0"),
    ("threshold = 0.3", "audit.threshold"), ("treshold = 0.95", "audit.treshold"),
    ("alpha = '0.01'", "audit.alpha"),
])
def test_manifest_fields_validated_at_load(tmp_path, world, body, field):
    p = tmp_path / "m.toml"
    p.write_text(f"[audit]\nsource = '{world['source'].as_posix()}'\nkeys = '{world['keys'].as_posix()}'\n{body}\n")
    with pytest.raises(InputError, match=f"m.toml: {field}"):
        Manifest.load(p)


@pytest.mark.parametrize("suspect, field", [
    ("expcet = 'innocent'", "suspects.0 (s).expcet"),
    ("expect = 'guilty'", "suspects.0 (s).expect"),
    ("expect = 'innocent'\nkind = 'api'", "suspects.0 (s).kind"),
    ("expect = 'innocent'\npath = 'nowhere'", "suspects.0.path"),
])
def test_suspect_fields_validated_at_load(tmp_path, world, suspect, field):
    p = tmp_path / "m.toml"
    path = "" if "path =" in suspect else f"path = '{world['innocent'].as_posix()}'\n"
    p.write_text(f"[audit]\nsource = '{world['source'].as_posix()}'\nkeys = '{world['keys'].as_posix()}'\n"
                 f"[[suspects]]\nname = 's'\n{path}{suspect}\n")
    with pytest.raises(InputError, match=field.replace("(", r"\(").replace(")", r"\)")):
        Manifest.load(p)


def test_misspelt_suspects_table_is_refused(tmp_path, world):
    p = tmp_path / "m.toml"
    p.write_text(f"[audit]\nsource = '{world['source'].as_posix()}'\nkeys = '{world['keys'].as_posix()}'\n"
                 f"[[suspect]]\nname = 's'\npath = 'x'\nexpect = 'innocent'\n")
    with pytest.raises(InputError, match="m.toml: suspect: unknown key"):
        Manifest.load(p)
