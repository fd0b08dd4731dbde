"""Content fingerprints of models and image folders: what the audit report records and what
every cache is keyed by. A cache keyed by a folder's name would hand a new checkpoint the
old one's results; a fingerprint of the bytes cannot."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

# Files our own tools write into a model folder; they do not change what the model generates.
IGNORED = {".done", "profiles", "finetune_config.json", "train_set.json", "__pycache__"}
_CHUNK = 1 << 20
MAX_FILES = 10_000  # a model folder holds tens of files; a link to / would hold millions
_memo: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a regular file's bytes (symlinks followed). A FIFO, a device or a link to
    /dev/zero is an IntegrityError: hashing it would block or never end."""
    from attribcheck.errors import IntegrityError
    from attribcheck.safe_files import regular_file

    regular_file(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in now opens, not hangs
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError("not a regular file", path)
        # the memo is keyed by what a rewrite changes: ctime moves on every write, even
        # one that restores the old size and mtime
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in _memo:  # hashing a multi-GB checkpoint once per process is enough
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
            _memo[key] = h.hexdigest()
    return _memo[key]


def fingerprint(path: str | Path, ignore: tuple[str, ...] = ()) -> str:
    """sha256 over a file's bytes, or over a folder's files (relative path and digest, sorted;
    symlinked components followed, so a shared VAE counts like a copied one). `ignore`: paths
    relative to the folder left out (an artifact fingerprinted on its own)."""
    path = Path(path)
    if not path.is_dir():  # a file; missing, a FIFO or a device: file_digest's one-line error
        return file_digest(path)
    from attribcheck.errors import IntegrityError

    h, seen, count = hashlib.sha256(), set(), 0
    for root, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a symlink loop, or two links to one folder: hash it once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if d not in IGNORED)
        for name in sorted(files):
            if name in IGNORED:
                continue
            count += 1
            if count > MAX_FILES:
                raise IntegrityError(f"more than {MAX_FILES} files (a link to a whole file system?)", path)
            p = Path(root) / name
            if p.relative_to(path).as_posix() in ignore:
                continue
            h.update(f"{p.relative_to(path).as_posix()}\0{file_digest(p)}\n".encode())
    return h.hexdigest()
