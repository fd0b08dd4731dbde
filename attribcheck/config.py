"""Configuration objects that round-trip through JSON (the diffusers habit)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="JsonConfig")


@dataclasses.dataclass
class JsonConfig:
    """A dataclass that saves to and loads from a JSON dict; unknown keys are an error."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = data[f.name]
                kwargs[f.name] = tuple(value) if isinstance(value, list) and "tuple" in str(f.type) else value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        from attribcheck.outputs import write_atomic

        write_atomic(path, self.to_json() + "\n", "config")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        return cls.from_json(Path(path).read_text())
