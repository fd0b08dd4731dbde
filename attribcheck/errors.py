"""The errors an audit raises on untrusted input, one hierarchy so callers can tell them apart.

- `InputError`: the input is malformed (a typo, a value out of range, a missing file). The
  user fixes their manifest or folder.
- `IntegrityError`: an artifact is not what it claims to be (a content hash that does not
  match, a discriminator of another key set, a class outside the allow-list, a path that
  leaves its folder). Someone, or something, altered it.
- `DegenerateOutputError`: a suspect answered with images no verdict can be read from
  (non-finite, constant, blank, smaller than the keys). That suspect gets an error, never a
  verdict.

Every message is one line that names the file and, where there is one, the field. The base is
`Exception`, not `ValueError`: a ValueError from a bug of ours must never read as the user's bad
input (the CLI maps only these to exit 3).
"""
from __future__ import annotations

from pathlib import Path


class AttribcheckError(Exception):
    """Base class. `where` is the file (or model) the problem is in; `field` the entry in it."""

    kind = "error"

    def __init__(self, message: str, where: str | Path | None = None, field: str | None = None):
        self.where = str(where) if where is not None else None
        self.field = field
        self.message = message
        parts = [p for p in (self.where, field) if p]
        super().__init__(": ".join(parts + [message]))


class InputError(AttribcheckError):
    kind = "input"


class IntegrityError(AttribcheckError):
    kind = "integrity"


class DegenerateOutputError(AttribcheckError):
    kind = "degenerate-output"


def from_validation(err, where: str | Path | None) -> InputError:
    """A pydantic ValidationError (or its `.errors()` list) as one InputError line:
    `file: field.path: message` (the first problem, and how many more there are)."""
    errors = err if isinstance(err, list) else err.errors() if hasattr(err, "errors") else []
    if not errors:
        return InputError(str(err).splitlines()[0], where)
    # an unknown key first: `expcet` explains the missing `expect` that comes with it
    first = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
    msg = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        msg = "unknown key (a typo?)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InputError(msg + more, where, loc or None)
