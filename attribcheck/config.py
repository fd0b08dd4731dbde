"""Configuration objects that round-trip through JSON (the diffusers habit).

Saved through the artifact layer's stamp and writer (attribcheck.artifacts): a saved config
names its format (`attribcheck.<class>`), version and the tool that wrote it; `load` reads a
regular file of bounded size, refuses another format or a newer version by name, and an
unknown key is one line naming the file and the key. Configs saved before the stamp load.
`to_dict` and `to_json` stay unstamped: the lab hashes them (a cache folder's name)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="JsonConfig")


@dataclasses.dataclass
class JsonConfig:
    """A dataclass that saves to and loads from a JSON dict; unknown keys are an error."""

    FORMAT_VERSION: ClassVar[int] = 1

    @classmethod
    def format(cls) -> str:
        return f"attribcheck.{cls.__name__}"

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
        from attribcheck.artifacts import save_data

        save_data(path, self.format(), self.FORMAT_VERSION, self.to_dict(), "config", sort_keys=True)

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        from attribcheck.artifacts import load_data
        from attribcheck.errors import InputError

        data = load_data(path, cls.format(), cls.FORMAT_VERSION, default_version=1)
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError("unknown key (a typo?)", path, unknown[0])
        return cls.from_dict(data)
