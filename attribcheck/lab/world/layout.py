"""Where the tiny world's parts live (one place, so build, suites and bench agree)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DONE = ".done"


def rho_tag(rho: float) -> str:
    return f"{rho:.1f}"


@dataclass(frozen=True)
class WorldLayout:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "world.json"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def dataset(self, name: str) -> Path:
        return self.root / name

    def model(self, dataset: str, name: str) -> Path:
        return self.dataset(dataset) / "models" / name

    def keys(self, dataset: str, strategy: str) -> Path:
        return self.dataset(dataset) / "keys" / strategy

    def splits(self, dataset: str) -> Path:
        return self.dataset(dataset) / "splits.json"

    def summary(self, dataset: str) -> Path:
        return self.dataset(dataset) / "summary.json"

    def open(self, dataset: str, name: str, protocol, cache=None):
        """A world model as a Generator, opened by its kind as any audit would (the role is a
        label here), through the generation cache when one is given."""
        from attribcheck.models.spec import SuspectSpec, open_generator

        return open_generator(SuspectSpec(name, self.model(dataset, name), "innocent"), protocol, cache=cache)


def infringer_name(rho: float, seed: int) -> str:
    return f"infringer-rho{rho_tag(rho)}-s{seed}"


def innocent_name(seed: int, overlap: bool = False) -> str:
    return f"innocent-{'overlap-' if overlap else ''}s{seed}"


def is_done(folder: Path) -> bool:
    return (folder / DONE).exists()


def mark_done(folder: Path) -> None:
    (folder / DONE).write_text("")
