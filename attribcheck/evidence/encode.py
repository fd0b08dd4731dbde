"""Images as `data:` URIs, so the page carries its pictures inside itself (no files beside
it, no network). Small images stay pixel-exact (the browser upscales them with
`image-rendering: pixelated`); large ones are shrunk for viewing, so a report of 30 keys at
512x512 stays a few megabytes."""
from __future__ import annotations

import base64
import io

import numpy as np

from attribcheck import images

MAX_SIDE = 256  # the largest side embedded; a larger image is shrunk (box filter) to fit


def png_bytes(image: np.ndarray, max_side: int = MAX_SIDE) -> bytes:
    """An HxWx3 float image in [0, 1] as PNG bytes, shrunk to fit max_side when larger."""
    image = np.asarray(image, dtype=np.float32)[..., :3]
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = images.resize_to(image, max(1, round(h * scale)), max(1, round(w * scale)))
    buf = io.BytesIO()
    images.to_pil(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def b64_png(image: np.ndarray, max_side: int = MAX_SIDE) -> str:
    return base64.b64encode(png_bytes(image, max_side)).decode("ascii")


def data_uri(b64: str) -> str:
    """A base64 PNG (as b64_png gives) as a data: URI."""
    if not b64 or any(c not in _B64 for c in b64):  # the page never embeds anything but base64
        raise ValueError("not base64 text")
    return "data:image/png;base64," + b64


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
