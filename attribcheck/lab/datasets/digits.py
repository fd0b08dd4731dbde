"""scikit-learn's handwritten digits, captioned from attributes measured on each image
(thickness, slant, width, position), like CelebA-Dialog's attribute captions."""
from __future__ import annotations

import numpy as np

from attribcheck import images as _img
from attribcheck.data.dataset import CaptionDataset, Sample

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
INK = np.array([0.10, 0.15, 0.45], np.float32)  # dark blue ink on white: RGB, not grey


def _attributes(img: np.ndarray) -> tuple[float, float, float, float]:
    """(ink mass, slant, width, horizontal centre) of an 8x8 digit with values in [0, 1]."""
    ys, xs = np.mgrid[0:8, 0:8].astype(np.float64)
    mass = img.sum() + 1e-9
    cx, cy = (img * xs).sum() / mass, (img * ys).sum() / mass
    # slant: how x moves with y; rows grow downwards, so a right-leaning digit has cov(x, y) < 0
    cov_xy = (img * (xs - cx) * (ys - cy)).sum() / mass
    var_y = (img * (ys - cy) ** 2).sum() / mass + 1e-9
    # width: the ink's horizontal spread. The bounding box takes only a few integer values on an
    # 8x8 grid (half the digits are 6 wide), too coarse to split at a median.
    width = np.sqrt((img * (xs - cx) ** 2).sum() / mass)
    return float(mass), float(-cov_xy / var_y), float(width), float(cx)


def _bucket(values: np.ndarray, names: list[str]) -> list[str]:
    """Name each value by its quantile bucket over all values: equal-sized categories."""
    edges = np.quantile(values, np.linspace(0, 1, len(names) + 1)[1:-1])
    return [names[int(np.searchsorted(edges, v, side="right"))] for v in values]


def _relative(values: np.ndarray, labels: np.ndarray, ratio: bool = False) -> np.ndarray:
    """Values against their class median. A one is always narrower than a zero and a seven's
    diagonal always leans right: raw measures would mostly repeat the label."""
    med = np.array([np.median(values[labels == t]) for t in range(10)])[labels]
    return values / med if ratio else values - med


def load_digits_dataset(side: int = 16) -> CaptionDataset:
    """All 1797 digits, e.g. "a thick, right-leaning, narrow handwritten seven, left of centre".
    Note sklearn scales every digit to the full 8 rows, so there is no height to describe."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    imgs, labels = raw.images / 16.0, raw.target
    attrs = np.array([_attributes(im) for im in imgs])
    thick = _bucket(_relative(attrs[:, 0], labels, ratio=True), ["thin", "regular", "thick"])
    slant = _bucket(_relative(attrs[:, 1], labels), ["left-leaning", "upright", "right-leaning"])
    width = _bucket(_relative(attrs[:, 2], labels, ratio=True), ["narrow", "wide"])
    place = _bucket(_relative(attrs[:, 3], labels), ["left of centre", "centred", "right of centre"])
    samples = []
    for i, (im, t) in enumerate(zip(imgs, labels)):
        rgb = 1.0 - im[..., None] * (1.0 - INK)  # white paper, ink where the digit is
        caption = f"a {thick[i]}, {slant[i]}, {width[i]} handwritten {WORDS[t]}, {place[i]}"
        samples.append(Sample(f"digits-{i:04d}", caption, _img.resize(rgb.astype(np.float32), side)))
    return CaptionDataset(samples, "digits")
