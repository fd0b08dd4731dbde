"""`attribcheck keys queries`: what to ask a black-box suspect, in the folder suspect's layout."""
from __future__ import annotations

import json
import shutil

from attribcheck.errors import InputError
from attribcheck.keys.keyset import KeySet
from attribcheck.models.folder_generator import FolderGenerator


def test_export_lists_every_query_and_a_collected_folder_audits(world, tmp_path):
    from attribcheck.cli import main

    out = tmp_path / "suspect" / "queries.jsonl"
    assert main(["keys", "queries", "--keys", str(world["keys"]), "--out", str(out)]) == 0
    ks = KeySet.load(world["keys"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["prompt"], r["seed"]) for r in rows] == [(c, s) for c in ks.captions for s in ks.query_seeds]
    assert len({r["file"] for r in rows}) == len(rows)
    # answer every query (here: with the infringer's collected images) under the suggested names
    source = FolderGenerator(world["infringer"])
    for r in rows:
        shutil.copy(source.file_for(r["prompt"], r["seed"]), out.parent / r["file"])
    fg = FolderGenerator(out.parent)
    assert len(fg.generate([r["prompt"] for r in rows], [r["seed"] for r in rows])) == len(rows)


def test_missing_answers_point_at_the_export(world, tmp_path):
    folder = tmp_path / "partial"
    shutil.copytree(world["infringer"], folder)
    lines = (folder / "queries.jsonl").read_text().splitlines()
    (folder / "queries.jsonl").write_text("\n".join(lines[:-3]) + "\n")
    ks = KeySet.load(world["keys"])
    fg = FolderGenerator(folder)
    prompts = [c for c in ks.captions for _ in ks.query_seeds]
    seeds = [s for _ in ks.captions for s in ks.query_seeds]
    try:
        fg.generate(prompts, seeds)
    except InputError as e:
        msg = str(e)
    else:
        raise AssertionError("missing answers were not reported")
    assert "3 of" in msg and "attribcheck keys queries --keys" in msg and "\n" not in msg
