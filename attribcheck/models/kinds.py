"""The registry of suspect kinds: the one extension point for how a suspect is queried.

A kind turns a manifest's suspect entry into a Generator. attribcheck ships `diffusers`,
`folder` and `http`; a package adds its own through the entry-point group
`attribcheck.suspect_kinds`, each entry point naming a SuspectKind (or a function returning
one):

    [project.entry-points."attribcheck.suspect_kinds"]
    my-api = "my_package.attrib:KIND"

or, in a conftest or script, `attribcheck.models.kinds.register(SuspectKind(...))`. The
manifest's `kind` is checked against the registered names when the manifest loads, a kind's
`options` table against its `options` model, and its verdicts reach the table, the JSON
report and the CLI exactly like the built-in kinds' (the audit runner does not know kinds).

A kind with an `identity` is wrapped in the generation cache and opened lazily (only on a
miss); `identity(spec)` returns the parts that decide its images (weight fingerprints,
endpoint and request shape, ...). A kind without one (a folder of collected images) is
queried directly every time.
"""
from __future__ import annotations

from attribcheck.models.kind import SuspectKind  # re-exported: kinds.SuspectKind is the public name

GROUP = "attribcheck.suspect_kinds"


_KINDS: dict[str, SuspectKind] = {}
_loaded_entry_points = False


def register(kind: SuspectKind, replace: bool = False) -> SuspectKind:
    if not isinstance(kind, SuspectKind):
        raise TypeError(f"{kind!r} is not a SuspectKind")
    if kind.name in _KINDS and not replace and _KINDS[kind.name] is not kind:
        raise ValueError(f"suspect kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def _load_entry_points() -> None:
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=GROUP):
        if ep.name in _KINDS:
            continue
        obj = ep.load()
        kind = obj if isinstance(obj, SuspectKind) else obj()
        if not isinstance(kind, SuspectKind) or kind.name != ep.name:
            raise TypeError(f"entry point {ep.name} = {ep.value} in {GROUP} is not a SuspectKind named {ep.name!r}")
        register(kind)


def _builtins() -> None:
    if "diffusers" not in _KINDS:
        from attribcheck.models import builtin_kinds

        for kind in builtin_kinds.BUILTIN:
            _KINDS.setdefault(kind.name, kind)


def names() -> list[str]:
    _builtins()
    _load_entry_points()
    return sorted(_KINDS)


def get(name: str) -> SuspectKind:
    _builtins()
    if name not in _KINDS:
        _load_entry_points()
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown suspect kind {name!r}; registered: {', '.join(names())}") from None
