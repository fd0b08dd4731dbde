"""Image distances. Each declares its range and direction; delta_0 lives on its scale.

Functional forms (`rms_distance`, `tiled_rms_distance`) hold the arithmetic; the classes
wrap them with metadata and are what configurations name.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attribcheck import images as _img


def _common(x: np.ndarray, y: np.ndarray, side: int | None) -> tuple[np.ndarray, np.ndarray]:
    side = side or min(x.shape[0], x.shape[1], y.shape[0], y.shape[1])
    return _img.resize(np.asarray(x, np.float32), side), _img.resize(np.asarray(y, np.float32), side)


def rms_distance(x: np.ndarray, y: np.ndarray, side: int | None = None) -> float:
    """Root-mean-square difference of two RGB images in [0, 1], at a common side."""
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


@dataclass(frozen=True)
class Distance:
    """An image distance: `__call__(x, y) -> float` in [lower, upper], lower = more alike."""

    name: str = "rms"
    side: int | None = None  # common side both images are resized to; None = the smaller one
    lower: float = 0.0
    upper: float = 1.0
    higher_is_better: bool = False  # a distance: lower means the suspect reproduces the key
    default_delta_0: float = 0.15

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

    def __call__(self, x, y):
        return tiled_rms_distance(x, y, self.side, self.tiles)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "tiles": self.tiles}


DISTANCES = {"rms": RMSDistance, "tiled_rms": TiledRMSDistance}


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
