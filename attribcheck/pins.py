"""The chain of custody: a content hash for every artifact a verdict rests on, and pins.

The artifacts of a manifest, by the names its `[pins]` table uses:

- `source`, `innocents.<name>`, `suspects.<name>`: what decides the model's answers, the
  content identity the generation cache is keyed by (attribcheck.models.kinds): for a
  diffusers model, every weight and config file loaded (links followed), the single-file
  config folder, the LoRA file and scale, the variant; for a folder suspect, every file of
  the folder. An HTTP suspect is identified only by what we ask it (URL, method, request and
  response shape, the declared model version): the service behind it is not ours to hash.
- `keys`: every file of the key set's folder (keyset.json, the key images, the selection
  record), except the discriminator, which is pinned on its own as `discriminator`.

`attribcheck pin --manifest M` writes them into M's `[pins]` table, keeping the rest of the
file byte for byte. A pinned manifest refuses, before the first query, any artifact whose
hash differs, any artifact it does not pin and any pin it has no artifact for: an
IntegrityError naming the manifest, the pin and both hashes. Pinning reviews nothing: pin
what you have reviewed (a lockfile, committed with the manifest).
"""
from __future__ import annotations

import re
from pathlib import Path

from attribcheck.errors import AttribcheckError, InputError, IntegrityError

PREFIX = "sha256:"
SHOWN = 12  # hex digits of a hash an error shows
MARKER = ("# [pins]: written by `attribcheck pin`; a pinned manifest refuses any artifact whose "
          "content hash differs")
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")


def short(h: str) -> str:
    return h[: len(PREFIX) + SHOWN]


def spec_hash(spec) -> str | None:
    """A model's content hash: its kind's cache identity, else its path's fingerprint; None
    for a kind that declares neither (nothing to pin)."""
    from attribcheck.fingerprint import fingerprint
    from attribcheck.models import kinds

    kind = kinds.get(spec.kind)
    if kind.identity is not None:
        from attribcheck.models.cached_generator import identity_of

        return PREFIX + identity_of({"kind": kind.name, **kind.identity(spec)})
    return PREFIX + fingerprint(spec.path) if spec.path is not None else None


def keys_hash(manifest) -> str:
    from attribcheck.fingerprint import fingerprint

    ignore: tuple[str, ...] = ()
    d = manifest.discriminator
    if d is not None and Path(d).resolve().parent == Path(manifest.keys).resolve():
        ignore = (Path(d).name,)  # pinned on its own
    return PREFIX + fingerprint(manifest.keys, ignore=ignore)


def artifacts(manifest, strict: bool = True) -> dict[str, str]:
    """Every artifact's content hash, by pin name, in the manifest's order. The owner's
    artifacts (source, keys, discriminator, innocents) must hash; a suspect whose files
    cannot be read is left out unless `strict` (its own audit gives it an error row)."""
    from attribcheck.fingerprint import fingerprint

    out = {"source": spec_hash(manifest.source_spec), "keys": keys_hash(manifest)}
    if manifest.discriminator is not None:
        out["discriminator"] = PREFIX + fingerprint(manifest.discriminator)
    for spec in manifest.innocents:
        out[f"innocents.{spec.name}"] = spec_hash(spec)
    for spec in manifest.suspects:
        try:
            out[f"suspects.{spec.name}"] = spec_hash(spec)
        except (OSError, AttribcheckError):
            if strict:
                raise
    if strict:
        for name, h in out.items():
            if h is None:
                raise IntegrityError("cannot be pinned: its kind declares no identity and it has no path",
                                     manifest.path, f"pins.{name}")
    return {name: h for name, h in out.items() if h is not None}


def verify(manifest) -> dict[str, str]:
    """The artifacts' hashes (artifact -> "sha256:..."), for the report. A pinned manifest
    first refuses any difference from its pins: an IntegrityError naming the pin."""
    pins = manifest.pins
    found = artifacts(manifest, strict=bool(pins))
    if not pins:
        return found
    for name in pins:
        if name not in found:
            raise InputError("pins an artifact this manifest does not have (removed or renamed? re-pin)",
                             manifest.path, f"pins.{name}")
    for name, h in found.items():
        if name not in pins:
            raise IntegrityError(f"not pinned, found {short(h)}: a pinned manifest pins every artifact "
                                 f"(review it, then attribcheck pin)", manifest.path, f"pins.{name}")
        if pins[name] != h:
            raise IntegrityError(f"the artifact changed since it was pinned: expected {short(pins[name])}, "
                                 f"found {short(h)}", manifest.path, f"pins.{name}")
    return found


def table(hashes: dict[str, str]) -> str:
    """The `[pins]` table for these hashes, as TOML text."""
    lines = [MARKER, "[pins]"] + [f'{f} = "{hashes[f]}"' for f in ("source", "keys", "discriminator") if f in hashes]
    for group in ("innocents", "suspects"):
        rows = [(n.split(".", 1)[1], h) for n, h in hashes.items() if n.startswith(group + ".")]
        if rows:  # names match manifest.NAME: nothing in them needs escaping
            lines += ["", f"[pins.{group}]"] + [f'"{n}" = "{h}"' for n, h in rows]
    return "\n".join(lines) + "\n"


def _is_pins(name: str) -> bool:
    return name.strip("\"'") == "pins" or name.startswith("pins.")


def replace_table(text: str, new: str) -> str:
    """`text` with its `[pins]` tables (and the marker line above them) replaced by `new`,
    where the first one stood, or `new` appended; every other line kept as it was."""
    lines = text.splitlines(keepends=True)
    blocks: list[tuple[int, int]] = []
    start: int | None = None
    last = 0  # set on a block's own header line, before the block can close
    for i, line in enumerate(lines + ["[end]\n"]):
        m = _HEADER.match(line)
        if m and start is not None and not _is_pins(m.group(1)):
            blocks.append((start, last))
            start = None
        if m and start is None and _is_pins(m.group(1)):
            start = i - 1 if i > 0 and lines[i - 1].rstrip("\r\n") == MARKER else i
        if start is not None and line.strip() and not line.lstrip().startswith("#"):
            last = i
    if not blocks:
        sep = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
        return text + sep + new
    out, at = [], blocks[0][0]
    drop = {i for a, b in blocks for i in range(a, b + 1)}
    for i, line in enumerate(lines):
        if i == at:
            out.append(new)
        if i not in drop:
            out.append(line)
    return "".join(out)


def pin(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """Write the manifest's `[pins]` table. Returns (hashes, the pins that changed: name ->
    the old hash, "" for new ones)."""
    import os

    from attribcheck.manifest import Manifest, tomllib
    from attribcheck.outputs import write_atomic
    from attribcheck.safe_files import read_text_bounded

    path = Path(path).resolve()
    manifest = Manifest.load(path)
    hashes = artifacts(manifest, strict=True)
    text = read_text_bounded(path)
    new = replace_table(text, table(hashes))
    # the rewrite must change [pins] and nothing else (a pins table written some other way,
    # inline or dotted, cannot be replaced line by line)
    try:
        before, after = tomllib.loads(text), tomllib.loads(new)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"cannot rewrite [pins] in place ({e}); write it as a [pins] table", path, "pins") from e
    before.pop("pins", None)
    pinned = after.pop("pins", None)
    if before != after or _flat(pinned) != hashes:
        raise InputError("cannot rewrite [pins] in place; write it as a [pins] table", path, "pins")
    changed = {n: manifest.pins.get(n, "") for n, h in hashes.items() if manifest.pins.get(n) != h}
    mode = os.stat(path).st_mode & 0o7777
    write_atomic(path, new, "manifest")
    os.chmod(path, mode)
    return hashes, changed


def _flat(pins: dict | None) -> dict[str, str]:
    pins = dict(pins or {})
    out = {f: pins.pop(f) for f in ("source", "keys", "discriminator") if f in pins}
    for group in ("innocents", "suspects"):
        out.update({f"{group}.{n}": h for n, h in pins.pop(group, {}).items()})
    return out if not pins else {}
