"""One artifact layer: every file attribcheck saves and reads back goes through
attribcheck/artifacts.py (a strict, versioned, stamped base; one bounded reader, one atomic
writer). Listed here by type, round-tripped, attacked (another format, a newer version, an
unknown field, a NaN, a huge file), and the committed files loaded byte for byte untouched."""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from attribcheck import __version__
from attribcheck.artifacts import Artifact
from attribcheck.baseline import store
from attribcheck.baseline.store import BaselineFile
from attribcheck.config import JsonConfig
from attribcheck.errors import AttribcheckError, InputError, IntegrityError
from attribcheck.keys.keyset import KeySet, KeySetFile
from attribcheck.lab.realsize.build import RealSizeConfig
from attribcheck.lab.shadows.config import ShadowConfig
from attribcheck.lab.shadows.innocents import InnocentConfig
from attribcheck.lab.train.finetune import FinetuneConfig
from attribcheck.lab.watermark.dct import WatermarkConfig
from attribcheck.lab.world.config import WorldConfig
from attribcheck.models.protocol import Runtime
from attribcheck.lab.tiny import TinyConfig
from attribcheck.report import AuditEntry, Report, new_report
from attribcheck.safe_files import MAX_FILE_BYTES
from attribcheck.statistical.discriminator import ShadowDiscriminator
from attribcheck.statistical.discriminator_file import DiscriminatorFile
from attribcheck.statistical.fit import ProfileEntry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attribcheck"


# -- every saved file type: how one is made, and how the library reads it back -----------------

def _keyset(tmp: Path) -> Path:
    from tests.test_keyset import keys_, make

    return make(keys_()).save(tmp / "ks") / "keyset.json"


def _discriminator(tmp: Path) -> Path:
    from tests.test_trust_boundary import separable

    X, y = separable(np.random.default_rng(0))
    ShadowDiscriminator().fit(X, y).save(tmp / "discriminator.json", keyset_hash="abc", shadows=[str(i) for i in y])
    return tmp / "discriminator.json"


def _profile(tmp: Path) -> Path:
    return ProfileEntry(model="m", model_fingerprint="f" * 64, keyset_hash="k" * 64, protocol={"steps": 7},
                        distances=[0.1, 0.2, 0.3]).save(tmp / "profile.json")


def _baseline(tmp: Path) -> Path:
    return store.write(tmp / "baseline.json", json.loads((ROOT / "suites/baselines/emoji.json").read_text()))


def _report(tmp: Path) -> Path:
    entry = AuditEntry(name="a", manifest="a.toml", alpha=0.01, p0=0.2)
    return new_report([entry], Runtime()).write(tmp / "report.json")


ARTIFACTS = {  # name: (make a saved file, read it back as the library does, the class of its errors)
    "keyset": (_keyset, lambda p: KeySet.load(p.parent), InputError),
    "discriminator": (_discriminator, ShadowDiscriminator.load, IntegrityError),
    "profile": (_profile, ProfileEntry.load, InputError),
    "baseline": (_baseline, store.load, InputError),
    "report": (_report, Report.load, InputError),
}
MODELS = {KeySetFile, DiscriminatorFile, ProfileEntry, BaselineFile, Report}
CONFIGS = [WorldConfig, FinetuneConfig, ShadowConfig, InnocentConfig, TinyConfig, WatermarkConfig, RealSizeConfig]
for _cls in CONFIGS:  # the lab's dataclass configs, saved and read through the same stamp and reader
    ARTIFACTS[_cls.__name__] = ((lambda c: lambda tmp: (c().save(tmp / "config.json"), tmp / "config.json")[1])(_cls),
                                _cls.load, InputError)


def _subclasses(cls) -> set:
    return {s for c in cls.__subclasses__() for s in {c} | _subclasses(c)}


def test_every_artifact_class_is_listed_here():
    assert _subclasses(Artifact) == MODELS
    assert _subclasses(JsonConfig) == set(CONFIGS)


# Files written or JSON parsed outside the artifact layer, each with the reason it is no
# artifact of ours. A new reader or writer anywhere else fails the test below until it goes
# through attribcheck/artifacts.py or is listed here with its reason.
NOT_ARTIFACTS = {
    "safe_files.py": "the bounded reader the artifact base reads through",
    "config.py": "JsonConfig.from_json parses a string in memory (the lab hashes to_json); files go through artifacts",
    "pins.py": "rewrites the user's own TOML manifest in place, [pins] only, every other byte kept",
    "plugin.py": "report rows between xdist workers and the controller, in memory (user_properties)",
    "evidence/pytest_plugin.py": "report rows and answers between xdist workers and the controller, in memory",
    "evidence/write.py": "the evidence page: HTML for a reader",
    "images.py": "PNG images (keys, answers)",
    "cache.py": "binary entries: the header is inside the digested payload, its format number is part of every "
                "address, and an entry that does not check out is a miss, not an error (see test_cache.py)",
    "models/diffusers_generator.py": "diffusers' own model_index.json, a third party's format",
    "models/budget.py": "diffusers' own model_index.json and config.json, a third party's format",
    "models/protocol.py": "--protocol, a file the user writes; nested unstamped in keyset.json, whose hash covers it",
    "models/folder_generator.py": "queries.jsonl, a folder suspect's manifest in a format others write",
    "models/queries.py": "the query list exported for a folder suspect, in that same format",
    "models/http_generator.py": "a service's response (in memory) and the evidence of each request, for a human",
    "data/dataset.py": "a dataset's manifest.jsonl / manifest.csv, formats others write",
}
IO = re.compile(r"\b(write_atomic|replace_atomically|read_json_object|model_validate_json)\(|\bjson\.loads?\(")


def _io_files() -> set[str]:
    # the lab's bench results and training records are studies' outputs, not audit inputs;
    # its configs are JsonConfig (above)
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if p.name not in ("artifacts.py", "outputs.py") and "lab" not in p.relative_to(PACKAGE).parts
            and IO.search(p.read_text())}


def test_saved_files_are_read_and_written_only_through_the_artifact_layer():
    found = _io_files()
    assert found - set(NOT_ARTIFACTS) == set(), "read or written outside attribcheck/artifacts.py"
    assert set(NOT_ARTIFACTS) - found == set(), "listed but no longer reads or writes: drop it from NOT_ARTIFACTS"


# -- round trips -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_round_trip_is_stamped(tmp_path, name):
    make, load, _ = ARTIFACTS[name]
    path = make(tmp_path)
    data = json.loads(path.read_text())
    assert data["format"].startswith("attribcheck.") and isinstance(data["format_version"], int)
    assert data.get("tool_version", __version__) == __version__  # the report keeps it in `tool`
    load(path)
    if name == "keyset":  # the hash covers the keys, not the stamp: an unstamped copy verifies too
        for stamp in ("format", "tool_version"):
            data.pop(stamp)
        path.write_text(json.dumps(data))
        assert KeySet.load(path.parent).content_hash() == data["content_hash"]


def test_models_round_trip_to_equal_objects(tmp_path):
    for model, make in ((ProfileEntry, _profile), (BaselineFile, _baseline), (Report, _report)):
        path = make(tmp_path)
        first = model.load(path)
        first.save(tmp_path / "copy.json")
        assert model.load(tmp_path / "copy.json") == first
    ks = KeySet.load(_keyset(tmp_path).parent)
    assert KeySet.load(ks.save(tmp_path / "ks2")).manifest() == ks.manifest()
    for cls in CONFIGS:
        cls().save(tmp_path / "c.json")
        assert cls.load(tmp_path / "c.json") == cls()


# -- hostile files: one line of the artifact's error class, naming the file and the field ------

def _first_number(data, at=""):
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        here = f"{at}.{k}" if at else str(k)
        if here == "format_version":
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return here
        found = _first_number(v, here)
        if found:
            return found
    return None


def _set(data, dotted, value):
    *head, last = dotted.split(".")
    for part in head:
        data = data[int(part)] if isinstance(data, list) else data[part]
    data[int(last) if isinstance(data, list) else last] = value


def _edits(data: dict, version: int) -> dict:
    nan = _first_number(data)
    return {"another format": ({**data, "format": "attribcheck.other"}, "format", "another kind of file"),
            "a newer version": ({**data, "format_version": version + 1}, "format_version", "newer"),
            "an unknown field": ({**data, "surprise": 1}, "surprise", ""),
            "a NaN": (json.loads(json.dumps(data)), nan, "nan")}


def _error(load, path) -> AttribcheckError:
    with pytest.raises(AttribcheckError) as e:
        load(path)
    assert "\n" not in str(e.value) and path.name in str(e.value)
    return e.value


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
@pytest.mark.parametrize("attack", ["another format", "a newer version", "an unknown field", "a NaN"])
def test_hostile_file_is_one_line_naming_the_field(tmp_path, name, attack):
    make, load, error = ARTIFACTS[name]
    path = make(tmp_path)
    data = json.loads(path.read_text())
    edited, field, words = _edits(data, data["format_version"])[attack]
    if attack == "a NaN":
        assert field is not None, "every artifact holds a number"
        _set(edited, field, math.nan)
    path.write_text(json.dumps(edited))  # a bare NaN, as a hand edit writes one
    err = _error(load, path)
    assert isinstance(err, error) and err.field == field and words in err.message.lower(), str(err)


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_huge_or_shapeless_file_is_one_line(tmp_path, name):
    make, load, _ = ARTIFACTS[name]
    path = make(tmp_path)
    with open(path, "r+b") as f:  # sparse: no 64 MB written
        f.truncate(MAX_FILE_BYTES + 1)
    assert "over the limit" in str(_error(load, path))
    path.write_text("[1, 2]")
    assert "not a JSON object" in str(_error(load, path))


def test_a_missing_version_is_named(tmp_path):
    path = _keyset(tmp_path)
    data = json.loads(path.read_text())
    del data["format_version"]
    path.write_text(json.dumps(data))
    assert _error(lambda p: KeySet.load(p.parent), path).field == "format_version"


# -- the committed files load unchanged and untouched ----------------------------------------

COMMITTED = sorted(p for pattern in ("fixtures/**/keyset.json", "fixtures/**/discriminator.json",
                                     "suites/baselines/*.json", "fixtures/*/world.json",
                                     "fixtures/**/tiny_config.json", "fixtures/**/finetune_config.json")
                   for p in ROOT.glob(pattern))


def _read_committed(path: Path):
    if path.name == "keyset.json":
        return KeySet.load(path.parent)  # content hash verified
    if path.name == "discriminator.json":
        return ShadowDiscriminator.load(path, keyset_hash=KeySet.load(path.parent).content_hash())
    if path.parent.name == "baselines":
        return store.load(path)
    return {"world.json": WorldConfig, "tiny_config.json": TinyConfig,
            "finetune_config.json": FinetuneConfig}[path.name].load(path)


# committed files saved again since the stamp: the emoji suite's key set, to record its twin
# filter (KeySet.public_check; its hash moved, and the pins and baseline with it)
RESAVED = {"fixtures/world/emoji/keys/generation/keyset.json"}


def test_committed_files_load_byte_for_byte_untouched():
    assert len(COMMITTED) >= 8 + 2 + 3 + 2 + 1 + 40
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in COMMITTED}
    for p in COMMITTED:
        assert _read_committed(p) is not None, p
        stamped = "tool_version" in json.loads(p.read_text())
        assert stamped == (p.relative_to(ROOT).as_posix() in RESAVED), f"{p}: older than the stamp, and left so"
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in COMMITTED} == before


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_deep_nesting_is_one_line(tmp_path, name):
    """Nested near the parser's limit a file used to load, then overflow the stack of the next
    walk over it (a key set's content hash): refused at load, naming where."""
    from attribcheck.artifacts import MAX_DEPTH

    make, load, error = ARTIFACTS[name]
    path = make(tmp_path)
    data = json.loads(path.read_text())
    deep: list = []
    for _ in range(900):
        deep = [deep]
    path.write_text(json.dumps({**data, "surprise": deep}))
    err = _error(load, path)
    assert isinstance(err, error) and f"deeper than {MAX_DEPTH}" in err.message and err.field.startswith("surprise.0")
