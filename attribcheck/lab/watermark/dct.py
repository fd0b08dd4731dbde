"""A 32-bit spread-spectrum watermark in the DCT domain of small RGB images.

Each bit owns a disjoint, seeded set of mid-frequency DCT coefficients (all channels) and a
±1 chip per coefficient: its carrier, a unit vector. A bit's statistic is the image's
projection on its carrier; its sign is the bit. Embedding is informed: the stamp adds a fixed
pattern (strength) and then pushes each bit further until its statistic clears a margin, so
a clean stamped image always decodes. Decoding is blind (no original image needed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import dctn, idctn

from attribcheck.config import JsonConfig


@dataclass
class WatermarkConfig(JsonConfig):
    bits: int = 32
    seed: int = 20240923  # the owner's secret: carriers and message follow from it
    band: tuple = (1, 8)  # DCT frequencies u + v in [lo, hi]: what a 16x16 VAE passes
    # Emoji content projects ~0.3 on any unit carrier in this band, so a blind mark must
    # outweigh it: at 16x16 that costs PSNR ~13 dB (measured; README), not invisibility.
    strength: float = 0.3  # the fixed part, per bit, in orthonormal-DCT units
    margin: float = 0.8  # every bit's statistic clears this on a stamped image
    match_bits: int = 24  # a generation carries the mark at >= this many bits right
    iterations: int = 8  # re-stamp after clipping and 8-bit rounding


class DctWatermark:
    def __init__(self, cfg: WatermarkConfig | None = None, side: int = 16):
        self.cfg = cfg = cfg or WatermarkConfig()
        rng = np.random.default_rng(cfg.seed)
        self.message = rng.integers(0, 2, cfg.bits).astype(np.int8)
        u, v, c = np.meshgrid(np.arange(side), np.arange(side), np.arange(3), indexing="ij")
        lo, hi = cfg.band
        coords = np.flatnonzero(((u + v) >= lo) & ((u + v) <= hi))
        per_bit = len(coords) // cfg.bits
        if per_bit < 1:
            raise ValueError(f"band {cfg.band} has {len(coords)} coefficients for {cfg.bits} bits")
        coords = rng.permutation(coords)[: per_bit * cfg.bits]
        self.shape = (side, side, 3)
        # carriers as a (bits, side*side*3) matrix in the DCT domain: orthonormal rows
        self.carriers = np.zeros((cfg.bits, side * side * 3))
        chips = rng.choice([-1.0, 1.0], size=coords.shape)
        for b in range(cfg.bits):
            sl = slice(b * per_bit, (b + 1) * per_bit)
            self.carriers[b, coords[sl]] = chips[sl] / np.sqrt(per_bit)

    def statistics(self, image: np.ndarray) -> np.ndarray:
        """(..., H, W, 3) images in [0, 1] -> (..., bits) carrier projections."""
        d = dctn(np.asarray(image, dtype=np.float64), axes=(-3, -2), norm="ortho")
        return d.reshape(*d.shape[:-3], -1) @ self.carriers.T

    def decode(self, image: np.ndarray) -> np.ndarray:
        return (self.statistics(image) > 0).astype(np.int8)

    def bit_accuracy(self, image: np.ndarray) -> np.ndarray:
        """Bits right out of `bits`, per image."""
        return (self.decode(image) == self.message).sum(axis=-1)

    def carries_mark(self, image: np.ndarray) -> np.ndarray:
        return self.bit_accuracy(image) >= self.cfg.match_bits

    def embed(self, image: np.ndarray) -> np.ndarray:
        """Stamp one image (H, W, 3) in [0, 1]; the result is 8-bit quantised."""
        sign = 2.0 * self.message - 1
        x = np.asarray(image, dtype=np.float64)
        push = np.full(self.cfg.bits, self.cfg.strength)
        for _ in range(self.cfg.iterations):
            delta = (sign * push) @ self.carriers
            x = x + idctn(delta.reshape(self.shape), axes=(0, 1), norm="ortho")
            x = np.round(np.clip(x, 0, 1) * 255) / 255
            short = self.cfg.margin - sign * self.statistics(x)
            if np.all(short <= 0):
                break
            push = np.maximum(short, 0)
        return x.astype(np.float32)

    def embed_many(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.embed(im) for im in images])
