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
    return data
