"""scikit-learn's handwritten digits, captioned from measured attributes (thickness, slant,
width, height, position), like CelebA-Dialog's attribute captions."""
from __future__ import annotations

import numpy as np

from attribcheck import images as _img
from attribcheck.data.dataset import CaptionDataset, Sample

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
INK = np.array([0.10, 0.15, 0.45], np.float32)  # dark blue ink on white: RGB, not grey


def _attributes(img: np.ndarray) -> tuple[float, float, float, float, float]:
    """(ink mass, slant, width, height, horizontal centre) of an 8x8 digit in [0, 1]."""
    ys, xs = np.mgrid[0:8, 0:8].astype(np.float64)
    mass = img.sum() + 1e-9
    cx, cy = (img * xs).sum() / mass, (img * ys).sum() / mass
    # slant: how x moves with y (a right-leaning digit's top lies right of its bottom)
    cov_xy = (img * (xs - cx) * (ys - cy)).sum() / mass
    var_y = (img * (ys - cy) ** 2).sum() / mass + 1e-9
    cols = np.flatnonzero(img.max(axis=0) > 0.25)
    rows = np.flatnonzero(img.max(axis=1) > 0.25)
    width = cols.max() - cols.min() + 1 if len(cols) else 0
    height = rows.max() - rows.min() + 1 if len(rows) else 0
    return float(mass), float(-cov_xy / var_y), float(width), float(height), float(cx)


def _bucket(values: np.ndarray, names: list[str]) -> list[str]:
    edges = np.quantile(values, np.linspace(0, 1, len(names) + 1)[1:-1])
    return [names[int(np.searchsorted(edges, v, side="right"))] for v in values]


def load_digits_dataset(side: int = 16) -> CaptionDataset:
    from sklearn.datasets import load_digits

    raw = load_digits()
    imgs = raw.images / 16.0
    attrs = np.array([_attributes(im) for im in imgs])
    # thickness relative to the class median: a thick one and a thick eight differ in ink
    rel_mass = attrs[:, 0] / np.array([np.median(attrs[raw.target == t, 0]) for t in raw.target])
    thick = _bucket(rel_mass, ["thin", "regular", "thick"])
    slant = _bucket(attrs[:, 1], ["left-leaning", "upright", "right-leaning"])
    # tiny tie-breakers: integer extents would otherwise pile onto one quantile edge
    width = _bucket(attrs[:, 2] + 1e-3 * rel_mass, ["narrow", "wide"])
    height = _bucket(attrs[:, 3] + 1e-3 * rel_mass, ["short", "tall"])
    place = _bucket(attrs[:, 4], ["left of centre", "centred", "right of centre"])
    samples = []
    for i, (im, t) in enumerate(zip(imgs, raw.target)):
        rgb = 1.0 - im[..., None] * (1.0 - INK)  # white paper, ink where the digit is
        caption = f"a {thick[i]} handwritten {WORDS[t]}, {slant[i]}, {width[i]} and {height[i]}, {place[i]}"
        samples.append(Sample(f"digits-{i:04d}", caption, _img.resize(rgb.astype(np.float32), side)))
    return CaptionDataset(samples, "digits")
