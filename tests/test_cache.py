"""The generation cache: lossless, content-addressed, atomic, shared safely, a speed-up only."""
from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from attribcheck.cache import GenerationCache, default_root, entry_key
from attribcheck.models.cached_generator import CachedGenerator
from attribcheck.models.protocol import QueryProtocol, Runtime

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "fixtures" / "world" / "emoji"


class Seeded:
    """A deterministic stand-in model: an image from (prompt, seed); counts what it computes."""

    def __init__(self, log: Path | None = None, delay: float = 0.0):
        self.name, self.calls, self.log, self.delay = "seeded", 0, log, delay

    def generate(self, prompts, seeds):
        import time

        time.sleep(self.delay)
        self.calls += len(prompts)
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()} {len(prompts)}\n")
        return [np.random.default_rng([int(s), sum(map(ord, p))]).random((8, 8, 3)).astype(np.float32)
                for p, s in zip(prompts, seeds)]


def cached(tmp_path, model=None, identity="model-a", protocol=None):
    opened = []

    def open_model():
        opened.append(1)
        return model or Seeded()

    gen = CachedGenerator("s", identity, open_model, GenerationCache(tmp_path), protocol or QueryProtocol())
    return gen, opened


PROMPTS, SEEDS = ["a cat", "a dog", "a cat"], [0, 0, 1]


def test_round_trip_is_lossless_and_a_warm_run_opens_no_model(tmp_path):
    first, opened = cached(tmp_path)
    a = first.generate(PROMPTS, SEEDS)
    assert opened == [1] and first.misses == 3 and first.hits == 0
    second, opened2 = cached(tmp_path)
    b = second.generate(PROMPTS, SEEDS)
    assert opened2 == [] and not second.loaded and second.hits == 3  # nothing loaded when every query hits
    for x, y in zip(a, b):
        assert x.dtype == y.dtype == np.float32 and np.array_equal(x, y)  # bit for bit
    # a partial hit loads the model once and asks it only for what is missing
    third, opened3 = cached(tmp_path)
    third.generate(PROMPTS + ["a bird"], SEEDS + [0])
    assert opened3 == [1] and third.misses == 1 and third.model.calls == 1


def test_a_pair_asked_twice_in_one_call_is_computed_once(tmp_path):
    # D_S repeats captions: Strategy 1 asks for the same (prompt, seed) once per copy
    gen, _ = cached(tmp_path)
    out = gen.generate(["a cat", "a dog", "a cat", "a cat"], [0, 0, 0, 1])
    assert gen.model.calls == 3 and gen.misses == 3 and gen.hits == 1
    assert np.array_equal(out[0], out[2]) and not np.array_equal(out[0], out[3])
    assert np.array_equal(out[2], Seeded().generate(["a cat"], [0])[0])


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    gen, _ = cached(tmp_path)
    gen.generate(PROMPTS, SEEDS)
    files = [p for p in (tmp_path / "generations").rglob("*") if p.is_file() and "locks" not in p.parts]
    assert len(files) == 3 and all(p.suffix == ".npy" and not p.name.startswith(".tmp") for p in files)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "pickle"])
def test_a_corrupt_or_partial_entry_is_a_miss_never_a_wrong_image(tmp_path, damage):
    cache = GenerationCache(tmp_path)
    key = entry_key("m", {}, "p", 0)
    good = np.full((4, 4, 3), 0.25, np.float32)
    cache.put(key, good, "m")
    path = cache.path(key)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0x01]))
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(blob)))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a well-formed digest and header over a pickled object array: refused, never unpickled
        import hashlib
        import io
        import json
        import struct

        buf = io.BytesIO()
        np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
        header = json.dumps({"format": 2, "key": key, "model": "m"}).encode()
        payload = struct.pack(">I", len(header)) + header + buf.getvalue()
        path.write_bytes(hashlib.sha256(payload).digest() + payload)
    assert cache.get(key) is None
    cache.put(key, good, "m")  # a miss is recomputed and overwrites the damaged entry
    assert np.array_equal(cache.get(key), good)


@pytest.mark.parametrize("change", [{"steps": 20}, {"scheduler": "EulerDiscreteScheduler"},
                                    {"guidance_scale": 2.0}, {"dtype": "float16"}])
def test_a_changed_protocol_never_hits(tmp_path, change):
    gen, _ = cached(tmp_path)
    gen.generate(PROMPTS, SEEDS)
    other, opened = cached(tmp_path, protocol=QueryProtocol(**change))
    other.generate(PROMPTS, SEEDS)
    assert opened == [1] and other.hits == 0 and other.misses == 3


def test_a_changed_weight_file_never_hits(tmp_path):
    from attribcheck.models.spec import SuspectSpec
    from attribcheck.models.builtin_kinds import diffusers_identity

    model = tmp_path / "model"
    shutil.copytree(WORLD / "models" / "innocent-s0", model, symlinks=False)
    spec = SuspectSpec("m", model, "innocent")
    before = diffusers_identity(spec)
    assert diffusers_identity(spec) == before  # stable
    weights = next(model.glob("unet/*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    after = diffusers_identity(spec)
    assert after != before
    assert entry_key(str(after), {}, "p", 0) != entry_key(str(before), {}, "p", 0)
    # the LoRA scale and the variant are part of the identity too
    assert diffusers_identity(SuspectSpec("m", model, "innocent", variant="fp16")) != after


def _worker(root: str, log: str, out: str) -> None:
    gen = CachedGenerator("s", "shared", lambda: Seeded(Path(log), delay=1.0), GenerationCache(root))
    imgs = gen.generate(PROMPTS, SEEDS)
    np.save(out, np.stack(imgs))


def test_two_processes_compute_a_suspect_once(tmp_path):
    """What two xdist workers asking for one suspect do: one computes, the other waits and reads."""
    log = tmp_path / "computed.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "c"), str(log), str(tmp_path / f"out{i}.npy")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(log.read_text().splitlines()) == 1  # computed once, whichever worker asked first
    assert np.array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))


def test_default_root_is_the_one_shadows_use(monkeypatch, tmp_path):
    from attribcheck.lab.shadows.build import default_cache

    monkeypatch.setenv("ATTRIBCHECK_CACHE", str(tmp_path))
    assert default_root() == default_cache() == tmp_path
    assert GenerationCache().folder == tmp_path / "generations"
    monkeypatch.delenv("ATTRIBCHECK_CACHE")
    assert default_root() == Path.home() / ".cache" / "attribcheck"


def test_cached_audit_of_a_real_model_gives_the_same_verdict_and_distances(tmp_path):
    """An uncached audit, then a cold and a warm cached one, of a real diffusers suspect."""
    from attribcheck.audit.run import audit_suspect, auditor_for
    from attribcheck.manifest import Manifest
    from attribcheck.models.spec import open_generator

    manifest = Manifest.load(ROOT / "suites" / "emoji.toml")
    auditor = auditor_for(manifest)
    spec = next(s for s in manifest.suspects if s.name == "infringer-rho1.0-s0")
    runtime = Runtime(threads=1)
    cache = GenerationCache(tmp_path)
    plain = audit_suspect(auditor, spec, runtime)
    cold = audit_suspect(auditor, spec, runtime, cache=cache)
    warm_gen = open_generator(spec, auditor.keyset.protocol, runtime, cache)
    warm = auditor.audit(warm_gen, spec.name)
    assert plain.error is None and cold.error is None
    assert not warm_gen.loaded and warm_gen.hits == len(auditor.keyset) * len(auditor.keyset.query_seeds)
    for v in (cold.verdict, warm):
        assert v.verdict == plain.verdict.verdict
        assert v.distances == plain.verdict.distances  # exactly: stored losslessly
        assert v.best_seeds == plain.verdict.best_seeds
    assert cache.info().entries == len(auditor.keyset) * len(auditor.keyset.query_seeds)


def test_cli_cache_info_and_clear(tmp_path, capsys):
    from attribcheck.cli import main

    gen, _ = cached(tmp_path)
    gen.generate(PROMPTS, SEEDS)
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    assert "3 generations" in capsys.readouterr().out
    (tmp_path / "shadows").mkdir()  # the shadows share the root: clear leaves them alone
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert "removed 3" in capsys.readouterr().out
    assert GenerationCache(tmp_path).info().entries == 0 and (tmp_path / "shadows").is_dir()


def test_threads_and_devices_per_xdist_worker(monkeypatch):
    from attribcheck.models.protocol import available_cores, default_threads, worker_device

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    assert default_threads(1, load=0.0) == cores  # an idle machine: every core
    assert default_threads(cores * 2, load=0.0) == 1  # never 0
    assert default_threads(1, load=cores) == 1  # every core busy with other jobs: one thread
    assert default_threads(1, load=cores - 1) == 1 and default_threads(1, load=cores + 5) == 1
    monkeypatch.setattr("attribcheck.models.protocol.available_cores", lambda: 16)
    assert default_threads(1, load=5.6) == 10 and default_threads(2, load=5.6) == 5
    monkeypatch.setattr("os.getloadavg", lambda: (12.2, 0.0, 0.0))
    assert default_threads(1) == 4  # the machine's own load average by default
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads(4) == 3  # the user's own setting wins
    assert worker_device("cuda", "gw3", 2) == "cuda:1" and worker_device("cuda", "gw0", 2) == "cuda:0"
    assert worker_device("cuda", "gw3", 1) == "cuda" and worker_device("cuda:1", "gw0", 4) == "cuda:1"
    assert worker_device("cpu", "gw1", 4) == "cpu" and worker_device("cuda", None, 4) == "cuda"


def test_busy_while_another_holder_computes(tmp_path):
    gen, _ = cached(tmp_path)
    assert not gen.busy()
    other = gen._lock()  # what another worker holds while it computes this model
    other.acquire()
    try:
        assert gen.busy()
    finally:
        other.release()
    assert not gen.busy()


def test_an_answer_far_over_the_protocols_size_is_refused_before_it_is_cached(tmp_path):
    from attribcheck.errors import DegenerateOutputError
    from attribcheck.images import answer_side_limit

    class Huge(Seeded):
        def generate(self, prompts, seeds):
            return [np.zeros((2048, 2048, 3), np.float32) for _ in prompts]  # 16 x 16 keys asked

    gen = CachedGenerator("huge", "model-h", Huge, GenerationCache(tmp_path), QueryProtocol(),
                          max_side=answer_side_limit(16, 16))
    with pytest.raises(DegenerateOutputError, match="2048x2048 is over 32 pixels"):
        gen.generate(["a cat"], [0])
    assert GenerationCache(tmp_path).info().entries == 0  # nothing reached the cache


def test_entries_are_compact_lossless_and_bounded(tmp_path):
    import zlib

    cache = GenerationCache(tmp_path, max_bytes=10**9)
    rng = np.random.default_rng(0)
    full = rng.random((64, 64, 3)).astype(np.float32)  # needs float32: kept as float32
    half = full.astype(np.float16).astype(np.float32)  # what an fp16 protocol returns: float16 holds it
    cache.put("a" * 64, full, "m")
    cache.put("b" * 64, half, "m")
    assert np.array_equal(cache.get("a" * 64, "m"), full) and np.array_equal(cache.get("b" * 64, "m"), half)
    assert cache.get("a" * 64).dtype == np.float32
    assert cache.path("b" * 64).stat().st_size < 0.6 * cache.path("a" * 64).stat().st_size
    # a zlib bomb under a valid digest and header is a miss, never decompressed in full
    import hashlib
    import io
    import json

    from attribcheck.cache import FORMAT, _HEADER

    buf = io.BytesIO()
    np.save(buf, np.zeros((4096, 4096, 4), np.float32))
    header = json.dumps({"format": FORMAT, "key": "c" * 64, "model": "m", "dtype": "float32"}, sort_keys=True).encode()
    payload = _HEADER.pack(len(header)) + header + zlib.compress(buf.getvalue(), 9)
    path = cache.path("c" * 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(hashlib.sha256(payload).digest() + payload)
    assert cache.get("c" * 64, "m") is None
    # bounded: past max_bytes the entry used longest ago goes first
    os.utime(cache.path("a" * 64), (1, 1))
    small = GenerationCache(tmp_path, max_bytes=cache.path("b" * 64).stat().st_size + 1)
    path.unlink()
    assert small.trim() == 1 and small.get("a" * 64) is None and small.get("b" * 64) is not None


def _photo(side: int = 512) -> np.ndarray:
    """A photograph (scikit-learn's sample) with a decoder's fine grain (1% noise), as an fp16
    decoder returns it. Without the grain zlib alone makes 0.67 MB of it; with it, 1.34 MB,
    over the budget, and 1.10 MB byte-shuffled."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    im = Image.fromarray(load_sample_image("flower.jpg")).resize((side, side), Image.BICUBIC)
    grain = np.random.default_rng(0).normal(0, 0.01, (side, side, 3))
    return np.clip(np.asarray(im, dtype=np.float32) / 255 + grain, 0, 1).astype(np.float16).astype(np.float32)


def test_a_512_pixel_fp16_answer_fits_the_real_size_budget(tmp_path):
    # issue 18: one SD-1.5 suspect's cold audit (30 keys x 4 seeds) under 150 MB: 1.25 MB an answer
    cache, img = GenerationCache(tmp_path), _photo()
    key = entry_key("m", QueryProtocol(dtype="float16").to_dict(), "a flower", 0)
    cache.put(key, img, "m")
    size = cache.path(key).stat().st_size
    assert size < 150e6 / 120, size
    got = cache.get(key, "m")
    assert got.dtype == np.float32 and np.array_equal(got, img)  # lossless: the same bits back
    fp32 = img + np.float32(1e-5)  # float16 cannot hold these: stored as float32, exactly
    cache.put(key, fp32, "m")
    assert np.array_equal(cache.get(key, "m"), fp32)


@pytest.mark.parametrize("shape", [[512, 512], [512, 512, 3, 1], [0, 512, 3], [512, 512, 2 ** 40], "512",
                                   [512.0, 512, 3], [True, 512, 3], [256, 512, 3]])
def test_a_header_whose_shape_does_not_fit_its_bytes_is_a_miss(tmp_path, shape):
    import hashlib
    import json
    import zlib

    from attribcheck import cache as c

    cache, img = GenerationCache(tmp_path), _photo(64)
    key = entry_key("m", QueryProtocol().to_dict(), "a flower", 0)
    cache.put(key, img, "m")
    header = json.dumps({"format": c.FORMAT, "key": key, "model": "m", "dtype": "float16", "shape": shape}).encode()
    payload = c._HEADER.pack(len(header)) + header + zlib.compress(c._shuffle(img.astype(np.float16)))
    cache.path(key).write_bytes(hashlib.sha256(payload).digest() + payload)  # a self-consistent forgery
    assert cache.get(key, "m") is None


def test_trim_scans_only_when_the_bound_may_be_passed(tmp_path, monkeypatch):
    """A paper-sized selection writes 24,000 answers, trimming after each batch: a scan of
    every entry each time was quadratic. trim() now scans only when its estimate (the last
    scan plus this process's writes) nears the bound, and still evicts once it is passed."""
    from pathlib import Path

    img = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    cache = GenerationCache(tmp_path)
    cache.put("0" * 64, img, "m")
    size = cache.path("0" * 64).stat().st_size
    cache = GenerationCache(tmp_path, max_bytes=40 * size)  # rescans after 40/16 = 2.5 entries written
    scans = []
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: scans.append(pattern) or real_glob(self, pattern))
    assert cache.trim() == 0 and len(scans) == 1  # the first call always scans
    cache.put("1" * 64, img, "m")
    cache.put("2" * 64, img, "m")
    assert cache.trim() == 0 and len(scans) == 1  # 2 entries written: within the slack, no scan
    cache.put("3" * 64, img, "m")
    assert cache.trim() == 0 and len(scans) == 2  # past the share: a scan, which finds 4 entries
    small = GenerationCache(tmp_path, max_bytes=2 * size)
    assert small.trim() == 2 and len(list(real_glob(cache.folder, "??/*.npy"))) == 2  # over the bound: evicted
