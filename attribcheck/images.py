"""Image conversions. The library's image type: float32 numpy, HxWx3, RGB in [0, 1].

A suspect's collected image may also be HxWx4 (RGB plus straight alpha) when its file has
transparency: dropping the alpha (PIL's `convert("RGB")`) would show whatever colour sits
under the transparent pixels, often black. It is composited onto the key's background by the
distance step (`composite`, `border_colour`), the only place that knows the key.

Image files and bytes from outside (a suspect's folder or API, a key set) are decoded by
`decode`/`load` only: PNG, JPEG or WebP, sniffed from the bytes and matched to the name or
content type, integer pixels only (a float TIFF of NaN named .png was read as clean), 16-bit
grey PNGs scaled by 65535, and the size checked before any pixel is decoded.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import NoReturn

import numpy as np
from PIL import Image

from attribcheck.errors import InputError

# The largest image a suspect's folder may hand us (a decompression bomb is a few KB of PNG).
MAX_PIXELS = 4096 * 4096
# An answer may be at most this many times the key's side (or the protocol's) in either
# dimension: beyond it, it is not an answer to the protocol, and caching it costs memory.
ANSWER_SIDE_FACTOR = 2
# The formats an untrusted image may be in, with the file suffixes and content types that
# name them. Sniffed from the bytes (PIL's `formats=` restricts what it even tries: no TIFF,
# whose float pixels hid NaN, no PSD, no EPS); a name that disagrees is refused.
FORMATS = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "WEBP": (".webp",)}
CONTENT_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
# Integer modes with more than 8 bits: PNG's 16-bit grey (PIL opens 16-bit colour as 8-bit RGB).
WIDE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0}
# Everything else PNG, JPEG and WebP decode to; float modes ("F") are never accepted.
NARROW = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def to_array(image: Image.Image | np.ndarray, keep_alpha: bool = False) -> np.ndarray:
    """Any PIL image or uint8/float array -> float32 HxWx3 in [0, 1] (HxWx4 with alpha, when
    `keep_alpha` and the image has transparency)."""
    if isinstance(image, Image.Image):
        arr = _pixels(image, keep_alpha)
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = arr.astype(np.float32)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
    channels = (3, 4) if keep_alpha else (3,)
    if arr.ndim != 3 or arr.shape[-1] not in channels:
        raise ValueError(f"expected an HxWx{'3 or 4' if keep_alpha else 3} image, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0)  # NaN stays NaN: degenerate outputs are caught, not hidden


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to height x width: box filter when shrinking (no aliasing), bilinear otherwise."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrink = image.shape[0] > height or image.shape[1] > width
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    chans = [Image.fromarray(image[..., c].astype(np.float32), mode="F").resize((width, height), method)
             for c in range(image.shape[-1])]
    return np.clip(np.stack([np.asarray(c) for c in chans], axis=-1), 0.0, 1.0).astype(np.float32)


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """Resize to side x side."""
    return resize_to(image, side, side)


def border_colour(image: np.ndarray) -> np.ndarray:
    """The background colour of a key image, as the per-channel median of its one-pixel frame:
    white for emoji drawn on white, black for digits drawn on black."""
    img = np.asarray(image, dtype=np.float32)[..., :3]
    frame = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]], axis=0)
    return np.median(frame, axis=0).astype(np.float32)


def composite(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """An HxWx4 image (straight alpha) over a plain background colour -> HxWx3; HxWx3 unchanged."""
    if image.shape[-1] == 3:
        return image
    alpha = image[..., 3:4]
    return (image[..., :3] * alpha + np.asarray(background, np.float32) * (1.0 - alpha)).astype(np.float32)


def _pixels(image: Image.Image, keep_alpha: bool) -> np.ndarray:
    """A PIL image's pixels in [0, 1], by its mode: 16-bit grey scaled by 65535 (converting it
    to RGB clips every value above 255 to white: a real 16-bit answer read as constant);
    float modes refused before any conversion could hide NaN or infinity."""
    if image.mode in WIDE:
        raw = np.asarray(image)
        if raw.dtype.kind == "f" or raw.min() < 0 or raw.max() > WIDE[image.mode]:
            raise ValueError(f"mode {image.mode} pixels outside [0, {WIDE[image.mode]:.0f}]")
        grey = raw.astype(np.float32) / WIDE[image.mode]
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode not in NARROW:
        raise ValueError(f"mode {image.mode} is not an 8- or 16-bit integer image")
    mode = "RGBA" if keep_alpha and has_alpha(image) else "RGB"
    return np.asarray(image.convert(mode), dtype=np.float32) / 255.0


def decode(data: bytes, where: str | Path, field: str | None = None, expect: str | None = None,
           keep_alpha: bool = False, max_pixels: int = MAX_PIXELS, max_side: int | None = None,
           error: type = InputError) -> np.ndarray:
    """Untrusted image bytes -> float32 HxWx3 (HxWx4 with transparency, when `keep_alpha`).

    The format is sniffed from the bytes and must be PNG, JPEG or WebP, and `expect` (one of
    FORMATS, from a suffix or a content type) when given; the size is checked before any
    pixel is decoded (`max_pixels`, `max_side`); every value is finite. Anything else is one
    `error` line naming `where` and `field`."""
    def fail(message: str) -> NoReturn:
        raise error(message, where, field)

    try:
        im = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError:
        fail(f"declares more than {Image.MAX_IMAGE_PIXELS} pixels (a decompression bomb?)")
    except Exception:  # noqa: BLE001 - PIL raises many kinds on hostile bytes
        fail(f"not a decodable image (only {', '.join(FORMATS)} are read)")
    with im:
        if expect is not None and {"MPO": "JPEG"}.get(im.format or "", im.format) != expect:  # MPO: a camera's JPEG
            fail(f"holds a {im.format} image, but is named or served as {expect}")
        w, h = im.size
        if w * h > max_pixels:
            fail(f"{w}x{h} is larger than {max_pixels} pixels")
        check_answer_size((h, w), max_side, where, field, error)
        try:
            im.load()
            arr = to_array(im, keep_alpha)
        except ValueError as e:
            fail(str(e).splitlines()[0])
        except Exception as e:  # noqa: BLE001 - truncated or corrupt data
            fail(f"not a decodable {im.format} image ({type(e).__name__})")
    if not np.all(np.isfinite(arr)):
        fail("holds non-finite pixel values")
    return arr


def expected_format(name: str | Path) -> str | None:
    """The format a file's suffix names (`.png` -> PNG), or None for another suffix."""
    suffix = Path(name).suffix.lower()
    return next((fmt for fmt, suffixes in FORMATS.items() if suffix in suffixes), None)


def answer_side_limit(height: int | None, width: int | None) -> int | None:
    """The largest side an answer may have, for keys (or a protocol) of height x width."""
    sides = [s for s in (height, width) if s]
    return ANSWER_SIDE_FACTOR * max(sides) if sides else None


def check_answer_size(shape: tuple, max_side: int | None, where: str | Path, field: str | None = None,
                      error: type = InputError) -> None:
    """Refuse an answer whose shape (height, width, ...) is over `max_side` (see
    answer_side_limit) before it is cached or kept."""
    h, w = shape[:2]
    if max_side is not None and max(h, w) > max_side:
        raise error(f"{w}x{h} is over {max_side} pixels on a side: not an answer at the protocol's size", where, field)


def load(path: str | Path, keep_alpha: bool = False, max_pixels: int | None = None,
         max_side: int | None = None) -> np.ndarray:
    """An image file (a regular file of PNG, JPEG or WebP, as its suffix says when it names
    one of them), decoded strictly (see `decode`)."""
    from attribcheck.safe_files import read_bytes_bounded

    path = Path(path)
    data = read_bytes_bounded(path)
    return decode(data, path, expect=expected_format(path), keep_alpha=keep_alpha,
                  max_pixels=max_pixels or MAX_PIXELS, max_side=max_side)


SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save(image: np.ndarray, path: str | Path) -> None:
    """Encode by the file's suffix and write through attribcheck.outputs (atomic, never through a link)."""
    import io

    from attribcheck.outputs import write_atomic

    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot save an image as {path.suffix!r}; use one of {sorted(SAVE_FORMATS)}", path)
    buf = io.BytesIO()
    to_pil(image).save(buf, format=fmt)
    write_atomic(path, buf.getvalue(), "image")
