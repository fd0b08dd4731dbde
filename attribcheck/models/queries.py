"""What to ask a black-box suspect: every (prompt, seed) pair an audit of a key set queries.

`attribcheck keys queries --keys K --out queries.jsonl` writes one JSON object per line,
`{"prompt", "seed", "file"}`, in the layout a folder suspect reads: ask the suspect each
prompt under each seed (or as close as its API allows), save the answer as `file` beside
queries.jsonl, and name the folder as a `kind = "folder"` suspect. The file names are
suggestions; any name inside the folder will do.

The prompts are the key captions: share the file only with whoever collects the answers.
"""
from __future__ import annotations

import json
from pathlib import Path

from attribcheck.keys.keyset import KeySet

COMMAND = "attribcheck keys queries --keys <key set> --out <suspect folder>/queries.jsonl"


def queries(keyset: KeySet) -> list[dict]:
    seeds = [int(s) for s in keyset.query_seeds]
    return [{"prompt": caption, "seed": seed, "file": f"k{i:04d}-s{seed}.png"}
            for i, caption in enumerate(keyset.captions) for seed in seeds]


def write_queries(keyset: KeySet, out: str | Path) -> Path:
    from attribcheck.outputs import write_atomic

    text = "".join(json.dumps(q, ensure_ascii=False, allow_nan=False) + "\n" for q in queries(keyset))
    return write_atomic(out, text, "--out")
