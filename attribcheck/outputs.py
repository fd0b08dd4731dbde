"""Every file attribcheck writes goes through here (reports, evidence pages, baselines, key sets,
discriminators, query lists).

Output folders are often shared (a CI workspace, a cache on a runner), so a write never follows
a link planted at the target, never uses a fixed temporary name another process could have
prepared, and never leaves half a file: the text goes to a temporary file created exclusively
(O_EXCL, a random name) beside the target, and is renamed over it. Paths are checked with
`check_file` / `check_folder` before an audit queries anything, so a bad `--json` or `--report`
fails in a second, not after an hour of generation.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from attribcheck.errors import InputError


def _first_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(".")


def _probe(folder: Path, where: Path, what: str) -> None:
    """Create and remove a temporary file in `folder` (created if absent): proof it can be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".attribcheck-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"cannot write there ({e.strerror or e})", where, what) from None


def check_file(path: str | Path, what: str = "output") -> Path:
    """An output file that can be written: not a link, not a folder, inside a writable folder."""
    path = _target(path, what)
    _probe(path.parent, path, what)
    return path


def _target(path: str | Path, what: str) -> Path:
    """`path` is no link and no folder, and what exists above it is a folder."""
    path = Path(path)
    if path.is_symlink():
        raise InputError("is a symbolic link; attribcheck replaces output files and never writes through a link",
                         path, what)
    if path.exists() and not path.is_file():
        raise InputError("exists and is not a regular file", path, what)
    above = _first_existing(path.parent)
    if not above.is_dir():
        raise InputError(f"{above} is not a folder", path, what)
    return path


def check_folder(path: str | Path, what: str = "output folder", index: str | None = None) -> Path:
    """An output folder (created if absent) and, with `index`, the file that will be written in it."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise InputError("exists and is not a folder", path, what)
    above = _first_existing(path)
    if not above.is_dir():
        raise InputError(f"{above} is not a folder", path, what)
    _probe(path, path, what)
    if index is not None:
        check_file(path / index, what)
    return path


def write_atomic(path: str | Path, data: str | bytes, what: str = "output") -> Path:
    """Write `data` to `path` whole or not at all, through an exclusively created temporary file."""
    path = _target(path, what)  # no probe: the temporary file the write makes is the proof
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write there ({e.strerror or e})", path, what) from None
    replace_atomically(path, data.encode("utf-8") if isinstance(data, str) else data)  # a full disk stays an OSError
    return path


def replace_atomically(path: Path, payload: bytes) -> None:
    """The write itself, for callers that checked `path` already (the generation cache, whose
    folders it owns): a temporary file created exclusively beside it, renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)  # replaces a link planted meanwhile, never writes through it
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
