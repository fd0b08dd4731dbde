"""One base for every JSON file attribcheck saves and reads back: key sets, discriminators,
baselines, the profile cache, the report and the lab's configs.

An artifact is a strict pydantic model (no unknown key, no coercion, no NaN or Infinity) that
names its `FORMAT` and `FORMAT_VERSION`. `save` stamps `format`, `format_version` and the
`tool_version` that wrote it, and writes through `outputs.write_atomic` (whole or not at all,
never through a link). `load` reads through `safe_files` (a regular file of bounded size),
checks the stamp before the schema (a newer version is refused by name, not by its first
unknown field), then validates: every problem is one line naming the file and the field.

Files written before the stamp existed (no `format`, no `tool_version`) load: the committed
key sets, discriminators and baselines are read as they are, never rewritten.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from attribcheck.errors import AttribcheckError, InputError, from_validation

A = TypeVar("A", bound="Artifact")


def tool_version() -> str:
    from attribcheck import __version__

    return __version__


# No artifact nests deeper than a few levels; a hostile file nested near the parser's limit
# (about 990) loads, then overflows the stack of whatever walks it next (a content hash)
MAX_DEPTH = 32


def too_deep_at(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """The dotted path where parsed JSON nests deeper than `limit`, or None (walked without
    recursion, so the check itself cannot overflow)."""
    stack = [(value, "", 0)]
    while stack:
        item, at, depth = stack.pop()
        if depth > limit:
            return at or "(top)"
        if isinstance(item, dict):
            stack.extend((v, f"{at}.{k}" if at else str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{at}.{i}" if at else str(i), depth + 1) for i, v in enumerate(item))
    return None


def plain_json_problem(data: Any) -> tuple[str, str] | None:
    """(field, message) for parsed JSON no artifact holds: nested past MAX_DEPTH, or a NaN or
    infinity anywhere; None when it is plain."""
    deep = too_deep_at(data)
    if deep:
        return deep, f"nested deeper than {MAX_DEPTH} levels"
    bad = nonfinite_at(data)
    if bad:
        return bad, f"{_at(data, bad)!r} is not a finite number (standard JSON has no NaN or Infinity)"
    return None


def nonfinite_at(value: Any, at: str = "") -> str | None:
    """The dotted path of the first NaN or infinity in parsed JSON, or None. JSON's parser
    reads `NaN` and `1e999`; a schema field of type Any would let them through, and a NaN
    compares false with everything (a threshold it meets switches a check off)."""
    if isinstance(value, float) and not math.isfinite(value):
        return at or "(top)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = nonfinite_at(item, f"{at}.{key}" if at else str(key))
        if found:
            return found
    return None


def check_stamp(data: dict, fmt: str, version: int, oldest: int, path: str | Path,
                error: type[AttribcheckError] = InputError, upgrade: str = "re-create it with this attribcheck",
                default_version: int | None = None) -> int:
    """The file's format version, after its stamp is checked: `format`, where present, is
    `fmt`; `format_version` is an integer from `oldest` to `version` (a newer one is refused
    by name: this attribcheck cannot know what its fields mean)."""
    found = data.get("format", fmt)
    if found != fmt:
        raise error(f"{found!r} is not {fmt!r}: another kind of file", path, "format")
    v = data.get("format_version", default_version)
    if v is None:
        raise error("missing", path, "format_version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise error(f"{v!r} is not an integer", path, "format_version")
    if v > version:
        raise error(f"{v} is newer than this attribcheck reads ({version}): upgrade attribcheck", path,
                    "format_version")
    if v < oldest:
        raise error(f"{v} is older than this attribcheck reads ({oldest}); {upgrade}", path, "format_version")
    return v


def stamped_json(stamp: dict[str, Any], data: dict[str, Any], indent: int | None = 2, sort_keys: bool = False) -> str:
    """The text of a saved file: its stamp first, then its data; standard JSON only (a NaN is
    a ValueError: a bug of the writer, never a file that silently holds null)."""
    import json

    body = {**stamp, **{k: v for k, v in data.items() if k not in stamp}}
    return json.dumps(body, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"


def save_data(path: str | Path, fmt: str, version: int, data: dict[str, Any], what: str,
              indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Write `data` stamped with its format, version and this tool's version, atomically. For
    a file whose fields a model does not hold (the lab's dataclass configs)."""
    from attribcheck.outputs import write_atomic

    stamp = {"format": fmt, "format_version": version, "tool_version": tool_version()}
    return write_atomic(path, stamped_json(stamp, data, indent, sort_keys), what)


def load_data(path: str | Path, fmt: str, version: int, error: type[AttribcheckError] = InputError,
              default_version: int | None = None) -> dict[str, Any]:
    """`save_data`'s data back, unstamped: a regular file of bounded size, its stamp checked
    (an older file without one loads), no NaN or Infinity anywhere."""
    from attribcheck.safe_files import read_json_object

    path = Path(path)
    data = read_json_object(path)
    check_stamp(data, fmt, version, version, path, error, default_version=default_version)
    problem = plain_json_problem(data)
    if problem:
        raise error(problem[1], path, problem[0])
    return {k: v for k, v in data.items() if k not in ("format", "format_version", "tool_version")}


class Artifact(BaseModel):
    """A saved file. Subclasses set FORMAT and FORMAT_VERSION and declare their fields;
    relations between fields that a type cannot say go in `check`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    FORMAT: ClassVar[str]
    FORMAT_VERSION: ClassVar[int]
    OLDEST_VERSION: ClassVar[Optional[int]] = None  # the oldest version read; None: FORMAT_VERSION only
    ERROR: ClassVar[type[AttribcheckError]] = InputError  # IntegrityError where only we write the file
    UPGRADE: ClassVar[str] = "re-create it with this version of attribcheck"
    WHAT: ClassVar[str] = "artifact"  # how a write error names it
    INDENT: ClassVar[Optional[int]] = 2
    SORT_KEYS: ClassVar[bool] = False
    TOOL_STAMP: ClassVar[bool] = True  # the report carries the tool's version in its own `tool` field

    format: Optional[str] = None  # absent in files older than the stamp
    format_version: int
    tool_version: Optional[str] = None  # absent in files older than the stamp

    @model_validator(mode="before")
    @classmethod
    def _current_version(cls, data: Any) -> Any:
        """Built in memory, an artifact is of the current version. (A file without one is
        refused before validation, by `check_stamp`, unless its class names a default.)"""
        if isinstance(data, dict) and "format_version" not in data:
            return {**data, "format_version": cls.FORMAT_VERSION}
        return data

    # -- reading -----------------------------------------------------------------------------

    @classmethod
    def from_data(cls: type[A], data: Any, path: str | Path) -> A:
        """Validate parsed JSON as this artifact, or raise one `ERROR` line naming the field."""
        if not isinstance(data, dict):
            raise cls.ERROR("not a JSON object", path)
        default = cls.model_fields["format_version"].default
        check_stamp(data, cls.FORMAT, cls.FORMAT_VERSION, cls.OLDEST_VERSION or cls.FORMAT_VERSION, path,
                    cls.ERROR, cls.UPGRADE, default if isinstance(default, int) else None)
        problem = plain_json_problem(data)
        if problem:
            raise cls.ERROR(problem[1], path, problem[0])
        try:
            artifact = cls.model_validate(data)
        except ValidationError as e:
            one = from_validation(e, path)
            raise cls.ERROR(one.message, path, one.field) from None
        artifact.check(path)
        return artifact

    @classmethod
    def load(cls: type[A], path: str | Path, missing: str = "no such file") -> A:
        from attribcheck.safe_files import read_json_object

        path = Path(path)
        return cls.from_data(read_json_object(path, missing), path)

    def check(self, path: str | Path) -> None:
        """Relations between fields (raise `self.ERROR(message, path, field)`); none by default."""

    # -- writing -----------------------------------------------------------------------------

    def stamp(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": self.FORMAT, "format_version": self.FORMAT_VERSION}
        if self.TOOL_STAMP:
            out["tool_version"] = tool_version()
        return out

    def dump(self) -> dict[str, Any]:
        """The fields as data for json.dumps (the stamp is added by `to_json`). Python mode, not
        pydantic's JSON mode, which writes a NaN in an Any field as null: json.dumps refuses it."""
        return self.model_dump()

    def to_json(self) -> str:
        return stamped_json(self.stamp(), self.dump(), self.INDENT, self.SORT_KEYS)

    def save(self, path: str | Path) -> Path:
        from attribcheck.outputs import write_atomic

        return write_atomic(path, self.to_json(), self.WHAT)


def _at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[int(part)] if isinstance(data, list) else data.get(part) if isinstance(data, dict) else data
    return data
