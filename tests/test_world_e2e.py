"""End to end on the shipped tiny world: real pipeline folders, real key sets, real verdicts."""
import json
from pathlib import Path

import pytest

from attribcheck.audit.auditor import Auditor
from attribcheck.audit.verdict import ATTRIBUTED
from attribcheck.keys.keyset import KeySet
from attribcheck.manifest import Manifest
from attribcheck.models.diffusers_generator import DiffusersGenerator
from attribcheck.statistical.fit import FILENAME, StatisticalAuditor
from attribcheck.lab.world.config import WorldConfig
from attribcheck.lab.world.layout import WorldLayout

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = WorldLayout(ROOT / "fixtures" / "world")
CFG = WorldConfig.load(LAYOUT.config)


@pytest.fixture(scope="module", params=CFG.datasets)
def dataset(request):
    return request.param


@pytest.fixture(scope="module", params=sorted(CFG.suite_keys))
def suite_dataset(request):
    return request.param


@pytest.fixture(scope="module")
def keyset(suite_dataset):
    """The key set the dataset's suite audits with."""
    return KeySet.load(LAYOUT.keys(suite_dataset, CFG.suite_keys[suite_dataset]))


def test_key_sets_verify(dataset):
    folders = [LAYOUT.keys(dataset, s) for s in ("detection", "generation", "random")]
    present = [f for f in folders if (f / "keyset.json").exists()]
    assert len(present) >= 2  # digits' generation strategy kept 2 keys, below MIN_KEYS: no key set
    for folder in present:
        strategy = folder.name
        ks = KeySet.load(folder)  # verifies the content hash
        assert set(ks.reference_roles.values()) == {"selection", "calibration"}
        assert all(k.r_source < ks.delta_0 for k in ks.keys) or strategy == "random"


def test_suite_key_sets_are_large_enough(keyset):
    assert len(keyset) >= 10


def test_source_reproduces_its_suite_keys(suite_dataset, keyset):
    dataset = suite_dataset
    source = DiffusersGenerator.from_path(LAYOUT.model(dataset, "source"), keyset.protocol)
    v = Auditor(keyset.head(10)).audit(source)
    assert v.conf >= 0.9, v.summary()


def test_no_verdict_contradicts_the_truth(suite_dataset, keyset):
    """The fully infringing suspect is not cleared; the plain innocent is not accused."""
    dataset = suite_dataset
    auditor = Auditor(keyset)
    infringer = DiffusersGenerator.from_path(LAYOUT.model(dataset, "infringer-rho1.0-s0"), keyset.protocol)
    innocent = DiffusersGenerator.from_path(LAYOUT.model(dataset, "innocent-s0"), keyset.protocol)
    vi, vn = auditor.audit(infringer), auditor.audit(innocent)
    assert vi.verdict != "clean" and vn.verdict != ATTRIBUTED, (vi.summary(), vn.summary())
    assert vi.conf > vn.conf
    # the statistical level, where the suite's key set ships a discriminator (fitted on
    # shadows, which these suspects never were), on the same distances
    if (LAYOUT.keys(dataset, CFG.suite_keys[dataset]) / FILENAME).exists():
        stat = StatisticalAuditor.for_keyset(LAYOUT.keys(dataset, CFG.suite_keys[dataset]), keyset)
        si, sn = stat.verdict(vi.name, vi.distances), stat.verdict(vn.name, vn.distances)
        assert si.verdict != "clean" and sn.verdict != ATTRIBUTED, (si.summary(), sn.summary())
        assert si.p_infringing > sn.p_infringing


def test_emoji_infringer_attributed():
    """Where the world's effect is strong (emoji), a fully infringing suspect is attributed."""
    ks = KeySet.load(LAYOUT.keys("emoji", CFG.suite_keys["emoji"]))
    infringer = DiffusersGenerator.from_path(LAYOUT.model("emoji", "infringer-rho1.0-s1"), ks.protocol)
    v = Auditor(ks).audit(infringer)
    assert v.verdict == ATTRIBUTED, v.summary()


def test_cli_audit_writes_the_verdict_fields(tmp_path):
    from attribcheck.cli import main

    m = Manifest.load(ROOT / "suites" / "emoji.toml")
    text = (ROOT / "suites" / "emoji.toml").read_text().split("[[suspects]]")[0]
    keep = [s for s in m.suspects if s.name in ("infringer-rho1.0-s1", "innocent-s0")]
    for s in keep:
        text += f'[[suspects]]\nname = "{s.name}"\npath = "{s.path}"\nexpect = "{s.expect}"\n\n'
    text = text.replace('source = "', f'source = "{ROOT / "suites"}/').replace('keys = "', f'keys = "{ROOT / "suites"}/')
    (tmp_path / "m.toml").write_text(text)
    assert main(["audit", "--manifest", str(tmp_path / "m.toml"), "--json", str(tmp_path / "out.json")]) == 0
    [audit] = json.loads((tmp_path / "out.json").read_text())["audits"]  # the versioned report
    rows = [r for r in audit["suspects"] if r["role"] == "suspect"]
    assert [r["name"] for r in rows] == ["infringer-rho1.0-s1", "innocent-s0"]
    for r in rows:
        assert {"verdict", "conf", "matches", "k", "p_value", "alpha", "delta_0"} <= set(r["instance"])
    assert audit["keyset"]["strategy"] == "generation"
    assert rows[0]["instance"]["verdict"] == ATTRIBUTED


pytest_plugins = ["pytester"]


def test_suite_fails_readably_when_an_expectation_is_flipped(pytester):
    """`pytest suites/` on a manifest whose innocent is declared infringing must fail, and say why."""
    src = (ROOT / "suites" / f"{CFG.datasets[0]}.toml").read_text()
    m = Manifest.load(ROOT / "suites" / f"{CFG.datasets[0]}.toml")
    # 12 keys clear nobody at the default r_min (tests/test_clean_rule.py): a wider one lets it read clean
    head = src.split("[[suspects]]")[0].rstrip("\n") + "\nr_min = 0.25\n\n"
    head = head.replace('source = "', f'source = "{ROOT / "suites"}/').replace('keys = "', f'keys = "{ROOT / "suites"}/')
    innocent = next(s for s in m.suspects if s.name == "innocent-s0")
    pytester.makefile(".toml", flipped=head + f'[[suspects]]\nname = "innocent-s0"\npath = "{innocent.path}"\n'
                      f'expect = "infringing"\n')
    pytester.makepyfile(test_suite=(ROOT / "suites" / "test_instance.py").read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "suspect")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "innocent-s0: expected infringing (verdict attributed), found clean" in out
    for needle in ("conf=0.000", "m/K=0/", "p-value=", "alpha=0.01", "delta_0=0.15"):
        assert needle in out, needle


def test_cli_keys_select_on_world_models(tmp_path, capsys):
    """`attribcheck keys select` on real world models: Strategy 1 over a few of D_S's pairs."""
    from attribcheck.cli import main
    from attribcheck.lab.datasets import load_builtin

    dataset = CFG.datasets[0]
    d_s = json.loads((LAYOUT.model(dataset, "source") / "train_set.json").read_text())["ids"]
    data = load_builtin(dataset, side=CFG.side)
    pos = {sid: i for i, sid in enumerate(data.ids)}
    data.subset([pos[s] for s in d_s[:10]]).save(tmp_path / "data")
    sampler = tmp_path / "sampler.json"
    from attribcheck.models.protocol import QueryProtocol

    QueryProtocol(steps=CFG.sampler_steps).save(sampler)
    rc = main(["keys", "select", "--source", str(LAYOUT.model(dataset, "source")), "--data", str(tmp_path / "data"),
               "--reference", str(LAYOUT.model(dataset, "base")), "--calibration",
               str(LAYOUT.model(dataset, "ref-calibration")), "--strategy", "detection", "--k", "5",
               "--query-seeds", "2", "--protocol", str(sampler), "--out", str(tmp_path / "keys")])
    ks = KeySet.load(tmp_path / "keys")
    assert rc == 0 and len(ks) == 5 and ks.candidates == 10
    for key in ks.keys:  # each key passed Strategy 1's filter, on the recorded numbers
        assert key.r_source < ks.delta_0 <= key.r_references["base"]
    assert ks.reference_roles == {"base": "selection", "ref-calibration": "calibration"}
    # no --public, --twin or --private: the owner is told before anyone is audited that these
    # keys accuse no one, and the key set says so
    assert ks.public_check is None and "cannot support an accusation" in capsys.readouterr().err
    # --public: the owner's public images never become keys (cached generations: no new queries)
    data.subset([pos[s] for s in d_s[:2]]).save(tmp_path / "public")
    rc = main(["keys", "select", "--source", str(LAYOUT.model(dataset, "source")), "--data", str(tmp_path / "data"),
               "--reference", str(LAYOUT.model(dataset, "base")), "--calibration",
               str(LAYOUT.model(dataset, "ref-calibration")), "--strategy", "detection", "--k", "5",
               "--query-seeds", "2", "--protocol", str(sampler), "--public", str(tmp_path / "public"),
               "--out", str(tmp_path / "keys-private")])
    private = KeySet.load(tmp_path / "keys-private")
    c = private.selection["counts"]
    assert rc == 0 and not {k.id for k in private.keys} & set(d_s[:2]) and c["public"] >= 1  # the source memorizes ~95%
    assert "2 public training images" in private.public_check and "warning" not in capsys.readouterr().err
    # --private: the owner's declaration, on record under the hash (cached generations again)
    rc = main(["keys", "select", "--source", str(LAYOUT.model(dataset, "source")), "--data", str(tmp_path / "data"),
               "--reference", str(LAYOUT.model(dataset, "base")), "--calibration",
               str(LAYOUT.model(dataset, "ref-calibration")), "--strategy", "detection", "--k", "5",
               "--query-seeds", "2", "--protocol", str(sampler), "--private", "--out", str(tmp_path / "keys-declared")])
    declared = KeySet.load(tmp_path / "keys-declared")
    assert rc == 0 and declared.selection["thresholds"]["data_private"] is True
    assert "declared the source's training data private" in declared.public_check
    assert [k.id for k in declared.keys] == [k.id for k in ks.keys]  # a declaration, not a filter
    assert c["candidates"] == (c.get("source_misses", 0) + c["public"] + sum(c["reproduced_by"].values())
                               + c.get("near_duplicates", 0) + c["passed"])
