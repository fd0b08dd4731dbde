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
        """N x H x W x 3 float32; every image must have the same shape."""
        if not self.samples:
            return np.zeros((0, 0, 0, 3), np.float32)
        shapes = {s.image.shape for s in self.samples}
        if len(shapes) > 1:
            raise ValueError(f"{self.name}: images differ in shape {sorted(shapes)}; "
                             "load with side= to resize")
        return np.stack([s.image for s in self.samples]).astype(np.float32)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "CaptionDataset":
        return CaptionDataset([self.samples[int(i)] for i in indices], self.name)

    def concat(self, other: "CaptionDataset") -> "CaptionDataset":
        return CaptionDataset(self.samples + other.samples, self.name)

    def by_id(self, sid: str) -> Sample:
        for s in self.samples:
            if s.id == sid:
                return s
        raise KeyError(sid)

    def split(self, sizes: Sequence[int], seed: int) -> list["CaptionDataset"]:
        """Disjoint parts of the given sizes from one seeded permutation (leftovers are dropped)."""
        if any(n < 0 for n in sizes) or sum(sizes) > len(self):
            raise ValueError(f"split sizes {list(sizes)} exceed the dataset's {len(self)} samples")
        perm = np.random.default_rng(seed).permutation(len(self))
        out, start = [], 0
        for n in sizes:
            out.append(self.subset(perm[start:start + n]))
            start += n
        return out

    # --- folders ------------------------------------------------------------------------
    def save(self, folder: str | Path, fmt: str = "jsonl") -> Path:
        """`<id>.png` per sample plus manifest.jsonl or manifest.csv. PNG is 8-bit, so pixel values
        are quantised to multiples of 1/255: from_folder gives back round(image * 255) / 255."""
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"fmt must be 'jsonl' or 'csv', not {fmt!r}")
        if len(set(self.ids)) != len(self):
            raise ValueError(f"{self.name}: sample ids are not unique, so their PNG files would collide")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # from_folder reads manifest.jsonl first: a stale one from an earlier save would win
        (folder / f"manifest.{'csv' if fmt == 'jsonl' else 'jsonl'}").unlink(missing_ok=True)
        rows = []
        for s in self.samples:
            _img.save(s.image, folder / f"{s.id}.png")
            rows.append({"file": f"{s.id}.png", "caption": s.caption, "id": s.id})
        from attribcheck.outputs import write_atomic

        if fmt == "jsonl":
            write_atomic(folder / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows), "dataset")
        else:
            import io

            buf = io.StringIO(newline="")
            w = csv.DictWriter(buf, fieldnames=["file", "caption", "id"])
            w.writeheader()
            w.writerows(rows)
            write_atomic(folder / "manifest.csv", buf.getvalue(), "dataset")
        return folder

    @classmethod
    def from_folder(cls, folder: str | Path, side: int | None = None) -> "CaptionDataset":
        """Read manifest.jsonl (one object a line) or manifest.csv (header row) beside the images:
        fields `file` (relative path), `caption`, optional `id` (default: the file's stem).
        Images are resized to side x side when side is given."""
        folder = Path(folder)
        if (folder / "manifest.jsonl").exists():
            lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
            rows = []
            for n, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{folder}/manifest.jsonl line {n}: {e}") from None
        elif (folder / "manifest.csv").exists():
            with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
            absent = {"file", "caption"} - set(reader.fieldnames or [])
            if absent:
                raise ValueError(f"{folder}/manifest.csv has no {sorted(absent)} column "
                                 f"(header: {reader.fieldnames})")
        else:
            raise FileNotFoundError(f"{folder}: no manifest.jsonl or manifest.csv beside the images")
        samples = []
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise ValueError(f"{folder}: manifest row {n} is not an object: {row!r}")
            missing = {"file", "caption"} - {k for k, v in row.items() if v not in (None, "")}
            if missing:
                raise ValueError(f"{folder}: manifest row {n} lacks {sorted(missing)}")
            path = folder / row["file"]
            if not path.exists():
                raise FileNotFoundError(f"{folder}: manifest row {n} names a missing file {row['file']!r}")
            image = _img.load(path)
            if side:
                image = _img.resize(image, side)
            samples.append(Sample(str(row.get("id") or Path(row["file"]).stem), str(row["caption"]), image))
        return cls(samples, folder.name)
