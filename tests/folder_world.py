"""A small honest world without torch, shared by the plugin and CLI tests.

The world: 20 key samples (digits from sklearn, 16x16 RGB), a key set whose calibration
reference misses every key, and suspects as collected-image folders: a source and an
infringer that return the key images plus a little noise, an innocent that returns other
digits, and a partial copier that reproduces 4 of 20 keys (inconclusive).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attribcheck import images
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.metrics.distance import get_distance
from attribcheck.models.folder_generator import collect
from attribcheck.models.protocol import QueryProtocol

K, SEEDS, DELTA_0 = 20, [0, 1], 0.15
# the owner's declaration that the source's training data is private: keys built with it may
# accuse (KeySet.public_check; tests/test_public_check.py holds the keys that may not)
PRIVATE = {"thresholds": {"data_private": True}}
HONEST = {"infringer": "infringing", "innocent": "innocent", "partial": "innocent"}


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
    ks = KeySet(keys, "detection", DELTA_0, {"name": "rms", "side": None}, QueryProtocol(), SEEDS,
                reference_roles={"calib": "calibration"}, candidates=K,
                selection=PRIVATE)
    folders["keys"] = ks.save(root / "keys")
    return folders


def manifest_text(world, name: str, suspects: dict[str, str], source: str = "source", **audit) -> str:
    """suspects: world folder name -> expectation. Paths are absolute literal TOML strings.

    r_min = 0.15 unless given: 20 keys rule out no less than 14% of them at 95%, so under the
    default (0.1) nothing here could be clean (tests/test_clean_rule.py holds the default); a
    value of None leaves the key out."""
    audit = {k: v for k, v in {"r_min": 0.15, **audit}.items() if v is not None}
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in audit.items())
    lines = [f"[audit]\nname = '{name}'\nsource = '{world[source].as_posix()}'\n"
             f"keys = '{world['keys'].as_posix()}'\nsource_kind = 'folder'\n{extra}"]
    for s, expect in suspects.items():
        lines.append(f"[[suspects]]\nname = '{s}'\npath = '{world[s].as_posix()}'\n"
                     f"expect = '{expect}'\nkind = 'folder'\n")
    return "\n".join(lines)


