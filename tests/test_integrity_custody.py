"""Chain of custody and the generation cache, tried from the attacker's side (issue 16, items 1, 2).

Pins: every artifact a verdict rests on has a content hash; a pinned manifest refuses any
that changed, with one line naming the manifest, the pin, and both hashes. Cache: an entry
is bound to its address and model, reads open regular files only and within a bound, the
folder is private, and an accusation never rests on cached answers alone.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from attribcheck.cache import GenerationCache, entry_key
from attribcheck.errors import InputError, IntegrityError
from attribcheck.models.cached_generator import CachedGenerator
from attribcheck.models.protocol import QueryProtocol, Runtime

ROOT = Path(__file__).resolve().parents[1]
SUITES = sorted((ROOT / "suites").glob("*.toml"))
HEX12 = r"[0-9a-f]{12}"


class Hung(Exception):
    """Not an OSError: code that swallows OSError must not swallow the deadline."""


@contextmanager
def deadline(seconds: int = 20):
    """A hang is a failure, not a stuck test run."""
    def boom(*_):
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- fingerprints: regular files only

@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "dangling"])
def test_a_model_folder_with_a_fifo_or_a_device_link_is_refused_not_hung(tmp_path, plant):
    from attribcheck.fingerprint import fingerprint

    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "unet" / "config.json").write_text("{}")
    bad = model / "unet" / "diffusion_pytorch_model.safetensors"
    if plant == "fifo":
        os.mkfifo(bad)
    elif plant == "dev-zero":
        bad.symlink_to("/dev/zero")
    else:
        bad.symlink_to(tmp_path / "nowhere")
    with deadline(10), pytest.raises((InputError, IntegrityError)) as e:
        fingerprint(model)
    assert "diffusion_pytorch_model.safetensors" in str(e.value) and "\n" not in str(e.value)


def test_a_file_rewritten_in_place_with_its_old_size_and_mtime_gets_a_new_fingerprint(tmp_path):
    """The per-process memo must not hand a swapped checkpoint the old digest."""
    from attribcheck.fingerprint import fingerprint

    f = tmp_path / "w.safetensors"
    f.write_bytes(b"a" * 1000)
    before = fingerprint(f)
    st = f.stat()
    f.write_bytes(b"b" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fingerprint(f) != before


# ---------------------------------------------------------------- pins

def _world_copy(tmp_path: Path) -> Path:
    """The shipped emoji suite and the fixture world it reads, copied (links kept) under tmp."""
    for part in ("emoji", "shared"):
        shutil.copytree(ROOT / "fixtures" / "world" / part, tmp_path / "fixtures" / "world" / part, symlinks=True)
    (tmp_path / "suites").mkdir()
    target = tmp_path / "suites" / "emoji.toml"
    shutil.copyfile(ROOT / "suites" / "emoji.toml", target)
    return target


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.stem)
def test_the_shipped_suites_are_pinned_and_their_artifacts_match(suite):
    from attribcheck import pins
    from attribcheck.manifest import Manifest

    m = Manifest.load(suite)
    assert m.pins, f"{suite.name} carries no [pins]: run attribcheck pin --manifest {suite}"
    hashes = pins.verify(m)
    names = {"source", "keys"} | {f"suspects.{s.name}" for s in m.suspects} | {f"innocents.{s.name}" for s in m.innocents}
    if m.discriminator is not None:
        names.add("discriminator")
    assert set(hashes) == names == set(m.pins)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes.values())


TAMPER = {  # artifact -> (file to flip, relative to the world, the pin that must name it)
    "source weights": ("models/source/unet/diffusion_pytorch_model.safetensors", "pins.source"),
    "a key image": ("keys/generation/images/0003.png", "pins.keys"),
    "the key captions": ("keys/generation/keyset.json", "pins.keys"),
    "the discriminator": ("keys/generation/discriminator.json", "pins.discriminator"),
    "an innocent": ("models/ref-calibration/unet/diffusion_pytorch_model.safetensors", "pins.innocents.ref-calibration"),
    "a suspect's weights": ("models/innocent-s0/unet/diffusion_pytorch_model.safetensors", "pins.suspects.innocent-s0"),
    "a suspect's config": ("models/infringer-rho0.3-s1/unet/config.json", "pins.suspects.infringer-rho0.3-s1"),
}


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_tampering_with_a_shipped_artifact_fails_naming_it(tmp_path, what):
    from attribcheck import pins
    from attribcheck.manifest import Manifest

    manifest = _world_copy(tmp_path)
    pins.verify(Manifest.load(manifest))  # the untouched copy passes
    rel, field = TAMPER[what]
    path = tmp_path / "fixtures" / "world" / "emoji" / rel
    if path.suffix == ".json":  # keep it valid JSON: change one digit (a value, not the syntax)
        text = path.read_text()
        i = next(i for i, c in enumerate(text) if c.isdigit() and i > len(text) // 3)
        path.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])
    else:
        _flip(path)
    with pytest.raises(IntegrityError) as e:
        pins.verify(Manifest.load(manifest))
    msg = str(e.value)
    assert "\n" not in msg and str(manifest) in msg and field in msg
    assert len(re.findall(HEX12, msg)) >= 2, msg  # expected and found


pytest_plugins = ["pytester"]


def test_a_tampered_shipped_artifact_fails_pytest_suites_naming_it(pytester):
    """The release gate: `pytest suites/` on the shipped suite over a world whose innocent's
    weights were changed fails, one line naming the pin, before any model is queried."""
    manifest = _world_copy(pytester.path)
    (manifest.parent / "test_instance.py").write_text((ROOT / "suites" / "test_instance.py").read_text())
    _flip(pytester.path / "fixtures/world/emoji/models/innocent-s0/unet/diffusion_pytorch_model.safetensors")
    res = pytester.runpytest("-p", "no:cacheprovider", "--attrib-no-cache", "suites")
    out = res.stdout.str() + res.stderr.str()
    assert res.ret != 0
    lines = [line for line in out.splitlines() if "pins.suspects.innocent-s0" in line]
    assert lines and re.search(f"expected sha256:{HEX12}, found sha256:{HEX12}", lines[0]), out[-3000:]
    assert "Traceback" not in out


def test_a_shared_component_changed_under_every_model_is_caught(tmp_path):
    """The VAE is a link into shared/: a fingerprint follows it, so changing it changes the models."""
    from attribcheck import pins
    from attribcheck.manifest import Manifest

    manifest = _world_copy(tmp_path)
    vae = next((tmp_path / "fixtures" / "world" / "shared" / "vae").rglob("*.safetensors"))
    _flip(vae)
    with pytest.raises(IntegrityError, match="pins.source"):
        pins.verify(Manifest.load(manifest))


def test_a_suspect_swapped_for_another_model_is_caught(tmp_path):
    """A pin follows content, not names: the innocent's folder replaced by an infringer's."""
    from attribcheck import pins
    from attribcheck.manifest import Manifest

    manifest = _world_copy(tmp_path)
    models = tmp_path / "fixtures" / "world" / "emoji" / "models"
    shutil.rmtree(models / "innocent-s1")
    shutil.copytree(models / "infringer-rho1.0-s0", models / "innocent-s1", symlinks=True)
    with pytest.raises(IntegrityError, match="pins.suspects.innocent-s1"):
        pins.verify(Manifest.load(manifest))


def test_an_artifact_added_to_a_pinned_manifest_without_a_pin_is_refused(tmp_path):
    from attribcheck import pins
    from attribcheck.manifest import Manifest

    manifest = _world_copy(tmp_path)
    text = manifest.read_text()
    # an array of tables may follow [pins.suspects]: the new entry lands after the pins
    manifest.write_text(text + '\n[[innocents]]\nname = "ref-twin"\npath = "../fixtures/world/emoji/models/ref-twin"\n')
    with pytest.raises(IntegrityError, match="pins.innocents.ref-twin"):
        pins.verify(Manifest.load(manifest))


def test_pin_rewrites_only_its_table_and_is_idempotent(tmp_path, capsys):
    from attribcheck import pins
    from attribcheck.cli import main
    from attribcheck.manifest import Manifest

    manifest = _world_copy(tmp_path)
    body = re.split(r"(?m)^(?:# .*\n)*\[pins\]", manifest.read_text())[0]
    manifest.write_text(body)  # unpinned: verify returns the hashes and refuses nothing
    unpinned = pins.verify(Manifest.load(manifest))
    assert main(["pin", "--manifest", str(manifest)]) == 0
    pinned = manifest.read_text()
    assert pinned.startswith(body)  # everything else byte for byte
    m = Manifest.load(manifest)
    assert m.pins == unpinned == pins.verify(m)
    assert main(["pin", "--manifest", str(manifest)]) == 0
    assert manifest.read_text() == pinned  # a second pin changes nothing
    # a table written in the middle of the file is replaced where it stands
    middle = body.replace("[[suspects]]", pinned[len(body):].lstrip("\n") + "\n[[suspects]]", 1)
    manifest.write_text(middle)
    assert main(["pin", "--manifest", str(manifest)]) == 0
    assert manifest.read_text() == middle


def test_a_malformed_pin_is_an_input_error_naming_it(tmp_path):
    from attribcheck.manifest import Manifest

    manifest = _world_copy(tmp_path)
    text = re.split(r"(?m)^(?:# .*\n)*\[pins\]", manifest.read_text())[0]
    manifest.write_text(text + '[pins]\nsource = "md5:1234"\n')
    with pytest.raises(InputError, match="pins.source"):
        Manifest.load(manifest)
    manifest.write_text(text + '[pins.suspects]\n"no-such-suspect" = "sha256:' + "0" * 64 + '"\n')
    from attribcheck import pins

    with pytest.raises((InputError, IntegrityError), match="no-such-suspect"):
        pins.verify(Manifest.load(manifest))


def test_the_report_carries_the_artifact_hashes():
    from attribcheck.report import AuditEntry

    e = AuditEntry(name="x", manifest="m.toml", artifacts={"source": "sha256:" + "a" * 64})
    assert e.model_dump()["artifacts"] == {"source": "sha256:" + "a" * 64}


# ---------------------------------------------------------------- the cache

class Seeded:
    """A deterministic model: an image from (its own salt, prompt, seed)."""

    def __init__(self, salt: int = 0):
        self.name, self.salt, self.calls = "seeded", salt, 0

    def generate(self, prompts, seeds):
        self.calls += len(prompts)
        return [np.random.default_rng([self.salt, int(s), sum(map(ord, p))]).random((8, 8, 3)).astype(np.float32)
                for p, s in zip(prompts, seeds)]


def _gen(cache, identity, model):
    return CachedGenerator(identity, identity, lambda: model, cache, QueryProtocol())


PROMPTS, SEEDS = ["a cat", "a dog", "a hat"], [0, 1, 2]


def test_an_entry_copied_under_another_address_is_a_miss(tmp_path):
    """The cache swap: the source's entries copied over an innocent's addresses."""
    cache = GenerationCache(tmp_path)
    source, innocent = _gen(cache, "source", Seeded(1)), _gen(cache, "innocent", Seeded(2))
    src = source.generate(PROMPTS, SEEDS)
    for p, s in zip(PROMPTS, SEEDS):
        a, b = (cache.path(entry_key(g.identity, g._protocol, p, s)) for g in (source, innocent))
        b.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a, b)
    got = innocent.generate(PROMPTS, SEEDS)
    assert innocent.misses == 3  # every copied entry refused
    assert all(not np.array_equal(x, y) for x, y in zip(src, got))
    assert all(np.array_equal(x, y) for x, y in zip(got, Seeded(2).generate(PROMPTS, SEEDS)))


@pytest.mark.parametrize("plant", ["fifo", "dev-zero", "huge", "link-to-entry"])
def test_cache_reads_open_bounded_regular_files_only(tmp_path, plant):
    cache = GenerationCache(tmp_path)
    gen = _gen(cache, "m", Seeded())
    gen.generate(PROMPTS[:1], SEEDS[:1])
    key = entry_key("m", gen._protocol, PROMPTS[0], SEEDS[0])
    path = cache.path(key)
    if plant == "link-to-entry":  # a link, even to a valid entry elsewhere, is not an entry
        real = tmp_path / "elsewhere.npy"
        path.replace(real)
        path.symlink_to(real)
    else:
        path.unlink()
        if plant == "fifo":
            os.mkfifo(path)
        elif plant == "dev-zero":
            path.symlink_to("/dev/zero")
        else:  # sparse: a bound, not a read of 2 GB
            with open(path, "wb") as f:
                f.truncate(2 << 30)
    with deadline(10):
        assert cache.get(key) is None


def test_the_cache_folder_is_created_private(tmp_path):
    root = tmp_path / "cache"
    cache = GenerationCache(root)
    _gen(cache, "m", Seeded()).generate(PROMPTS, SEEDS)
    for d in [root, cache.folder] + [p for p in cache.folder.rglob("*") if p.is_dir()]:
        assert stat.S_IMODE(d.stat().st_mode) & 0o077 == 0, d


def test_an_entry_of_the_old_format_is_a_miss(tmp_path):
    import hashlib
    import io
    import json

    cache = GenerationCache(tmp_path)
    gen = _gen(cache, "m", Seeded())
    key = entry_key("m", gen._protocol, PROMPTS[0], SEEDS[0])
    buf = io.BytesIO()
    np.save(buf, np.zeros((8, 8, 3), np.float32))
    payload = buf.getvalue()  # format 1: a digest and the array, bound to nothing
    path = cache.path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(hashlib.sha256(payload).digest() + payload)
    assert cache.get(key) is None
    assert json.dumps(0)  # keep the import honest


# ------------------------------------------------------ an accusation never rests on cached answers

@pytest.fixture(scope="module")
def emoji():
    from attribcheck.audit.run import auditor_for
    from attribcheck.manifest import Manifest

    manifest = Manifest.load(ROOT / "suites" / "emoji.toml")
    return manifest, auditor_for(manifest)


def _spec(manifest, name):
    return manifest.source_spec if name == "source" else next(s for s in manifest.suspects if s.name == name)


def _addresses(manifest, auditor, name, cache, runtime):
    from attribcheck.models.spec import open_generator

    g = open_generator(_spec(manifest, name), auditor.keyset.protocol, runtime, cache)
    out = {(k.caption, s): entry_key(g.identity, g._protocol, k.caption, s)
           for k in auditor.keyset.keys for s in auditor.keyset.query_seeds}
    return {**out, "identity": g.identity}  # a forger computes it as we do: from public fingerprints


def test_the_cache_swap_no_longer_attributes_an_innocent(tmp_path, emoji):
    """The issue's example: the source's entries copied over innocent-s0's addresses."""
    from attribcheck.audit.run import audit_suspect

    manifest, auditor = emoji
    runtime, cache = Runtime(threads=1), GenerationCache(tmp_path)
    assert audit_suspect(auditor, manifest.source_spec, runtime, cache=cache).verdict.verdict == "attributed"
    src = _addresses(manifest, auditor, "source", cache, runtime)
    inn = _addresses(manifest, auditor, "innocent-s0", cache, runtime)
    for q, k in src.items():
        if q == "identity":
            continue
        cache.path(inn[q]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache.path(k), cache.path(inn[q]))
    r = audit_suspect(auditor, _spec(manifest, "innocent-s0"), runtime, cache=cache)
    assert r.error is None and r.verdict.verdict != "attributed", r.verdict
    assert r.verdict.verdict == audit_suspect(auditor, _spec(manifest, "innocent-s0"), runtime).verdict.verdict


def test_forged_entries_under_an_innocents_own_addresses_give_an_integrity_error(tmp_path, emoji):
    """Entries re-written for the innocent's addresses (binding recomputed, as anyone with
    write access to the cache can): the attribution is confirmed without the cache, differs,
    and the suspect gets an integrity error naming the entry, never 'attributed'."""
    from attribcheck.audit.run import audit_suspect

    manifest, auditor = emoji
    runtime, cache = Runtime(threads=1), GenerationCache(tmp_path)
    audit_suspect(auditor, manifest.source_spec, runtime, cache=cache)
    src = _addresses(manifest, auditor, "source", cache, runtime)
    inn = _addresses(manifest, auditor, "innocent-s0", cache, runtime)
    identity = inn.pop("identity")
    for q, k in src.items():
        if q != "identity":
            cache.put(inn[q], cache.get(k), identity)
    r = audit_suspect(auditor, _spec(manifest, "innocent-s0"), runtime, cache=cache)
    assert r.outcome == "error" and isinstance(r.error, IntegrityError), (r.verdict, r.error)
    assert "generations" in str(r.error) and "\n" not in str(r.error)


def test_an_honest_warm_cache_keeps_an_attribution(tmp_path, emoji):
    """Confirmation regenerates the matched keys' best answers and finds them equal."""
    from attribcheck.audit.run import audit_suspect

    manifest, auditor = emoji
    runtime, cache = Runtime(threads=1), GenerationCache(tmp_path)
    spec = _spec(manifest, "infringer-rho1.0-s0")
    cold = audit_suspect(auditor, spec, runtime, cache=cache)
    warm = audit_suspect(auditor, spec, runtime, cache=cache)
    assert cold.error is None and warm.error is None
    assert warm.verdict.verdict == cold.verdict.verdict == "attributed"
    assert warm.verdict.distances == cold.verdict.distances


def test_confirm_regenerates_only_what_came_from_the_cache(tmp_path):
    cache = GenerationCache(tmp_path)
    fresh = _gen(cache, "m", Seeded(3))
    fresh.generate(PROMPTS, SEEDS)
    assert fresh.confirm(PROMPTS, SEEDS) and fresh.model.calls == 3  # computed here: nothing to confirm
    model = Seeded(3)
    warm = _gen(cache, "m", model)
    warm.generate(PROMPTS, SEEDS)
    assert warm.confirm(PROMPTS[:2], SEEDS[:2]) and model.calls == 2
    forged = _gen(cache, "m", Seeded(3))
    cache.put(entry_key("m", forged._protocol, PROMPTS[2], SEEDS[2]), np.zeros((8, 8, 3), np.float32), "m")
    forged.generate(PROMPTS, SEEDS)
    with pytest.raises(IntegrityError, match=entry_key("m", forged._protocol, PROMPTS[2], SEEDS[2])[:12]):
        forged.confirm(PROMPTS, SEEDS)
