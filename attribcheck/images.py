"""Image conversions. The library's image type: float32 numpy, HxWx3, RGB in [0, 1].

A suspect's collected image may also be HxWx4 (RGB plus straight alpha) when its file has
transparency: dropping the alpha (PIL's `convert("RGB")`) would show whatever colour sits
under the transparent pixels, often black. It is composited onto the key's background by the
distance step (`composite`, `border_colour`), the only place that knows the key.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The largest image a suspect's folder may hand us (a decompression bomb is a few KB of PNG).
MAX_PIXELS = 4096 * 4096


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def to_array(image: Image.Image | np.ndarray, keep_alpha: bool = False) -> np.ndarray:
    """Any PIL image or uint8/float array -> float32 HxWx3 in [0, 1] (HxWx4 with alpha, when
    `keep_alpha` and the image has transparency)."""
    if isinstance(image, Image.Image):
        mode = "RGBA" if keep_alpha and has_alpha(image) else "RGB"
        arr = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
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
    method = Image.BOX if shrink else Image.BILINEAR
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


def load(path: str | Path, keep_alpha: bool = False, max_pixels: int | None = None) -> np.ndarray:
    with Image.open(path) as im:
        if max_pixels is not None and im.width * im.height > max_pixels:
            raise ValueError(f"{im.width}x{im.height} is larger than {max_pixels} pixels")
        return to_array(im, keep_alpha)


def save(image: np.ndarray, path: str | Path) -> None:
    to_pil(image).save(path)
