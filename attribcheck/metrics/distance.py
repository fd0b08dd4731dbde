"""Image distances. Each declares its range and direction; delta_0 lives on its scale.

Functional forms (`rms_distance`, `tiled_rms_distance`) hold the arithmetic; the classes
wrap them with metadata and are what configurations name.

Every distance is d(generated, reference): `x` is what a model produced, `y` the key (or
target) image, and the comparison happens at the reference's resolution. A generated image
smaller than the reference in either dimension is a DegenerateOutputError: upscaling it would
compare a blur with the key (a 1x1 grey answer came within delta_0 of 7 of 12 emoji keys).
A larger one is shrunk (box filter) to the reference's height and width; a different aspect
ratio is shrunk per axis as well, since that loses detail but invents none. A generated image
with transparency (HxWx4) is composited onto the reference's background colour, estimated
from the reference's border. `side=` compares both at an explicit common side, after the
same checks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attribcheck import images as _img
from attribcheck.errors import DegenerateOutputError, InputError


def _common(x: np.ndarray, y: np.ndarray, side: int | None) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if x.ndim != 3 or x.shape[-1] not in (3, 4):
        raise DegenerateOutputError(f"expected an HxWx3 (or HxWx4) image, got shape {x.shape}")
    if y.ndim != 3 or y.shape[-1] != 3:
        raise InputError(f"the reference image must be HxWx3, got shape {y.shape}")
    if not np.all(np.isfinite(x)):
        raise DegenerateOutputError("the image has non-finite pixel values")
    if x.shape[0] < y.shape[0] or x.shape[1] < y.shape[1]:
        raise DegenerateOutputError(f"the image is {x.shape[0]}x{x.shape[1]}, smaller than the key's "
                                    f"{y.shape[0]}x{y.shape[1]}: it would be compared as an upscaled blur")
    x = _img.composite(x, _img.border_colour(y))
    if side:
        return _img.resize(x, side), _img.resize(y, side)
    return _img.resize_to(x, y.shape[0], y.shape[1]), y


def rms_distance(x: np.ndarray, y: np.ndarray, side: int | None = None) -> float:
    """Root-mean-square difference of a generated image x and a reference y, in [0, 1], at the
    reference's resolution (or `side`)."""
    a, b = _common(x, y, side)
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def tiled_rms_distance(x: np.ndarray, y: np.ndarray, side: int | None = None, tiles: int = 4) -> float:
    """Maximum RMS difference over a tiles x tiles grid (Carlini et al. 2023): two images are
    close only when every region is close, so a shared background cannot hide a different object."""
    a, b = _common(x, y, side)
    h, w = a.shape[:2]
    ys = np.linspace(0, h, tiles + 1).astype(int)
    xs = np.linspace(0, w, tiles + 1).astype(int)
    worst = 0.0
    for i in range(tiles):
        for j in range(tiles):
            d = a[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].astype(np.float64) - b[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            if d.size:
                worst = max(worst, float(np.sqrt(np.mean(d ** 2))))
    return worst


def _round_trip(image: np.ndarray, scale: float) -> np.ndarray:
    """The image shrunk by `scale` (box filter) and scaled back: what a suspect serving a smaller
    image and upscaling it keeps of the picture (its detail above that bandwidth is gone)."""
    h, w = image.shape[:2]
    return _img.resize_to(_img.resize_to(image, max(1, round(scale * h)), max(1, round(scale * w))), h, w)


def aligned_rms_distance(x: np.ndarray, y: np.ndarray, side: int | None = None,
                         zooms: tuple = (1.0, 0.95, 0.9, 0.85), scales: tuple = ()) -> float:
    """The smallest RMS difference between x and the reference y zoomed in by each factor
    (a crop of y at its centre, corners and edges, resized back): a suspect that crops its
    outputs (and scales them back to size) is compared with the same crop of the key.

    With `scales`, each of those is also compared low-passed by a round trip through that share
    of its size: an answer blurred by a round trip is compared with a key that lost the same
    detail, while a sharp answer still pays for the detail the blurred key lacks."""
    a, b = _common(x, y, side)
    a = a.astype(np.float64)
    h, w = b.shape[:2]
    crops = [b]
    for z in zooms:
        ch, cw = max(1, round(z * h)), max(1, round(z * w))
        if (ch, cw) == (h, w):
            continue
        for top in sorted({0, (h - ch) // 2, h - ch}):
            for left in sorted({0, (w - cw) // 2, w - cw}):
                crops.append(_img.resize_to(b[top:top + ch, left:left + cw], h, w))
    candidates = crops + [_round_trip(c, s) for s in scales if s < 1 for c in crops]
    return min(float(np.sqrt(np.mean((a - c) ** 2))) for c in candidates)


def _factors(value, lo: float, hi: float, most: int, field: str, least: int = 1) -> tuple:
    """A key set's list of scale factors, checked: it is untrusted input."""
    ok = isinstance(value, (list, tuple)) and least <= len(value) <= most and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi for v in value)
    if not ok:
        raise InputError(f"{value!r}: {least} to {most} factors in [{lo}, {hi}]", field=field)
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class Distance:
    """An image distance: `__call__(generated, reference) -> float` in [lower, upper], lower =
    more alike."""

    name: str = "rms"
    side: int | None = None  # common side both images are resized to; None = the reference's size
    lower: float = 0.0
    upper: float = 1.0
    higher_is_better: bool = False  # a distance: lower means the suspect reproduces the key
    default_delta_0: float = 0.15

    def __post_init__(self):
        # a key set names its metric; what it says is untrusted until checked
        if self.side is not None and not (isinstance(self.side, int) and 1 <= self.side <= 4096):
            raise InputError(f"side {self.side!r}: an integer in [1, 4096] or null", field="distance.side")

    def __call__(self, x: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError

    def pairwise(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
        return np.array([[self(x, y) for y in ys] for x in xs], dtype=np.float64)

    def to_dict(self) -> dict:
        return {"name": self.name, "side": self.side}


@dataclass(frozen=True)
class RMSDistance(Distance):
    name: str = "rms"

    def __call__(self, x, y):
        return rms_distance(x, y, self.side)


@dataclass(frozen=True)
class TiledRMSDistance(Distance):
    name: str = "tiled_rms"
    tiles: int = 4
    default_delta_0: float = 0.25  # a maximum over tiles sits above the plain RMS

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.tiles, int) and 1 <= self.tiles <= 64):
            raise InputError(f"tiles {self.tiles!r}: an integer in [1, 64]", field="distance.tiles")

    def __call__(self, x, y):
        return tiled_rms_distance(x, y, self.side, self.tiles)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "tiles": self.tiles}


@dataclass(frozen=True)
class AlignedRMSDistance(Distance):
    """RMS after aligning for crops and rescales (aligned_rms_distance). Its distances sit a
    little below plain RMS for every pair, innocent ones included: calibrate delta_0 on it."""

    name: str = "aligned_rms"
    zooms: tuple = (1.0, 0.95, 0.9, 0.85)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "zooms", _factors(self.zooms, 0.5, 1, 16, "distance.zooms"))

    def __call__(self, x, y):
        return aligned_rms_distance(x, y, self.side, self.zooms)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "zooms": list(self.zooms)}


@dataclass(frozen=True)
class MultiscaleRMSDistance(AlignedRMSDistance):
    """aligned_rms, with every aligned key also low-passed to each of `scales` (a round trip
    through that share of its size): a suspect serving its answers at half resolution and
    scaling them back up is compared with a key blurred the same way. Lower than aligned_rms
    for blurry innocent answers too: calibrate delta_0 on it."""

    name: str = "multiscale_rms"
    scales: tuple = (0.5,)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "scales", _factors(self.scales, 0.25, 1, 8, "distance.scales"))

    def __call__(self, x, y):
        return aligned_rms_distance(x, y, self.side, self.zooms, self.scales)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "scales": list(self.scales)}


DISTANCES = {"rms": RMSDistance, "tiled_rms": TiledRMSDistance, "aligned_rms": AlignedRMSDistance,
             "multiscale_rms": MultiscaleRMSDistance}


def get_distance(spec: str | dict | Distance = "rms") -> Distance:
    """A Distance from its name or its to_dict() form."""
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name")
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; choose from {sorted(DISTANCES)}")
    return DISTANCES[name](**spec)
