"""A Generator over images already collected from a black-box suspect (an API, say).

The folder holds `queries.jsonl`: one {"prompt", "seed", "file"} object per image.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from attribcheck import images

MANIFEST = "queries.jsonl"


class FolderGenerator:
    def __init__(self, folder: str | Path, name: str | None = None):
        self.folder = Path(folder)
        self.name = name or self.folder.name
        manifest = self.folder / MANIFEST
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest} not found: collect the suspect's images first")
        self._files: dict[tuple[str, int], Path] = {}
        for line in manifest.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                self._files[(row["prompt"], int(row["seed"]))] = self.folder / row["file"]

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        missing = [(p, s) for p, s in zip(prompts, seeds) if (p, int(s)) not in self._files]
        if missing:
            raise KeyError(f"{self.name}: {len(missing)} queries were never collected, e.g. {missing[:3]}")
        return [images.load(self._files[(p, int(s))]) for p, s in zip(prompts, seeds)]


def collect(generator, prompts: Sequence[str], seeds: Sequence[int], folder: str | Path) -> Path:
    """Query `generator` for every (prompt, seed) pair and store the answers as a folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = generator.generate(list(prompts), list(seeds))
    with open(folder / MANIFEST, "w") as f:
        for i, (p, s, im) in enumerate(zip(prompts, seeds, imgs)):
            name = f"{i:05d}.png"
            images.save(im, folder / name)
            f.write(json.dumps({"prompt": p, "seed": int(s), "file": name}) + "\n")
    return folder
