"""`attribcheck audit` as a CI gate: exit codes, one-line errors, the report, the self-check."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

from attribcheck.cli import EXIT_CONTRADICTION, EXIT_INCONCLUSIVE, EXIT_INPUT, EXIT_OK, main
from tests.folder_world import HONEST, manifest_text
from tests.test_plugin import validate_report


def run(tmp_path, world, suspects, *args, **audit):
    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", suspects, **audit))
    return main(["audit", "--manifest", str(m), *args])


def test_agreeing_verdicts_exit_0_and_print_text_not_markup(tmp_path, world, capsys):
    assert run(tmp_path, world, HONEST, "--json", str(tmp_path / "r.json")) == EXIT_OK
    out = capsys.readouterr().out
    # rich would have eaten "[expected innocent: ...]" as markup
    assert "innocent: clean" in out and "[expected innocent: as-expected]" in out
    assert "source: attributed" in out and "[source self-check: as-expected]" in out
    report = json.loads((tmp_path / "r.json").read_text())
    validate_report(report)  # the same schema as the plugin's --attrib-json
    assert [s["name"] for s in report["audits"][0]["suspects"]] == ["source", "infringer", "innocent", "partial"]


def test_contradiction_exits_1(tmp_path, world):
    assert run(tmp_path, world, {**HONEST, "infringer": "innocent"}) == EXIT_CONTRADICTION


def test_stale_source_exits_1(tmp_path, world):
    assert run(tmp_path, world, {"infringer": "infringing"}, source="innocent") == EXIT_CONTRADICTION


def test_inconclusive_exits_2_only_under_strict(tmp_path, world):
    assert run(tmp_path, world, {"partial": "innocent"}) == EXIT_OK
    assert run(tmp_path, world, {"partial": "innocent"}, "--strict") == EXIT_INCONCLUSIVE


def test_toml_error_is_one_line_naming_the_file(tmp_path):
    m = tmp_path / "broken.toml"
    m.write_text("[audit\nname = 'x'\n")
    res = subprocess.run([sys.executable, "-m", "attribcheck.cli", "audit", "--manifest", str(m)],
                         capture_output=True, text=True)
    assert res.returncode == EXIT_INPUT
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.toml" in lines[0] and "not valid TOML" in lines[0]
    assert "Traceback" not in res.stderr


def test_debug_shows_the_traceback(tmp_path):
    m = tmp_path / "broken.toml"
    m.write_text("[audit]\nalhpa = 1\n")
    with pytest.raises(Exception, match="alhpa"):
        main(["audit", "--manifest", str(m), "--debug"])


def test_bad_suspect_is_isolated_and_exits_3(tmp_path, world, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "queries.jsonl").write_text('{"prompt": "x", "seed": 0, "file": "/etc/passwd"}\n')
    world = {**world, "broken": broken}
    rc = run(tmp_path, world, {"broken": "innocent", **HONEST}, "--json", str(tmp_path / "r.json"))
    assert rc == EXIT_INPUT
    assert "broken: ERROR (integrity)" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    validate_report(report)
    rows = {s["name"]: s for s in report["audits"][0]["suspects"]}
    assert rows["broken"]["outcome"] == "error" and rows["infringer"]["instance"]["verdict"] == "attributed"


def test_quiet_prints_nothing(tmp_path, world, capsys):
    assert run(tmp_path, world, HONEST, "-q") == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_bad_option_values_are_input_errors(tmp_path, world, capsys):
    assert run(tmp_path, world, HONEST, "--alpha", "1.5") == EXIT_INPUT
    assert "--alpha" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["audit"])  # usage errors are input errors too: 2 belongs to --strict
    assert e.value.code == EXIT_INPUT


def test_redact_without_a_report_is_an_input_error(tmp_path, world, capsys):
    assert run(tmp_path, world, HONEST, "--redact") == EXIT_INPUT  # not silently ignored
    assert "--redact" in capsys.readouterr().err


def test_a_suspect_named_like_the_self_check_row_is_refused(tmp_path, world, capsys):
    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", {"infringer": "infringing"}).replace("name = 'infringer'", "name = 'source'"))
    assert main(["audit", "--manifest", str(m)]) == EXIT_INPUT
    assert "self-check" in capsys.readouterr().err


def test_help_shows_defaults_and_version(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = capsys.readouterr().out
    assert "(default: 64)" in " ".join(out.split()) and "--strict" in out and "--device" in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "attribcheck 0.1.0" in capsys.readouterr().out


@pytest.mark.parametrize("hostile", ["fifo", "huge"])
def test_keys_select_reads_a_bounded_regular_prompts_file(tmp_path, capsys, monkeypatch, hostile):
    # --prompts was read whole with read_text: a FIFO hung it, /dev/zero filled memory
    import os

    from attribcheck.data.dataset import CaptionDataset, Sample

    CaptionDataset([Sample("s0", "unused", np.zeros((16, 16, 3), np.float32))]).save(tmp_path / "data")
    prompts = tmp_path / "prompts.txt"
    if hostile == "fifo":
        os.mkfifo(prompts)
    else:  # sparse: a size past the bound costs no disk
        from attribcheck.safe_files import MAX_FILE_BYTES

        with open(prompts, "wb") as f:
            f.truncate(MAX_FILE_BYTES + 1)
    source = Path(__file__).resolve().parents[1] / "fixtures" / "world" / "emoji" / "models" / "source"
    code = main(["keys", "select", "-q", "--source", str(source), "--data", str(tmp_path / "data"),
                 "--reference", str(source), "--prompts", str(prompts), "--out", str(tmp_path / "keys"),
                 "--no-cache"])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prompts.txt" in err[0] and "--prompts" in err[0]


def test_calibrated_keys_select_without_references_is_an_input_error(tmp_path, capsys):
    # it was a ValueError deep in selection, reported as an internal error (exit 4), after the
    # source's generations
    code = main(["keys", "select", "-q", "--source", str(tmp_path), "--data", str(tmp_path),
                 "--out", str(tmp_path / "keys"), "--no-cache"])
    assert code == 3
    assert "--reference" in capsys.readouterr().err
