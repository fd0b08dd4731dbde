"""The suspect-kind extension point: a user's own generator, registered in a conftest or through
the `attribcheck.suspect_kinds` entry-point group, is audited, cached and reported like the
built-in kinds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from attribcheck.errors import InputError
from attribcheck.manifest import Manifest
from attribcheck.models import kinds

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]

# A user's kind: answers from a folder of images, through a generator class of the user's own,
# logging every time it is opened (the cache should spare that on a re-run).
TOY = '''
import os
from attribcheck.fingerprint import fingerprint
from attribcheck.models.folder_generator import FolderGenerator
from attribcheck.models.kinds import SuspectKind


class Toy:
    def __init__(self, path, name):
        self.name, self.inner = name, FolderGenerator(path, name)

    def generate(self, prompts, seeds):
        return self.inner.generate(prompts, seeds)


def open_toy(spec, protocol, runtime):
    with open(os.environ["TOY_LOG"], "a") as f:
        f.write(f"{os.getpid()} {spec.name}\\n")
    return Toy(spec.path, spec.name)


def toy_kind(name="toy"):
    return SuspectKind(name, open_toy, identity=lambda spec: {"folder": fingerprint(spec.path)},
                       description="a test's own kind")


KIND = toy_kind("toy-ep")
'''

SUITE = '''
from attribcheck.assertions import assert_expected


def test_first(attrib_suspect, attrib_verdict):
    assert_expected(attrib_verdict, attrib_suspect.expect)


def test_again(attrib_suspect, attrib_verdict):
    assert_expected(attrib_verdict, attrib_suspect.expect)
'''


def toy_manifest(world, kind: str = "toy") -> str:
    lines = [f"[audit]\nname = 'toys'\nsource = '{world['source'].as_posix()}'\nsource_kind = 'folder'\n"
             f"keys = '{world['keys'].as_posix()}'\nr_min = 0.15\n"]  # 20 keys (tests/folder_world.py)
    for s, expect in (("infringer", "infringing"), ("innocent", "innocent"), ("partial", "innocent")):
        lines.append(f"[[suspects]]\nname = '{s}'\npath = '{world[s].as_posix()}'\nexpect = '{expect}'\n"
                     f"kind = '{kind}'\n")
    return "\n".join(lines)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy kind registered in this process (as a conftest would), removed afterwards."""
    ns: dict = {}
    exec(compile(TOY, "toy.py", "exec"), ns)
    monkeypatch.setenv("TOY_LOG", str(tmp_path / "opened.log"))
    kinds.register(ns["toy_kind"](), replace=True)
    yield tmp_path / "opened.log"
    kinds.unregister("toy")


def test_a_registered_kind_is_audited_and_reported_like_a_built_in(world, toy, tmp_path):
    from attribcheck.cli import main

    (tmp_path / "toys.toml").write_text(toy_manifest(world))
    args = ["audit", "--manifest", str(tmp_path / "toys.toml"), "--cache-dir", str(tmp_path / "cache"), "-q"]
    assert main(args + ["--json", str(tmp_path / "r.json")]) == 0
    rows = {s["name"]: s for s in json.loads((tmp_path / "r.json").read_text())["audits"][0]["suspects"]}
    assert {rows[n]["kind"] for n in ("infringer", "innocent", "partial")} == {"toy"}
    assert rows["infringer"]["instance"]["verdict"] == "attributed"
    assert rows["innocent"]["instance"]["verdict"] == "clean"
    assert rows["partial"]["instance"]["verdict"] == "inconclusive"
    assert len(toy.read_text().splitlines()) == 3
    # cached: the generators are not opened again, except the attributed one, whose matched
    # answers are regenerated without the cache (an accusation never rests on the cache alone)
    assert main(args) == 0
    assert [line.split()[1] for line in toy.read_text().splitlines()[3:]] == ["infringer"]


def test_manifest_kind_must_be_registered(world, toy, tmp_path):
    (tmp_path / "m.toml").write_text(toy_manifest(world, kind="toyy"))
    with pytest.raises(InputError) as e:
        Manifest.load(tmp_path / "m.toml")
    msg = str(e.value)
    assert "suspects.0 (infringer).kind" in msg and "'toyy'" in msg and "toy" in msg.split("registered:")[1]
    assert "\n" not in msg


def test_kind_options_are_validated_by_the_kind(world, tmp_path):
    from pydantic import BaseModel, ConfigDict

    class Opts(BaseModel):
        model_config = ConfigDict(extra="forbid")
        level: int = 1

    kinds.register(kinds.SuspectKind("opt-kind", lambda spec, p, r: None, options=Opts), replace=True)
    try:
        text = toy_manifest(world, kind="opt-kind")
        (tmp_path / "ok.toml").write_text(text.replace("kind = 'opt-kind'\n", "kind = 'opt-kind'\noptions = { level = 3 }\n", 1))
        m = Manifest.load(tmp_path / "ok.toml")
        assert m.suspects[0].options.level == 3 and m.suspects[1].options.level == 1
        (tmp_path / "bad.toml").write_text(text.replace("kind = 'opt-kind'\n", "kind = 'opt-kind'\noptions = { levle = 3 }\n", 1))
        with pytest.raises(InputError, match=r"options\.levle: unknown key"):
            Manifest.load(tmp_path / "bad.toml")
        # a kind without options refuses them; a diffusers setting on another kind is refused
        (tmp_path / "folder.toml").write_text(toy_manifest(world, kind="folder").replace(
            "\nkind = 'folder'\n", "\nkind = 'folder'\nvariant = 'fp16'\n", 1))
        with pytest.raises(InputError, match="variant is a diffusers setting"):
            Manifest.load(tmp_path / "folder.toml")
    finally:
        kinds.unregister("opt-kind")


def test_plugin_table_json_and_cache_under_xdist(pytester, world, tmp_path, monkeypatch):
    """A conftest registers the kind; -n 2 with two tests per suspect computes each suspect once."""
    log = tmp_path / "opened.log"
    monkeypatch.setenv("TOY_LOG", str(log))
    pytester.makeconftest(TOY + "\nfrom attribcheck.models.kinds import register\nregister(toy_kind(), replace=True)\n")
    pytester.makepyfile(test_toys=SUITE)
    pytester.path.joinpath("toys.toml").write_text(toy_manifest(world))
    cache = tmp_path / "cache"
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--attrib-cache-dir", str(cache),
                                      "--attrib-json", "r.json")
    r.assert_outcomes(passed=6, warnings=r.parseoutcomes().get("warnings", 0))
    opened = [name for _, name in (line.split() for line in log.read_text().splitlines())]
    # each computed once; a worker that reads the infringer's answers from the cache confirms
    # the accusation without it, so the infringer may open a second time
    assert sorted(set(opened)) == ["infringer", "innocent", "partial"]
    assert opened.count("innocent") == opened.count("partial") == 1 and opened.count("infringer") <= 2
    before = len(opened)
    table = r.stdout.str()
    assert "toys::infringer" in table and "attributed" in table
    rows = {s["name"]: s for s in json.loads(pytester.path.joinpath("r.json").read_text())["audits"][0]["suspects"]}
    assert rows["innocent"]["kind"] == "toy" and rows["innocent"]["instance"]["verdict"] == "clean"
    # warm: only the accusation is confirmed; --attrib-no-cache: opened again, nothing written
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--attrib-cache-dir", str(cache))
    r.assert_outcomes(passed=6, warnings=r.parseoutcomes().get("warnings", 0))
    assert [line.split()[1] for line in log.read_text().splitlines()[before:]] == ["infringer"]
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--attrib-no-cache",
                                      "--attrib-cache-dir", str(tmp_path / "unused"))
    r.assert_outcomes(passed=6, warnings=r.parseoutcomes().get("warnings", 0))
    assert len(log.read_text().splitlines()) == before + 4 and not (tmp_path / "unused").exists()


def test_entry_point_group_registers_a_package_kind(world, tmp_path):
    """A package installed with an `attribcheck.suspect_kinds` entry point (a real dist-info on
    sys.path, found by importlib.metadata) is a kind a manifest can name."""
    site = tmp_path / "site"
    (site / "toykind").mkdir(parents=True)
    (site / "toykind" / "__init__.py").write_text(TOY)
    info = site / "toykind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toykind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[attribcheck.suspect_kinds]\ntoy-ep = toykind:KIND\n")
    (tmp_path / "ep.toml").write_text(toy_manifest(world, kind="toy-ep"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), TOY_LOG=str(tmp_path / "log"))
    r = subprocess.run([sys.executable, "-m", "attribcheck.cli", "audit", "--manifest", str(tmp_path / "ep.toml"),
                        "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "r.json")],
                       env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "infringer: attributed" in r.stdout
    rows = json.loads((tmp_path / "r.json").read_text())["audits"][0]["suspects"]
    assert {s["kind"] for s in rows if s["role"] == "suspect"} == {"toy-ep"}
    # without the package, the same manifest is refused at load, naming the registered kinds
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-m", "attribcheck.cli", "audit", "--manifest", str(tmp_path / "ep.toml")],
                       env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 3 and "unknown suspect kind 'toy-ep'" in r.stderr
    assert textwrap.dedent(r.stderr).count("\n") == 1
