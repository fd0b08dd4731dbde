"""The key set: a portable, hash-checked artifact and the owner's secret.

Layout: `keyset.json` (captions, sampler, metric, delta_0, per-key distances, hash) and
`images/<index>.png` (reference images). Images are quantised to 8 bits on creation, so a
saved key set measures exactly like the one in memory.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attribcheck import images
from attribcheck.models.generator import SamplerConfig

FORMAT_VERSION = 1


def quantise(image: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(image, 0, 1) * 255) / 255).astype(np.float32)


@dataclass
class Key:
    id: str
    caption: str
    image: np.ndarray
    r_source: float
    r_references: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.image = quantise(self.image)

    @property
    def margin(self) -> float:
        return min(self.r_references.values(), default=1.0) - self.r_source


@dataclass
class KeySet:
    keys: list[Key]
    strategy: str
    delta_0: float
    distance: dict
    sampler: SamplerConfig
    query_seeds: list[int]
    source: str = "source"
    # reference name -> "selection" (filtered keys) or "calibration" (held out to estimate p0)
    reference_roles: dict[str, str] = field(default_factory=dict)
    candidates: int = 0  # how many candidates the strategy looked at

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def captions(self) -> list[str]:
        return [k.caption for k in self.keys]

    @property
    def images(self) -> list[np.ndarray]:
        return [k.image for k in self.keys]

    def head(self, k: int) -> "KeySet":
        """The first k keys (keys are stored best margin first)."""
        return KeySet(self.keys[:k], self.strategy, self.delta_0, self.distance, self.sampler,
                      self.query_seeds, self.source, dict(self.reference_roles), self.candidates)

    def manifest(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "strategy": self.strategy, "delta_0": self.delta_0,
            "distance": self.distance, "sampler": self.sampler.to_dict(), "query_seeds": self.query_seeds,
            "source": self.source, "reference_roles": self.reference_roles, "candidates": self.candidates,
            "keys": [{"id": k.id, "caption": k.caption, "image": f"images/{i:04d}.png",
                      "r_source": k.r_source, "r_references": k.r_references}
                     for i, k in enumerate(self.keys)],
        }

    def content_hash(self) -> str:
        h = hashlib.sha256(json.dumps(self.manifest(), sort_keys=True).encode())
        for k in self.keys:
            h.update(np.round(k.image * 255).astype(np.uint8).tobytes())
        return h.hexdigest()

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        manifest["content_hash"] = self.content_hash()
        for i, k in enumerate(self.keys):
            images.save(k.image, folder / f"images/{i:04d}.png")
        (folder / "keyset.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, verify: bool = True) -> "KeySet":
        folder = Path(folder)
        m = json.loads((folder / "keyset.json").read_text())
        if m.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: unsupported key set format {m.get('format_version')}")
        keys = [Key(k["id"], k["caption"], images.load(folder / k["image"]), k["r_source"],
                    k["r_references"]) for k in m["keys"]]
        ks = cls(keys, m["strategy"], m["delta_0"], m["distance"], SamplerConfig.from_dict(m["sampler"]),
                 m["query_seeds"], m["source"], m["reference_roles"], m["candidates"])
        if verify and ks.content_hash() != m["content_hash"]:
            raise ValueError(f"{folder}: content hash mismatch; the key set was altered")
        return ks

    def redacted(self) -> dict:
        """What a report may show without handing an infringer the keys."""
        m = self.manifest()
        m["keys"] = [{"r_source": k["r_source"]} for k in m["keys"]]
        m["content_hash"] = self.content_hash()
        return m
