"""`attribcheck keys prune`: a key set from before keys had to be independent is repaired, not
trusted: the weaker key of each dependent pair goes, the hash is recomputed honestly."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from attribcheck import images
from attribcheck.errors import InputError
from attribcheck.keys.keyset import KeySet
from attribcheck.keys.prune import prune


def _with_copy(world, tmp_path):
    ks = KeySet.load(world["keys"])
    dup = replace(ks.keys[0], id="dup", caption=ks.keys[0].caption + ", again")  # one picture twice
    bad = replace(ks, keys=ks.keys + [dup])
    folder = tmp_path / "keys"
    shutil.copytree(world["keys"], folder)
    m = bad.manifest()
    m["content_hash"] = bad.content_hash()  # a self-consistent file: the attack on the binomial test
    images.save(dup.image, folder / f"images/{len(ks):04d}.png")
    (folder / "keyset.json").write_text(json.dumps(m))
    return ks, folder


def test_a_copied_key_is_refused_then_pruned(world, tmp_path):
    ks, folder = _with_copy(world, tmp_path)
    with pytest.raises(InputError, match="dup"):
        KeySet.load(folder)
    assert prune(folder) == ["dup"]
    again = KeySet.load(folder)
    assert [k.id for k in again.keys] == [k.id for k in ks.keys]
    assert again.selection["pruned_not_independent"] == ["dup"]
    assert prune(folder) == []  # nothing left to do


def test_prune_never_repairs_a_tampered_key_set(world, tmp_path):
    _, folder = _with_copy(world, tmp_path)
    data = json.loads((folder / "keyset.json").read_text())
    data["delta_0"] = 0.3  # altered after hashing
    (folder / "keyset.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="altered"):
        prune(folder)
