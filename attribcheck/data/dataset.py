"""Caption-image datasets, in memory and as folders (images beside a JSONL or CSV manifest)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from attribcheck import images as _img


@dataclass(frozen=True)
class Sample:
    id: str
    caption: str
    image: np.ndarray


class CaptionDataset:
    def __init__(self, samples: Sequence[Sample], name: str = "dataset"):
        self.samples = list(samples)
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return CaptionDataset(self.samples[i], self.name)
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.samples]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    @property
    def images(self) -> np.ndarray:
        return np.stack([s.image for s in self.samples]).astype(np.float32)

    def subset(self, indices: Sequence[int]) -> "CaptionDataset":
        return CaptionDataset([self.samples[int(i)] for i in indices], self.name)

    def concat(self, other: "CaptionDataset") -> "CaptionDataset":
        return CaptionDataset(self.samples + other.samples, self.name)

    def by_id(self, sid: str) -> Sample:
        for s in self.samples:
            if s.id == sid:
                return s
        raise KeyError(sid)

    def split(self, sizes: Sequence[int], seed: int) -> list["CaptionDataset"]:
        if sum(sizes) > len(self):
            raise ValueError(f"split sizes {list(sizes)} exceed the dataset's {len(self)} samples")
        perm = np.random.default_rng(seed).permutation(len(self))
        out, start = [], 0
        for n in sizes:
            out.append(self.subset(perm[start:start + n]))
            start += n
        return out

    # --- folders ------------------------------------------------------------------------
    def save(self, folder: str | Path, fmt: str = "jsonl") -> Path:
        """PNG images (8-bit: pixel values are quantised) plus manifest.jsonl or manifest.csv."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for s in self.samples:
            _img.save(s.image, folder / f"{s.id}.png")
            rows.append({"file": f"{s.id}.png", "caption": s.caption, "id": s.id})
        if fmt == "jsonl":
            (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif fmt == "csv":
            with open(folder / "manifest.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["file", "caption", "id"])
                w.writeheader()
                w.writerows(rows)
        else:
            raise ValueError(f"fmt must be 'jsonl' or 'csv', not {fmt!r}")
        return folder

    @classmethod
    def from_folder(cls, folder: str | Path, side: int | None = None) -> "CaptionDataset":
        folder = Path(folder)
        if (folder / "manifest.jsonl").exists():
            lines = (folder / "manifest.jsonl").read_text().splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
        elif (folder / "manifest.csv").exists():
            with open(folder / "manifest.csv", newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            raise FileNotFoundError(f"{folder}: no manifest.jsonl or manifest.csv beside the images")
        samples = []
        for n, row in enumerate(rows):
            missing = {"file", "caption"} - {k for k, v in row.items() if v not in (None, "")}
            if missing:
                raise ValueError(f"{folder}: manifest row {n} lacks {sorted(missing)}")
            path = folder / row["file"]
            if not path.exists():
                raise FileNotFoundError(f"{folder}: manifest row {n} names a missing file {row['file']!r}")
            image = _img.load(path)
            if side:
                image = _img.resize(image, side)
            samples.append(Sample(row.get("id") or Path(row["file"]).stem, row["caption"], image))
        return cls(samples, folder.name)
