"""Image conversions. The library's image type: float32 numpy, HxWx3, RGB in [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any PIL image or uint8/float array -> float32 HxWx3 in [0, 1]."""
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = arr.astype(np.float32)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0)


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8))


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """Resize to side x side with bilinear filtering (box when shrinking, to avoid aliasing)."""
    if image.shape[0] == side and image.shape[1] == side:
        return image
    method = Image.BOX if image.shape[0] > side else Image.BILINEAR
    chans = [Image.fromarray(image[..., c].astype(np.float32), mode="F").resize((side, side), method)
             for c in range(3)]
    return np.clip(np.stack([np.asarray(c) for c in chans], axis=-1), 0.0, 1.0).astype(np.float32)


def load(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return to_array(im)


def save(image: np.ndarray, path: str | Path) -> None:
    to_pil(image).save(path)
