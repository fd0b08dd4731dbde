"""Audit manifests (`suites/*.toml`): the source, the key set and the suspects to audit.

    [audit]
    name = "emoji"
    source = "../fixtures/world/emoji/source"      # paths are relative to the manifest
    keys = "../fixtures/world/emoji/keys/generation"
    alpha = 0.01                                   # optional
    # delta_0 = 0.15                               # optional; default: the key set's
    # source_kind = "diffusers"                    # optional; "folder" when the source is collected images
    # discriminator = "../keys/discriminator.json" # optional; default: the key set's, when it has one
    # threshold = 0.9                              # optional; P(infringing) the statistical verdict needs

    [[suspects]]
    name = "infringer-rho0.3-s0"
    path = "../fixtures/world/emoji/suspects/infringer-rho0.3-s0"
    expect = "infringing"                          # or "innocent"
    # kind = "diffusers"                           # or "folder" (images collected from an API)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

EXPECTATIONS = ("infringing", "innocent")
KINDS = ("diffusers", "folder")


@dataclass(frozen=True)
class SuspectSpec:
    name: str
    path: Path
    expect: str
    kind: str = "diffusers"
    config: Path | None = None  # component configs for a single-file checkpoint


@dataclass
class Manifest:
    path: Path
    name: str
    source: Path
    keys: Path
    suspects: list[SuspectSpec] = field(default_factory=list)
    alpha: float = 0.01
    delta_0: float | None = None
    source_kind: str = "diffusers"  # how the source is opened for the self-check (see KINDS)
    discriminator: Path | None = None  # the statistical level's discriminator, when there is one
    threshold: float = 0.9

    @property
    def statistical(self) -> bool:
        return self.discriminator is not None

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path).resolve()
        data = tomllib.loads(path.read_text())
        audit = data.get("audit")
        if not audit:
            raise ValueError(f"{path}: no [audit] table")
        for key in ("source", "keys"):
            if key not in audit:
                raise ValueError(f"{path}: [audit] needs `{key}`")
        source_kind = audit.get("source_kind", "diffusers")
        if source_kind not in KINDS:
            raise ValueError(f"{path}: [audit] source_kind must be one of {KINDS}")
        here = path.parent
        suspects = []
        for i, s in enumerate(data.get("suspects", [])):
            missing = {"name", "path", "expect"} - set(s)
            if missing:
                raise ValueError(f"{path}: suspect #{i} lacks {sorted(missing)}")
            if s["expect"] not in EXPECTATIONS:
                raise ValueError(f"{path}: suspect {s['name']!r}: expect must be one of {EXPECTATIONS}")
            kind = s.get("kind", "diffusers")
            if kind not in KINDS:
                raise ValueError(f"{path}: suspect {s['name']!r}: kind must be one of {KINDS}")
            config = here / s["config"] if "config" in s else None
            suspects.append(SuspectSpec(s["name"], here / s["path"], s["expect"], kind, config))
        names = [s.name for s in suspects]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: suspect names must be unique")
        keys = here / audit["keys"]
        if "discriminator" in audit:
            discriminator = here / audit["discriminator"]
            if not discriminator.exists():
                raise ValueError(f"{path}: discriminator {discriminator} does not exist")
        else:
            discriminator = keys / "discriminator.json" if (keys / "discriminator.json").exists() else None
        return cls(path, audit.get("name", path.stem), here / audit["source"], keys, suspects,
                   float(audit.get("alpha", 0.01)), audit.get("delta_0"), source_kind, discriminator,
                   float(audit.get("threshold", 0.9)))


def open_generator(spec: SuspectSpec, sampler=None):
    """A Generator for a suspect (torch is imported only for diffusers suspects)."""
    if spec.kind == "folder":
        from attribcheck.models.folder_generator import FolderGenerator

        return FolderGenerator(spec.path, spec.name)
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    return DiffusersGenerator.from_path(spec.path, sampler, spec.name, spec.config)
