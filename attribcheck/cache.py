"""The generation cache: a suspect's answers, content-addressed on disk.

An entry's key is sha256 over what decides the image: the model's content identity (a
fingerprint of its weight files and everything else that was loaded with them), the query
protocol (scheduler, steps, guidance, size, dtype), the caption, the seed, the versions of
the libraries that compute it and the device type. A changed weight file, scheduler or step
count is another key, so the cache can only ever be a speed-up, never a different answer.

Entries are stored losslessly and compactly: an answer every value of which float16 holds
exactly (what an fp16 or bf16 protocol returns) is stored as float16, any other as float32,
its bytes shuffled (all first bytes of the values, then all second bytes, ...: the exponent
bytes of an image repeat, so zlib finds them: a 512-pixel photograph with a decoder's fine
grain takes 1.10 MB in fp16 against 1.34 MB unshuffled; a smooth one 0.68 either way) and
zlib-compressed; a header names the entry's own address, model
identity and dtype, and a sha256 covers header and array: a cached audit measures exactly the
distances an uncached one does (an 8-bit PNG would not). The cache is bounded: past
`$ATTRIBCHECK_CACHE_MAX_BYTES` (default MAX_BYTES) the entries read or written longest ago
are evicted after each write. An entry is
bound to its address: one copied or linked under another address (another model's, another
caption's) is a miss, as is a digest or header that does not check out (a crash, a full disk,
a flipped bit). A write goes to a temporary file in the same folder and is renamed into
place, so readers (other xdist workers, other runs) see a whole entry or none. Reads open
regular files only (no links, FIFOs or devices), up to MAX_ENTRY_BYTES. The folders are
created private (0o700).

Anyone who can write the folder can still write a self-consistent entry for any address,
so the cache is trusted only to speed up: an "attributed" verdict that rests on cached
answers is confirmed by regenerating them without it (CachedGenerator.confirm).

The cache lives outside git: `$ATTRIBCHECK_CACHE` (default `~/.cache/attribcheck`), the folder
the lab's shadow models use too, under `generations/`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attribcheck.outputs import replace_atomically

logger = logging.getLogger(__name__)

ENV = "ATTRIBCHECK_CACHE"
SUBDIR = "generations"
FORMAT = 4  # part of every key and header: a change of the entry format starts afresh
_DIGEST = 32  # bytes of sha256 in front of each entry
_HEADER = struct.Struct(">I")  # the header's length, in front of the header
# the largest entry read back: a 2048x2048 RGB float32 answer (48 MiB) fits, a planted
# multi-GB file is a miss without being read
MAX_ENTRY_BYTES = 64 * 2**20
# an entry's array once decompressed: a 4096x4096 RGB float32 answer; past it, a miss (a zlib bomb)
MAX_ARRAY_BYTES = 4096 * 4096 * 3 * 4 + 4096
MAX_BYTES = 20 * 10**9  # the whole cache's default bound (ENV_MAX_BYTES overrides)
ENV_MAX_BYTES = "ATTRIBCHECK_CACHE_MAX_BYTES"
RESCAN_SHARE = 1 / 16  # trim() rescans after this share of the bound written (GenerationCache._scanned)
_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)


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

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.folder = self.root / SUBDIR
        env = os.environ.get(ENV_MAX_BYTES, "")
        self.max_bytes = max_bytes if max_bytes is not None else int(env) if env.isdigit() else MAX_BYTES
        # trim()'s view of the folder's size: the last scan's total plus what this process wrote
        # since. A scan lists every entry (24,000 for a paper-sized selection), so trim() scans
        # only when the estimate passes the bound or this process has written RESCAN_SHARE of it
        # since (other processes' writes are seen at that scan: each can overshoot by that share)
        self._scanned: int | None = None
        self._written = 0

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def lock_path(self, name: str) -> Path:
        """A lock file for one model's computation (see CachedGenerator); its folder exists."""
        self._private(self.folder / "locks")
        return self.folder / "locks" / f"{name}.lock"

    def _private(self, folder: Path) -> None:
        """Create `folder` (and the cache root above it) with mode 0o700: other users can
        neither read the answers nor plant entries. Existing folders are left as they are."""
        missing = []
        for p in [folder, *folder.parents]:
            if p.is_dir():
                break
            missing.append(p)
        for p in reversed(missing):
            try:
                p.mkdir(mode=0o700 if p == self.root or self.root in p.parents else 0o777)
            except FileExistsError:
                pass

    def _read(self, path: Path) -> bytes | None:
        """The bytes of a regular file of at most MAX_ENTRY_BYTES, else None (never blocks)."""
        try:
            fd = os.open(path, _READ)
        except OSError:  # missing, a symlink (O_NOFOLLOW), unreadable
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
                return None
            chunks, n = [], 0
            while n <= MAX_ENTRY_BYTES:
                chunk = os.read(fd, min(1 << 20, MAX_ENTRY_BYTES + 1 - n))
                if not chunk:
                    break
                chunks.append(chunk)
                n += len(chunk)
            return b"".join(chunks) if n <= MAX_ENTRY_BYTES else None
        except OSError:
            return None
        finally:
            os.close(fd)

    def get(self, key: str, identity: str | None = None) -> np.ndarray | None:
        """The image stored for `key` (and, given, model `identity`), or None: missing,
        partial, corrupt and misplaced entries alike are misses."""
        arr = self._lookup(key, identity)
        logger.debug("cache %s %s", "miss" if arr is None else "hit", key[:16])
        return arr

    def _lookup(self, key: str, identity: str | None) -> np.ndarray | None:
        blob = self._read(self.path(key))
        if blob is None or len(blob) <= _DIGEST + _HEADER.size:
            return None
        digest, payload = blob[:_DIGEST], blob[_DIGEST:]
        if hashlib.sha256(payload).digest() != digest:
            return None
        (n,) = _HEADER.unpack_from(payload)
        try:
            header = json.loads(payload[_HEADER.size:_HEADER.size + n])
            unzip = zlib.decompressobj()
            raw = unzip.decompress(payload[_HEADER.size + n:], MAX_ARRAY_BYTES)
            if unzip.unconsumed_tail or not unzip.eof:  # larger than any answer: a bomb, or cut short
                return None
            if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("key") != key:
                return None  # another address's entry, copied here
            if identity is not None and header.get("model") != identity:
                return None
            arr = _unshuffle(raw, header.get("dtype"), header.get("shape"))
        except (ValueError, TypeError, OSError, EOFError, zlib.error):  # JSONDecodeError, UnicodeDecodeError: ValueErrors
            return None
        if arr is None:
            return None
        try:
            os.utime(self.path(key))  # read now: the last to be evicted
        except OSError:
            pass
        return arr

    def put(self, key: str, image: np.ndarray, identity: str) -> None:
        """Store atomically: a temporary file beside the entry, then os.replace."""
        arr: np.ndarray = np.ascontiguousarray(image, dtype=np.float32)  # float32, or float16 below
        half = arr.astype(np.float16)
        if np.array_equal(half.astype(np.float32), arr):  # float16 holds every value exactly
            arr = half
        if arr.ndim != 3:
            raise ValueError(f"an answer is (H, W, C); got shape {arr.shape}")
        header = json.dumps({"format": FORMAT, "key": key, "model": identity, "dtype": arr.dtype.name,
                             "shape": list(arr.shape)}, sort_keys=True).encode()
        payload = _HEADER.pack(len(header)) + header + zlib.compress(_shuffle(arr), 6)
        target = self.path(key)
        self._private(target.parent)
        replace_atomically(target, hashlib.sha256(payload).digest() + payload)
        self._written += _DIGEST + len(payload)

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

    def trim(self) -> int:
        """Evict the entries read or written longest ago until the cache is within max_bytes;
        returns how many went. Cheap when nothing needs to go (see `_scanned`)."""
        if (self._scanned is not None and self._scanned + self._written <= self.max_bytes
                and self._written <= self.max_bytes * RESCAN_SHARE):
            return 0
        entries = []
        if self.folder.is_dir():
            for p in self.folder.glob("??/*.npy"):
                try:
                    st = p.stat()
                except OSError:
                    continue
                entries.append((st.st_mtime_ns, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        gone = 0
        for _, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            try:
                p.unlink()
            except OSError:
                continue
            logger.debug("cache evicted %s (%d bytes)", p.stem[:16], size)
            total -= size
            gone += 1
        self._scanned, self._written = total, 0
        return gone

    def clear(self) -> int:
        """Remove every generation (nothing else in the cache root); returns how many."""
        import shutil

        n = self.info().entries
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
        return n


def _shuffle(arr: np.ndarray) -> bytes:
    """The array's bytes, byte plane by byte plane (little-endian values)."""
    b = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).view(np.uint8)
    return b.reshape(-1, arr.dtype.itemsize).T.tobytes()


def _unshuffle(raw: bytes, dtype, shape) -> np.ndarray | None:
    """`_shuffle` undone; None unless `dtype` and `shape` are an answer's and match `raw`."""
    if dtype not in ("float16", "float32") or not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 4096 for n in shape)) or shape[2] > 4:
        return None
    dt = np.dtype(dtype).newbyteorder("<")
    if len(raw) != shape[0] * shape[1] * shape[2] * dt.itemsize:
        return None
    planes = np.frombuffer(raw, np.uint8).reshape(dt.itemsize, -1)
    return np.ascontiguousarray(planes.T).view(dt).reshape(shape).astype(np.float32)
