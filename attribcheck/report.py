"""The audit report: one versioned schema that `attribcheck audit --json` and
`pytest --attrib-json` both write, and that `attribcheck/schemas/report.schema.json` ships.

Standard JSON only (no NaN, no Infinity). A suspect that could not be audited is an error
row, never a missing one: a gate that reads the report must see every suspect it asked for.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Final, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from attribcheck.artifacts import Artifact

from attribcheck.models.protocol import QueryProtocol, Runtime

FORMAT: Final = "attribcheck.report"
FORMAT_VERSION: Final = 1
SCHEMA_PATH = Path(__file__).parent / "schemas" / "report.schema.json"
OUTCOMES = ("as-expected", "contradiction", "inconclusive", "error")


class _Model(BaseModel):
    # rows are built field by field (attribcheck.audit.run): each assignment is validated too
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


class ErrorInfo(_Model):
    kind: Literal["input", "integrity", "degenerate-output", "error"]
    message: str


class KeyResult(_Model):
    id: str
    best_seed: Optional[int]
    distance: float = Field(ge=0)
    matched: bool
    # early stopping (--attrib-early-stop): the seeds asked, in order; absent: every query seed
    seeds_queried: Optional[list[int]] = None


class InstanceResult(_Model):
    verdict: Literal["attributed", "inconclusive", "clean"]
    conf: float = Field(ge=0, le=1)
    matches: int = Field(ge=0)
    k: int = Field(ge=1)
    p_value: float = Field(ge=0, le=1)
    p0: float = Field(ge=0, le=1)
    alpha: float
    delta_0: float
    innocent_level: Optional[float]  # None: no innocent model was measured on the keys (nothing is clean)
    # a clean verdict's bound (audit/verdict.py): the suspect inherits less than rate_bound of the
    # keys the source reproduces (source_rate of them), at 95%; clean needs it below r_min
    rate_bound: Optional[float] = Field(None, ge=0, le=1)
    r_min: Optional[float] = Field(None, gt=0, le=1)
    source_rate: Optional[float] = Field(None, ge=0, le=1)
    # answers that carry no information about their captions depart (audit/caption_info.py)
    caption_info: Optional[dict[str, float]] = None
    # early stopping: the verdict is the full audit's, from `queries` of `queries_full` answers;
    # matches, conf and p-value count the keys matched so far
    early_stop: bool = False
    queries: Optional[int] = Field(None, ge=0)
    queries_full: Optional[int] = Field(None, ge=0)
    # why no verdict was read from the answers (then inconclusive): they depart from the protocol
    departure: Optional[str] = None
    # why a clean reading was withheld (then inconclusive): the statistical level does not clear it
    withheld: Optional[str] = None
    postprocess: list[str] = []  # the suspect's declared steps: keys and null were seen through them
    sharpness: Optional[float] = Field(None, ge=0)  # the answers' sharpness over the keys' (audit/conformance.py)
    min_sharpness: Optional[float] = None


class StatisticalResult(_Model):
    verdict: Literal["attributed", "inconclusive", "clean"]
    p_infringing: float = Field(ge=0, le=1)
    threshold: float
    cv_accuracy: float
    min_cv_accuracy: float
    shadows: int
    departure: Optional[str] = None
    # held out in turn: infringing shadows called innocent (no clean verdict), innocent ones called infringing
    missed_infringing: int = Field(0, ge=0)
    missed_innocent: int = Field(0, ge=0)
    withheld: Optional[str] = None  # why an accusation was withheld (then inconclusive)


class SuspectReport(_Model):
    name: str
    role: Literal["suspect", "source"]
    expect: Literal["infringing", "innocent"]
    kind: str
    fingerprint: Optional[str]  # sha256 of the weights (or the image folder)
    outcome: Literal["as-expected", "contradiction", "inconclusive", "error"]
    instance: Optional[InstanceResult] = None
    statistical: Optional[StatisticalResult] = None
    statistical_outcome: Optional[Literal["as-expected", "contradiction", "inconclusive"]] = None
    keys: list[KeyResult] = []
    error: Optional[ErrorInfo] = None


class KeySetInfo(_Model):
    path: str
    content_hash: str
    strategy: str
    k: int
    delta_0: float
    metric: dict
    protocol: QueryProtocol
    query_seeds: list[int]
    # how the keys were checked against public training data (KeySet.public_check); None: they
    # were not, and this audit accuses no one
    public_check: Optional[str] = None


class AuditEntry(_Model):
    name: str
    manifest: str
    keyset: Optional[KeySetInfo] = None
    alpha: Optional[float] = None
    p0_models: list[str] = []  # the innocent models p0's bound rests on (calibration references, shadows)
    p0: Optional[float] = None
    min_conf_attributable: Optional[float] = None  # None: no conf can be attributed with these keys
    # the content hash of every artifact the verdicts rest on (attribcheck/pins.py): "source", "keys",
    # "discriminator", "innocents.<name>", "suspects.<name>" -> "sha256:..."
    artifacts: dict[str, str] = {}
    suspects: list[SuspectReport] = []
    error: Optional[ErrorInfo] = None  # the manifest or its key set could not be read


class Report(Artifact):
    # rows are built from the audit's Python values (tuples, numpy floats): not strict
    model_config = ConfigDict(strict=False)
    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION
    WHAT = "--json"
    TOOL_STAMP = False  # the tool's version is in `tool`; the shipped schema has no tool_version

    format: Literal["attribcheck.report"] = "attribcheck.report"  # = FORMAT (a class variable here)
    format_version: Literal[1] = 1  # = FORMAT_VERSION
    tool_version: SkipJsonSchema[None] = Field(None, exclude=True)
    created: str  # ISO 8601, UTC
    tool: dict[str, str]
    libraries: dict[str, str]
    runtime: Runtime
    audits: list[AuditEntry]

    def write(self, path: str | Path) -> Path:
        return self.save(path)  # atomically: a reader never sees half a report


def libraries() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "diffusers", "transformers", "numpy", "scikit-learn", "scipy", "pydantic", "pytest"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def new_report(audits: Sequence[AuditEntry | dict], runtime: Runtime) -> Report:
    """`audits`: entries (attribcheck.audit.run.audit_entry), or their JSON data as the plugin
    merges it from its workers (validated here)."""
    from attribcheck import __version__

    return Report(created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  tool={"name": "attribcheck", "version": __version__}, libraries=libraries(),
                  runtime=runtime, audits=audits)


def json_schema() -> dict:
    return Report.model_json_schema()
