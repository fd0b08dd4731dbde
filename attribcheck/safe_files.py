"""Reading files that someone else controls: regular files only, and never more than a limit.

`open()` on a FIFO blocks until a writer comes; `/dev/zero` (or a symlink to it) never ends;
a folder or socket fails in ways that read as other errors. So a file is stat'ed first
(following symlinks: what counts is what the link reaches), opened with O_NONBLOCK (a FIFO
swapped in after the check then opens at once instead of hanging), checked again on the open
descriptor (what is read is what was checked), and read up to a byte limit.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from attribcheck.errors import InputError, IntegrityError

# The most any single untrusted JSON, TOML or image file may hold (the largest shipped
# artifact, a discriminator with a few hundred shadows, is well under 1 MB).
MAX_FILE_BYTES = 64 * 2**20
# The most entries a model folder may hold before we stop walking it.
MAX_TREE_ENTRIES = 100_000
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | Path, where: str | Path | None = None, field: str | None = None) -> Path:
    """`path` if it is (or links to) a regular file; InputError when it is missing or
    unreadable, IntegrityError when it is a FIFO, device, socket or folder."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file", where or path, field) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", where or path, field) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path.name} is a folder, not a file", where or path, field)
    if not stat.S_ISREG(st.st_mode):  # planted: nothing we write or ship is a FIFO or a device
        raise IntegrityError(f"{path.name} is {_kind(st.st_mode)}, not a regular file", where or path, field)
    return path


def read_bytes_bounded(path: str | Path, limit: int = MAX_FILE_BYTES, where: str | Path | None = None,
                       field: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or a one-line error."""
    path = regular_file(path, where, field)
    where = where or path
    try:
        fd = os.open(path, _FLAGS)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", where, field) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between the stat and the open
            raise IntegrityError(f"{path.name} is {_kind(st.st_mode)}, not a regular file", where, field)
        if st.st_size > limit:
            raise InputError(f"{st.st_size} bytes, over the limit of {limit}", where, field)
        chunks, n = [], 0
        while n <= limit:  # the size can grow while we read: stop one byte past the limit
            chunk = os.read(fd, min(2**20, limit + 1 - n))
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
        if n > limit:
            raise InputError(f"over the limit of {limit} bytes", where, field)
        return b"".join(chunks)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", where, field) from None
    finally:
        os.close(fd)


def read_text_bounded(path: str | Path, limit: int = MAX_FILE_BYTES, where: str | Path | None = None,
                      field: str | None = None) -> str:
    """UTF-8 text of a regular file of at most `limit` bytes, or a one-line InputError."""
    data = read_bytes_bounded(path, limit, where, field)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", where or path, field) from None


def check_tree(folder: str | Path, where: str | Path | None = None) -> None:
    """Every entry under `folder` (symlinks followed to what they reach) is a regular file or
    a folder: a loader that opens its files by name (diffusers, transformers) cannot then
    block on a FIFO or read a device forever. The walk is bounded, so a symlink loop ends."""
    folder = Path(folder)
    seen = 0
    for root, dirs, files in os.walk(folder, followlinks=True):
        for name in dirs + files:
            seen += 1
            if seen > MAX_TREE_ENTRIES:
                raise InputError(f"more than {MAX_TREE_ENTRIES} files (a symlink loop?)", where or folder)
            p = Path(root) / name
            try:
                st = os.stat(p)
            except OSError as e:
                raise InputError(f"{p.relative_to(folder)}: cannot read: {e.strerror}", where or folder) from None
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise IntegrityError(f"{p.relative_to(folder)} is {_kind(st.st_mode)}, not a regular file",
                                     where or folder)


def read_json_object(path: Path, missing: str = "no such file") -> dict:
    """A JSON object from an untrusted file, or an InputError naming the file: a regular file
    (never a FIFO or a device) of bounded size, nested no deeper than the parser's stack."""
    import json


    path = Path(path)
    if not path.exists():
        raise InputError(missing, path)
    text = read_text_bounded(path)
    try:
        data = json.loads(text)  # NaN and 1e999 parse: each schema names the field that holds one
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e})", path) from e
    except RecursionError:  # thousands of nested brackets: the parser's stack, not a traceback
        raise InputError("not valid JSON (nested too deep)", path) from None
    except ValueError as e:  # an integer of 5,000 digits
        raise InputError(f"not valid JSON ({str(e).splitlines()[0][:120]})", path) from None
    if not isinstance(data, dict):
        raise InputError("not a JSON object", path)
    return data
