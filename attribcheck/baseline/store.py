"""Where a manifest's baseline lives and how it is read and written: `baselines/<audit
name>.json` beside the manifest, in the repository, so a change to it is reviewed like code.
Written with sorted keys and one suspect per block (a diff of the file reads as the diff of
the audit), atomically."""
from __future__ import annotations

import json
from pathlib import Path

from attribcheck.baseline.snapshot import FORMAT, FORMAT_VERSION
from attribcheck.errors import InputError

FOLDER = "baselines"


def path_for(manifest) -> Path:
    return Path(manifest.path).parent / FOLDER / f"{manifest.name}.json"


def write(path: Path, baseline: dict) -> Path:
    from attribcheck.outputs import write_atomic

    return write_atomic(path, json.dumps(baseline, indent=2, sort_keys=True, allow_nan=False) + "\n", "baseline")


def load(path: Path) -> dict:
    from attribcheck.safe_files import read_text_bounded

    try:  # a regular file of bounded size, nested within the parser's stack
        data = json.loads(read_text_bounded(path))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, a 5,000-digit integer, nesting
        if isinstance(e, InputError):
            raise
        raise InputError(f"cannot read the baseline: {str(e).splitlines()[0][:200] or 'nested too deep'}", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise InputError(f"not an {FORMAT} file of version {FORMAT_VERSION}; re-record it", path, "format")
    for field in ("suspects", "keyset"):
        if not isinstance(data.get(field), dict):
            raise InputError("missing or not a table", path, field)
    blocks = {f"suspects.{name}": block for name, block in data["suspects"].items()}
    if data.get("source") is not None:
        blocks["source"] = data["source"]
    for field, block in blocks.items():
        _check_block(block, path, field)
    return data


def _finite(x, lo: float, hi: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi  # NaN fails both


def _check_block(block, path: Path, field: str) -> None:
    """A NaN conf or distance compares as no drift at all (every comparison with NaN is
    false): it would switch the regression check off, so it is refused here."""
    if not isinstance(block, dict) or not isinstance(block.get("verdict"), str):
        raise InputError("not a block with a verdict", path, field)
    if "conf" in block and not _finite(block["conf"], 0.0, 1.0):
        raise InputError(f"{block['conf']!r} is not a conf in [0, 1]", path, f"{field}.conf")
    distances = block.get("distances", {})
    if not isinstance(distances, dict):
        raise InputError("not a table of key ids to distances", path, f"{field}.distances")
    for key, d in distances.items():
        if not _finite(d, 0.0, float("inf")) or d == float("inf"):
            raise InputError(f"{d!r} is not a finite distance >= 0", path, f"{field}.distances.{key}")
