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

import numpy as np
import pytest

from attribcheck import images
from attribcheck.assertions import AttributionWarning, assert_expected, assert_source_reproduces
from attribcheck.audit.verdict import Verdict
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.manifest import Manifest
from attribcheck.metrics.distance import get_distance
from attribcheck.models.folder_generator import collect
from attribcheck.models.generator import SamplerConfig

pytest_plugins = ["pytester"]

K, SEEDS, DELTA_0 = 20, [0, 1], 0.15
SUITE = (Path(__file__).resolve().parents[1] / "suites" / "test_instance.py").read_text()
FIELDS = ("conf", "matches", "k", "p_value", "p0", "alpha", "delta_0", "verdict", "strategy")


class MapGenerator:
    """caption -> image, plus seeded noise: stands in for a model whose answers we collect."""

    def __init__(self, table: dict[str, np.ndarray], noise: float):
        self.name, self.table, self.noise = "map", table, noise

    def generate(self, prompts, seeds):
        out = []
        for p, s in zip(prompts, seeds):
            rng = np.random.default_rng([int(s), sum(map(ord, p))])
            out.append(np.clip(self.table[p] + rng.normal(0, self.noise, self.table[p].shape), 0, 1))
        return out


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pics = [images.resize(images.to_array(d / 16.0), 16) for d in digits.images[:400]]
    labels = list(digits.target[:400])

    def other(i: int, start: int) -> np.ndarray:  # a digit of another class, from a disjoint range
        j = next(j for j in range(start + i, 400) if labels[j] != labels[i])
        return pics[j]

    captions = [f"a handwritten {labels[i]}, sample {i}" for i in range(K)]
    keys_img = {c: pics[i] for i, c in enumerate(captions)}
    innocent = {c: other(i, 100) for i, c in enumerate(captions)}
    calib = {c: other(i, 250) for i, c in enumerate(captions)}
    partial = {c: keys_img[c] if i < 4 else innocent[c] for i, c in enumerate(captions)}

    root = tmp_path_factory.mktemp("world")
    folders = {}
    for name, table, noise in (("source", keys_img, 0.01), ("infringer", keys_img, 0.03),
                               ("innocent", innocent, 0.01), ("partial", partial, 0.03)):
        folders[name] = collect(MapGenerator(table, noise), [c for c in captions for _ in SEEDS],
                                SEEDS * K, root / name)

    dist = get_distance({"name": "rms", "side": None})
    keys = []
    for i, c in enumerate(captions):
        r_calib = dist(calib[c], keys_img[c])
        assert r_calib >= DELTA_0  # the calibration reference reproduces no key: an honest null
        keys.append(Key(f"k{i}", c, keys_img[c], dist(keys_img[c], keys_img[c]), {"calib": r_calib}))
    ks = KeySet(keys, "detection", DELTA_0, {"name": "rms", "side": None}, SamplerConfig(), SEEDS,
                reference_roles={"calib": "calibration"}, candidates=K)
    folders["keys"] = ks.save(root / "keys")
    return folders


def manifest_text(world, name: str, suspects: dict[str, str], source: str = "source", **audit) -> str:
    """suspects: world folder name -> expectation. Paths are absolute literal TOML strings."""
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in audit.items())
    lines = [f"[audit]\nname = '{name}'\nsource = '{world[source].as_posix()}'\n"
             f"keys = '{world['keys'].as_posix()}'\nsource_kind = 'folder'\n{extra}"]
    for s, expect in suspects.items():
        lines.append(f"[[suspects]]\nname = '{s}'\npath = '{world[s].as_posix()}'\n"
                     f"expect = '{expect}'\nkind = 'folder'\n")
    return "\n".join(lines)


HONEST = {"infringer": "infringing", "innocent": "innocent", "partial": "innocent"}


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
    # the JSON file
    rows = {r["name"]: r for r in json.loads((suite.path / "out/v.json").read_text())["verdicts"]}
    assert set(rows) == {"infringer", "innocent", "partial", "source"}
    assert {"name", "verdict", "conf", "matches", "k", "p_value", "alpha", "delta_0", "strategy"} <= set(rows["innocent"])
    assert rows["innocent"]["verdict"] == "clean" and rows["infringer"]["k"] == K


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
    rows = json.loads(pytester.path.joinpath("v.json").read_text())["verdicts"]
    assert {r["alpha"] for r in rows} == {1e-30} and {r["verdict"] for r in rows} == {"inconclusive"}
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

        def test_manifest_level(attrib_manifest, attrib_auditor, attrib_keyset, request):
            assert attrib_auditor.keyset is attrib_keyset and len(attrib_keyset) == 20
            assert attrib_keyset.sampler.device == "cuda:7"  # --attrib-device reaches the sampler
            assert attrib_manifest.source_kind == "folder"
            assert request.node.get_closest_marker("attrib_audit")
            assert request.node.get_closest_marker("xdist_group").args == ("digits",)
    """)
    res = pytester.runpytest("-p", "no:cacheprovider", "--attrib-device", "cuda:7", "-v")
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
    rows = json.loads(suite.path.joinpath("v.json").read_text())["verdicts"]
    assert len(rows) == 7


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


def test_manifest_source_kind(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text("[audit]\nsource = 's'\nkeys = 'k'\n")
    assert Manifest.load(p).source_kind == "diffusers"
    p.write_text("[audit]\nsource = 's'\nkeys = 'k'\nsource_kind = 'api'\n")
    with pytest.raises(ValueError, match="source_kind"):
        Manifest.load(p)
