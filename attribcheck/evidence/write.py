"""Put the evidence page on disk: `DIR/index.html`, written atomically (a CI artifact never
holds half a page). The CLI and the pytest plugin both come here."""
from __future__ import annotations

from pathlib import Path

from attribcheck.evidence.encode import b64_png
from attribcheck.evidence.keyview import KeyView
from attribcheck.evidence.page import Evidence, render

INDEX = "index.html"


def encode_answers(images: dict | None) -> dict[str, str]:
    """key id -> image array (SuspectResult.images) as key id -> base64 PNG."""
    return {k: b64_png(v) for k, v in (images or {}).items()}


def keyviews(entries: list[dict], redact: bool, keysets: dict | None = None) -> dict[str, KeyView]:
    """Per audit, what the page may show of its key set: from `keysets` (audit name -> KeySet)
    when given, else loaded from the path in the report entry (the xdist controller's case)."""
    from attribcheck.errors import AttribcheckError
    from attribcheck.keys.keyset import KeySet

    out = {}
    for e in entries:
        ks = (keysets or {}).get(e["name"])
        if ks is None and e.get("keyset"):
            try:
                ks = KeySet.load(e["keyset"]["path"])
            except (AttribcheckError, OSError):
                ks = None  # the page still shows every row, without key images
        out[e["name"]] = KeyView.of(ks, redact) if ks is not None else KeyView.missing(redact)
    return out


def write_page(folder: str | Path, entries: list[dict], answers: dict[tuple[str, str], dict[str, str]],
               redact: bool = False, keysets: dict | None = None, runtime=None) -> Path:
    from datetime import datetime, timezone

    from attribcheck import __version__

    from attribcheck.outputs import check_folder

    folder = check_folder(folder, "evidence report", INDEX)
    rt = "" if runtime is None else f"device {runtime.device}"
    ev = Evidence(entries, keyviews(entries, redact, keysets), answers,
                  created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  tool=f"attribcheck {__version__}", runtime=rt, redacted=redact)
    from attribcheck.outputs import write_atomic

    return write_atomic(folder / INDEX, render(ev), "evidence report")
