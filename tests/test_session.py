"""One manifest, two front ends: `attribcheck audit` and `pytest suites/` go through one
AuditSession, so they agree on verdicts, outcomes and what fails. And the outputs, written
from the attacker's side: a planted link, a folder where a file goes, a row that does not fit."""
from __future__ import annotations

import json
import os
import time

import pytest

from attribcheck.cli import EXIT_CONTRADICTION, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, main
from attribcheck.session import _checked_row, exit_code
from tests.folder_world import HONEST, manifest_text

pytest_plugins = ["pytester"]
from tests.test_plugin import validate_report
from tests.test_statistical_level import INSTANCE_SUITE, STAT_SUITE, fitted  # noqa: F401


def _rows(report: dict) -> dict:
    return {r["name"]: r for r in report["audits"][0]["suspects"]}


def _both(pytester, world, suspects, keys=None, strict=False):
    """The CLI's report and exit code, then the plugin's report and exit code, on one manifest."""
    w = {**world, "keys": keys} if keys is not None else world
    manifest = pytester.path / "digits.toml"
    manifest.write_text(manifest_text(w, "digits", suspects))
    cli_json = pytester.path / "cli.json"
    rc_cli = main(["audit", "-q", "--manifest", str(manifest), "--json", str(cli_json), "--no-cache",
                   *(["--strict"] if strict else [])])
    pytester.makepyfile(test_instance=INSTANCE_SUITE, test_statistical=STAT_SUITE)
    res = pytester.runpytest("-p", "no:cacheprovider", "--attrib-no-cache", "--attrib-json", "plugin.json",
                             *(["--attrib-strict"] if strict else []))
    cli, plugin = json.loads(cli_json.read_text()), json.loads((pytester.path / "plugin.json").read_text())
    validate_report(cli)
    validate_report(plugin)
    return rc_cli, cli, res.ret, plugin


def _same(cli: dict, plugin: dict) -> None:
    a, b = _rows(cli), _rows(plugin)
    assert a.keys() == b.keys()
    for name in a:
        for field in ("outcome", "statistical_outcome"):
            assert a[name].get(field) == b[name].get(field), (name, field)
        assert (a[name].get("instance") or {}).get("verdict") == (b[name].get("instance") or {}).get("verdict")
        assert (a[name].get("statistical") or {}).get("verdict") == (b[name].get("statistical") or {}).get("verdict")


def test_cli_and_plugin_agree_and_both_fail_a_contradiction(pytester, world, fitted):  # noqa: F811
    keys, _, _ = fitted
    rc, cli, ret, plugin = _both(pytester, world, {**HONEST, "infringer": "innocent"}, keys)
    _same(cli, plugin)
    assert _rows(cli)["infringer"]["statistical_outcome"] == "contradiction"
    assert rc == EXIT_CONTRADICTION and ret == pytest.ExitCode.TESTS_FAILED


def test_cli_and_plugin_agree_when_all_is_as_expected(pytester, world, fitted):  # noqa: F811
    keys, _, _ = fitted
    rc, cli, ret, plugin = _both(pytester, world, {"infringer": "infringing"}, keys)
    _same(cli, plugin)
    assert rc == EXIT_OK and ret == pytest.ExitCode.OK


def test_a_key_set_that_fails_to_load_is_an_error_entry_from_both(pytester, world, tmp_path):
    broken = tmp_path / "keys"
    broken.mkdir()
    (broken / "keyset.json").write_text(json.dumps({"format_version": 2, "keys": []}))
    rc, cli, ret, plugin = _both(pytester, world, HONEST, broken)
    for report in (cli, plugin):
        entry = report["audits"][0]
        assert entry["error"]["kind"] == "input" and "keyset.json" in entry["error"]["message"]
    assert rc == EXIT_INPUT and ret == pytest.ExitCode.TESTS_FAILED


def _entry(**suspect) -> list[dict]:
    return [{"name": "a", "suspects": [{"name": "s", "outcome": "as-expected", **suspect}]}]


def test_the_outcome_policy_reads_both_levels():
    assert exit_code(_entry()) == EXIT_OK
    # the statistical level alone contradicting the expectation fails the gate (it used to exit 0)
    assert exit_code(_entry(statistical_outcome="contradiction")) == EXIT_CONTRADICTION
    assert exit_code(_entry(outcome="inconclusive")) == EXIT_OK
    assert exit_code(_entry(outcome="inconclusive"), strict=True) == 2
    assert exit_code(_entry(outcome="error", error={"kind": "integrity", "message": "x"})) == EXIT_INPUT
    # a bug of ours is not the user's bad input
    assert exit_code(_entry(outcome="error", error={"kind": "error", "message": "KeyError"})) == EXIT_INTERNAL
    assert exit_code([{"name": "a", "error": {"kind": "input", "message": "m"}, "suspects": []}]) == EXIT_INPUT


def test_a_row_that_does_not_fit_the_schema_is_an_error_row():
    from attribcheck.audit.run import SuspectResult
    from attribcheck.models.spec import SuspectSpec
    from attribcheck.report import InstanceResult

    class Unfit(SuspectResult):
        def report(self, auditor):
            row = super().report(auditor)
            row.instance = InstanceResult.model_validate({"verdict": "clean", "conf": 2.0})  # refused
            return row

    out = _checked_row(Unfit(SuspectSpec("s", None, "innocent")), None)
    assert out.outcome == "error" and out.error.kind == "error" and out.instance is None


def test_a_row_that_cannot_be_written_loses_no_other_row(tmp_path, world, monkeypatch):
    from attribcheck.audit import run

    real = run.SuspectResult.report

    def broken(self, auditor):
        row = real(self, auditor)
        if self.spec.name == "innocent":
            row.instance.p_value = 7.0  # outside [0, 1]: the report model refuses it
        return row

    monkeypatch.setattr(run.SuspectResult, "report", broken)
    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", HONEST))
    out = tmp_path / "r.json"
    assert main(["audit", "-q", "--manifest", str(m), "--json", str(out), "--no-cache"]) == EXIT_INTERNAL
    rows = _rows(json.loads(out.read_text()))
    assert rows["innocent"]["outcome"] == "error"
    assert rows["infringer"]["instance"]["verdict"] == "attributed"  # the others are all there


# -- output paths, from the attacker's side ----------------------------------------------------

def _audit(tmp_path, world, *args) -> int:
    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", HONEST))
    return main(["audit", "-q", "--manifest", str(m), "--no-cache", *args])


def test_a_link_planted_at_the_old_temporary_name_is_never_written_through(tmp_path, world):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "r.json.tmp")
    assert _audit(tmp_path, world, "--json", str(tmp_path / "r.json")) == EXIT_OK
    assert victim.read_text() == "keep me"
    assert json.loads((tmp_path / "r.json").read_text())["audits"]


@pytest.mark.parametrize("case", ["json-link", "json-folder", "report-file", "report-index-link", "json-under-file"])
def test_a_bad_output_path_fails_before_the_first_query(tmp_path, world, capsys, case):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    if case == "json-link":
        os.symlink(victim, tmp_path / "out.json")
        args = ["--json", str(tmp_path / "out.json")]
    elif case == "json-folder":
        (tmp_path / "out.json").mkdir()
        (tmp_path / "out.json" / "out.json.tmp").write_text("the user's file")
        args = ["--json", str(tmp_path / "out.json")]
    elif case == "report-file":
        args = ["--report", str(victim)]
    elif case == "report-index-link":
        (tmp_path / "page").mkdir()
        os.symlink(victim, tmp_path / "page" / "index.html")
        args = ["--report", str(tmp_path / "page")]
    else:
        args = ["--json", str(victim / "out.json")]
    t = time.perf_counter()
    assert _audit(tmp_path, world, *args) == EXIT_INPUT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "input error" in err
    assert victim.read_text() == "keep me"
    assert time.perf_counter() - t < 5  # refused up front, not after an audit
    if case == "json-folder":
        assert (tmp_path / "out.json" / "out.json.tmp").read_text() == "the user's file"


def test_the_plugin_refuses_a_bad_output_path_before_collecting(pytester, world):
    pytester.makepyfile(test_instance=INSTANCE_SUITE)
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    pytester.path.joinpath("out.json").mkdir()
    res = pytester.runpytest("-p", "no:cacheprovider", "--attrib-json", "out.json")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "--attrib-json" in res.stderr.str() and "not a regular file" in res.stderr.str()


def test_the_statistical_verdict_is_read_before_the_cache_is_confirmed(world, fitted, monkeypatch):  # noqa: F811
    """Cached answers behind a statistical accusation are confirmed too: the confirmation must
    see the statistical verdict (the session read it only after the audit, so it never did)."""
    from attribcheck.audit import run
    from attribcheck.manifest import Manifest
    from attribcheck.session import AuditSession

    seen = {}
    real = run._confirm_uncached

    def spy(result, auditor, generator):
        seen[result.spec.name] = result.statistical
        return real(result, auditor, generator)

    monkeypatch.setattr(run, "_confirm_uncached", spy)
    keys, _, _ = fitted
    m = world["keys"].parent / "stat.toml"
    m.write_text(manifest_text({**world, "keys": keys}, "digits", {"infringer": "infringing"}))
    session = AuditSession(Manifest.load(m))
    session.run()
    assert seen["infringer"] is not None and seen["infringer"].verdict == "attributed"
