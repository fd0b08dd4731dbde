"""Audit manifests (`suites/*.toml`): the source, the key set and the suspects to audit.

    [audit]
    name = "emoji"
    source = "../fixtures/world/emoji/source"      # paths are relative to the manifest
    keys = "../fixtures/world/emoji/keys/generation"
    alpha = 0.01                                   # optional, in (0, 1)
    # delta_0 = 0.15                               # optional; default: the key set's
    # source_kind = "diffusers"                    # optional; "folder" when the source is collected images
    # source_config = "../base"                    # optional; for a single-file source checkpoint
    # discriminator = "../keys/discriminator.json" # optional; default: the key set's, when it has one
    # threshold = 0.9                              # optional, in (0.5, 1]; P(infringing) the statistical verdict needs
    # min_sharpness = 0.6                          # optional; blurrier answers get no verdict (audit/conformance.py)
    # r_min = 0.1                                  # optional, in (0, 1]; clean rules out an infringer inheriting this share

    [[suspects]]
    name = "infringer-rho0.3-s0"
    path = "../fixtures/world/emoji/suspects/infringer-rho0.3-s0"
    expect = "infringing"                          # or "innocent"
    # kind = "diffusers"                           # or "folder", "http", or a kind a package registers
    # config = "../base"                           # for a single-file checkpoint
    # repo = "org/model"                           # diffusers: a repo id in the local Hugging Face cache
    # variant = "fp16"                             # diffusers: load model.fp16.safetensors files
    # lora = "../adapters/style.safetensors"       # diffusers: a LoRA adapter over the pipeline at path/repo
    # lora_scale = 1.0
    # postprocess = ["scale:2", "jpeg:75"]         # what the suspect's service does to its images (audit/postprocess.py)
    # [suspects.options]                           # the kind's own settings (http: url, request, ...)

    [[innocents]]                                  # optional: innocent models that took no part in key selection;
    name = "ref-calibration"                       # the null through a suspect's postprocess is measured on them
    path = "../fixtures/world/emoji/ref-calibration"
    # kind, config, repo, ...: as for a suspect

    [pins]                                         # optional, written by `attribcheck pin`: a pinned manifest
    source = "sha256:..."                          # refuses any artifact whose content hash differs
    # keys, discriminator = "sha256:..."; [pins.innocents] and [pins.suspects]: name = "sha256:..."

A manifest is untrusted input: it is validated whole at load, before any model is touched.
Unknown keys (`alhpa`, `[[suspect]]`), values out of range and paths that do not exist are
an `InputError` naming the file and the field.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from attribcheck.audit.conformance import DEFAULT_MIN_SHARPNESS
from attribcheck.audit.verdict import DEFAULT_R_MIN
from attribcheck.errors import InputError, from_validation
from attribcheck.models.spec import SuspectSpec

PIN = r"^sha256:[0-9a-f]{64}$"  # a pin: what attribcheck.pins writes and checks

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

EXPECTATIONS = ("infringing", "innocent")
KINDS = ("diffusers", "folder")  # the built-in kinds of files; attribcheck.models.kinds has every registered kind
DEFAULT_ALPHA = 0.01
DEFAULT_THRESHOLD = 0.9
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+=@-]{0,127}$"  # safe in a file name, a test id and a table
SELF_CHECK = "source"  # the name of the source's own row in every report


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class AuditTable(_Strict):
    name: Optional[str] = Field(None, pattern=NAME)
    source: str = Field(min_length=1)
    source_kind: str = "diffusers"
    source_config: Optional[str] = None
    keys: str = Field(min_length=1)
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=1)
    delta_0: Optional[float] = Field(None, gt=0, le=1)
    discriminator: Optional[str] = None
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.5, le=1)
    min_sharpness: float = Field(DEFAULT_MIN_SHARPNESS, ge=0, le=1)
    r_min: float = Field(DEFAULT_R_MIN, gt=0, le=1)  # what a clean verdict rules out (audit/verdict.py)


def _registered_kind(v: str) -> str:
    from attribcheck.models import kinds

    if v not in kinds.names():
        raise ValueError(f"unknown suspect kind {v!r}; registered: {', '.join(kinds.names())}")
    return v


class SuspectEntry(_Strict):
    name: str = Field(pattern=NAME)
    path: Optional[str] = Field(None, min_length=1)
    expect: Literal["infringing", "innocent"]
    kind: str = "diffusers"
    config: Optional[str] = None
    repo: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
    revision: Optional[str] = Field(None, min_length=1)
    variant: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    lora: Optional[str] = Field(None, min_length=1)
    lora_scale: float = Field(1.0, ge=-10, le=10)
    postprocess: list[str] = Field([], max_length=16)
    options: dict = {}

    _kind = field_validator("kind")(_registered_kind)

    @field_validator("name")
    @classmethod
    def _not_the_self_check(cls, v: str) -> str:
        if v == SELF_CHECK:  # the report's row for the source's self-check has this name
            raise ValueError(f"{SELF_CHECK!r} names the source's self-check row; call the suspect something else")
        return v

    @field_validator("postprocess")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        from attribcheck.audit.postprocess import Postprocess

        Postprocess.parse(v)  # ValueError: the step, or the steps together, and what is wrong
        return v

    @model_validator(mode="after")
    def _fields_of_the_kind(self):
        from attribcheck.models import kinds

        kind = kinds.get(self.kind)
        if self.kind != "diffusers":
            for f in ("repo", "revision", "variant", "lora"):
                if getattr(self, f) is not None:
                    raise ValueError(f"{f} is a diffusers setting; this suspect's kind is {self.kind!r}")
        elif (self.path is None) == (self.repo is None):
            raise ValueError("a diffusers suspect names either path (a local folder or file) or repo (a repo id)")
        if self.revision is not None and self.repo is None:
            raise ValueError("revision goes with repo")
        if kind.needs_path and self.path is None:
            raise ValueError(f"a {self.kind!r} suspect needs path")
        if kind.options is None and self.options:
            raise ValueError(f"a {self.kind!r} suspect takes no options")
        if kind.options is not None:
            from pydantic import ValidationError

            try:
                kind.options.model_validate(self.options)
            except ValidationError as e:  # one line: options.<field>: what is wrong
                first = sorted(e.errors(), key=lambda x: x.get("type") != "extra_forbidden")[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                msg = "unknown key (a typo?)" if first.get("type") == "extra_forbidden" else first.get("msg")
                raise ValueError(f"options.{where}: {msg}") from None
        return self


class InnocentEntry(SuspectEntry):
    """An innocent model the owner holds: opened like a suspect, never audited."""

    expect: Literal["innocent"] = "innocent"


class PinsTable(_Strict):
    """[pins]: each artifact's content hash, written by `attribcheck pin` (attribcheck/pins.py)."""

    source: Optional[str] = Field(None, pattern=PIN)
    keys: Optional[str] = Field(None, pattern=PIN)
    discriminator: Optional[str] = Field(None, pattern=PIN)
    innocents: dict[str, Annotated[str, Field(pattern=PIN)]] = {}
    suspects: dict[str, Annotated[str, Field(pattern=PIN)]] = {}

    def flat(self) -> dict[str, str]:
        """{"source": ..., "suspects.<name>": ...}: the names attribcheck.pins uses."""
        out = {f: getattr(self, f) for f in ("source", "keys", "discriminator") if getattr(self, f) is not None}
        return {**out, **{f"innocents.{n}": h for n, h in self.innocents.items()},
                **{f"suspects.{n}": h for n, h in self.suspects.items()}}


class ManifestFile(_Strict):
    """The schema of a manifest file."""

    audit: AuditTable
    suspects: list[SuspectEntry] = []
    innocents: list[InnocentEntry] = []
    pins: Optional[PinsTable] = None

    @field_validator("suspects", "innocents")
    @classmethod
    def _unique(cls, v: list[SuspectEntry]) -> list[SuspectEntry]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names must be unique; repeated: {dupes}")
        return v

    @model_validator(mode="after")
    def _innocents_for_postprocess(self):
        if self.innocents and any(i.postprocess for i in self.innocents):
            raise ValueError("innocents: postprocess is a suspect's setting; an innocent's answers are "
                             "passed through each suspect's steps")
        needs = [s.name for s in self.suspects if s.postprocess]
        if needs and not self.innocents:
            raise ValueError(f"suspect {needs[0]} declares a postprocess: the null is measured through it on "
                             f"innocent models; list them as [[innocents]]")
        return self


@dataclass
class Manifest:
    path: Path
    name: str
    source: Path
    keys: Path
    suspects: list[SuspectSpec] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    delta_0: float | None = None
    source_kind: str = "diffusers"  # how the source is opened for the self-check (see KINDS)
    discriminator: Path | None = None  # the statistical level's discriminator, when there is one
    threshold: float = DEFAULT_THRESHOLD
    source_config: Path | None = None
    min_sharpness: float = DEFAULT_MIN_SHARPNESS
    innocents: list[SuspectSpec] = field(default_factory=list)  # [[innocents]]: the null through a postprocess
    r_min: float = DEFAULT_R_MIN  # a clean verdict rules out an infringer inheriting this share of the keys
    pins: dict[str, str] = field(default_factory=dict)  # [pins], flat: artifact -> "sha256:..." (attribcheck/pins.py)

    @property
    def statistical(self) -> bool:
        return self.discriminator is not None

    @property
    def source_spec(self) -> SuspectSpec:
        """The source as a suspect, for the self-check: it must be attributed to its own keys."""
        return SuspectSpec(SELF_CHECK, self.source, "infringing", self.source_kind, self.source_config)

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path).resolve()
        from attribcheck.safe_files import read_text_bounded

        try:  # a regular file of bounded size (a FIFO would hang), nested within the parser's stack
            data = tomllib.loads(read_text_bounded(path))
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"not valid TOML: {e}", path) from e
        except RecursionError:
            raise InputError("not valid TOML (nested too deep)", path) from None
        except ValueError as e:  # an integer of 5,000 digits
            raise InputError(f"not valid TOML ({str(e).splitlines()[0][:120]})", path) from None
        try:
            m = ManifestFile.model_validate(data)
        except Exception as e:  # pydantic.ValidationError
            raise from_validation(_named(e, data), path) from e
        here = path.parent

        def existing(rel: str, field_name: str, what: str) -> Path:
            p = here / rel
            if not p.exists():
                raise InputError(f"{what} {p} does not exist", path, field_name)
            return p

        def optional(rel: str | None, field_name: str, what: str) -> Path | None:
            return None if rel is None else existing(rel, field_name, what)

        a = m.audit
        keys = existing(a.keys, "audit.keys", "key set")
        if not (keys / "keyset.json").is_file():
            raise InputError(f"{keys} holds no keyset.json", path, "audit.keys")
        from attribcheck.models import kinds

        if a.source_kind not in kinds.names():
            raise InputError(f"unknown suspect kind {a.source_kind!r}; registered: {', '.join(kinds.names())}",
                             path, "audit.source_kind")
        def spec(i: int, s: SuspectEntry, table: str) -> SuspectSpec:
            options = kinds.get(s.kind).options
            return SuspectSpec(
                s.name, optional(s.path, f"{table}.{i}.path", "model"), s.expect, s.kind,
                optional(s.config, f"{table}.{i}.config", "config"), s.repo, s.revision, s.variant,
                optional(s.lora, f"{table}.{i}.lora", "LoRA file"), s.lora_scale,
                options.model_validate(s.options) if options is not None else None, tuple(s.postprocess), here)

        suspects = [spec(i, s, "suspects") for i, s in enumerate(m.suspects)]
        innocents = [spec(i, s, "innocents") for i, s in enumerate(m.innocents)]
        discriminator = optional(a.discriminator, "audit.discriminator", "discriminator")
        if discriminator is None and (keys / "discriminator.json").exists():
            discriminator = keys / "discriminator.json"
        return cls(path, a.name or path.stem, existing(a.source, "audit.source", "source"), keys, suspects,
                   a.alpha, a.delta_0, a.source_kind, discriminator, a.threshold,
                   optional(a.source_config, "audit.source_config", "config"), a.min_sharpness, innocents,
                   a.r_min, pins=m.pins.flat() if m.pins is not None else {})


def _named(err, data) -> list[dict]:
    """pydantic reports `suspects.3.expect`; a user thinks in suspect names."""
    errors = err.errors()
    for e in errors:
        loc = e.get("loc", ())
        if len(loc) >= 2 and loc[0] in ("suspects", "innocents") and isinstance(loc[1], int):
            try:
                name = data[loc[0]][loc[1]].get("name")
            except (KeyError, IndexError, TypeError, AttributeError):
                continue  # naming is a courtesy; the index still says where
            if isinstance(name, str):
                e["loc"] = (loc[0], f"{loc[1]} ({name})") + tuple(loc[2:])
    return errors
