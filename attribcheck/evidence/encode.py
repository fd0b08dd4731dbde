"""Images as `data:` URIs, so the page carries its pictures inside itself (no files beside
it, no network). Small images (up to EXACT_SIDE) stay pixel-exact PNG, and the browser
upscales them with `image-rendering: pixelated`; larger ones are shrunk to MAX_SIDE (box
filter) and stored as JPEG for viewing, so a report of 12 suspects x 30 keys at 512x512
stays near 10 MB instead of ~100 MB. The distances were measured on the full images; the
page only shows them."""
from __future__ import annotations

import base64
import io

import numpy as np

from attribcheck import images

EXACT_SIDE = 64  # up to this side: lossless PNG, pixel for pixel
MAX_SIDE = 192  # larger images: shrunk to fit this side, JPEG
JPEG_QUALITY = 90


def png_bytes(image: np.ndarray, max_side: int = MAX_SIDE) -> bytes:
    """An HxWx3 float image in [0, 1] as image file bytes: PNG when small (exact), else shrunk
    to fit max_side and JPEG."""
    image = np.asarray(image, dtype=np.float32)[..., :3]
    h, w = image.shape[:2]
    buf = io.BytesIO()
    if max(h, w) <= EXACT_SIDE:
        images.to_pil(image).save(buf, format="PNG", optimize=True)
        return buf.getvalue()
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = images.resize_to(image, max(1, round(h * scale)), max(1, round(w * scale)))
    images.to_pil(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def b64_png(image: np.ndarray, max_side: int = MAX_SIDE) -> str:
    return base64.b64encode(png_bytes(image, max_side)).decode("ascii")


def data_uri(b64: str) -> str:
    """A base64 image (as b64_png gives: PNG or JPEG) as a data: URI."""
    if not b64 or any(c not in _B64 for c in b64):  # the page never embeds anything but base64
        raise ValueError("not base64 text")
    mime = {"iVBORw0KGgo": "image/png", "/9j/": "image/jpeg"}
    kind = next((m for prefix, m in mime.items() if b64.startswith(prefix)), None)
    if kind is None:
        raise ValueError("not a PNG or JPEG image")
    return f"data:{kind};base64," + b64


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
