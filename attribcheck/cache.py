"""The generation cache: a suspect's answers, content-addressed on disk.

An entry's key is sha256 over what decides the image: the model's content identity (a
fingerprint of its weight files and everything else that was loaded with them), the query
protocol (scheduler, steps, guidance, size, dtype), the caption, the seed, the versions of
the libraries that compute it and the device type. A changed weight file, scheduler or step
count is another key, so the cache can only ever be a speed-up, never a different answer.

Entries are float32 arrays stored losslessly (`.npy` bytes after a sha256 of them): a cached
audit measures exactly the distances an uncached one does (an 8-bit PNG would not). A
write goes to a temporary file in the same folder and is renamed into place, so readers
(other xdist workers, other runs) see a whole entry or none; an entry whose digest or
header does not check out (a crash, a full disk, a flipped bit) is a miss.

The cache lives outside git: `$ATTRIBCHECK_CACHE` (default `~/.cache/attribcheck`), the folder
the lab's shadow models use too, under `generations/`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV = "ATTRIBCHECK_CACHE"
SUBDIR = "generations"
FORMAT = 1  # part of every key: a change of the entry format starts afresh
_DIGEST = 32  # bytes of sha256 in front of each entry


def default_root() -> Path:
    """The cache folder of every attribcheck cache: $ATTRIBCHECK_CACHE, else ~/.cache/attribcheck."""
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "attribcheck")


def entry_key(identity: str, protocol: dict, prompt: str, seed: int) -> str:
    """The content address of one answer."""
    text = json.dumps({"format": FORMAT, "model": identity, "protocol": protocol, "prompt": prompt,
                       "seed": int(seed)}, sort_keys=True, ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CacheInfo:
    root: Path
    entries: int
    bytes: int

    def __str__(self) -> str:
        return f"{self.root}: {self.entries} generations, {self.bytes / 1e6:.1f} MB"


class GenerationCache:
    """Images by content address under `root/generations/ab/<key>.npy`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.folder = self.root / SUBDIR

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def lock_path(self, name: str) -> Path:
        """A lock file for one model's computation (see CachedGenerator)."""
        return self.folder / "locks" / f"{name}.lock"

    def get(self, key: str) -> np.ndarray | None:
        """The stored image, or None: missing, partial and corrupt entries alike are misses."""
        try:
            blob = self.path(key).read_bytes()
        except OSError:
            return None
        digest, payload = blob[:_DIGEST], blob[_DIGEST:]
        if len(blob) <= _DIGEST or hashlib.sha256(payload).digest() != digest:
            return None
        try:
            arr = np.load(io.BytesIO(payload), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None
        if arr.dtype != np.float32 or arr.ndim != 3:
            return None
        return arr

    def put(self, key: str, image: np.ndarray) -> None:
        """Store atomically: a temporary file beside the entry, then os.replace."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
        payload = buf.getvalue()
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def info(self) -> CacheInfo:
        n = size = 0
        if self.folder.is_dir():
            for p in self.folder.glob("??/*.npy"):
                try:
                    size += p.stat().st_size
                    n += 1
                except OSError:
                    pass
        return CacheInfo(self.folder, n, size)

    def clear(self) -> int:
        """Remove every generation (nothing else in the cache root); returns how many."""
        import shutil

        n = self.info().entries
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
        return n
