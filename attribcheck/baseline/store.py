"""Where a manifest's baseline lives and how it is read and written: `baselines/<audit
name>.json` beside the manifest, in the repository, so a change to it is reviewed like code.
Written with sorted keys and one suspect per block (a diff of the file reads as the diff of
the audit), atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field

from attribcheck.artifacts import Artifact
from attribcheck.baseline.snapshot import FORMAT, FORMAT_VERSION

FOLDER = "baselines"


def path_for(manifest) -> Path:
    return Path(manifest.path).parent / FOLDER / f"{manifest.name}.json"


class Block(BaseModel):
    """One suspect's (or the source's) record. A NaN conf or distance would compare as no drift
    at all (every comparison with NaN is false) and switch the regression check off: refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    verdict: str
    conf: Optional[float] = Field(None, ge=0, le=1)
    matches: Optional[int] = Field(None, ge=0)
    k: Optional[int] = Field(None, ge=0)
    distances: dict[str, Annotated[float, Field(ge=0)]] = {}
    early_stop: bool = False  # recorded and compared by its verdict only
    error: Optional[str] = None  # the kind of error a suspect's row had


class KeySetBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    content_hash: Optional[str] = None
    strategy: Optional[str] = None
    k: Optional[int] = None
    delta_0: Optional[float] = None


class BaselineFile(Artifact):
    FORMAT = FORMAT
    FORMAT_VERSION = FORMAT_VERSION
    UPGRADE = "re-record it"
    WHAT = "baseline"
    SORT_KEYS = True  # a diff of the file reads as the diff of the audit

    audit: str
    keyset: KeySetBlock
    source: Optional[Block] = None
    suspects: dict[str, Block]

    def dump(self) -> dict:
        return self.model_dump(exclude_unset=True)  # what was recorded, nothing a default adds


def write(path: Path, baseline: dict) -> Path:
    return BaselineFile.model_validate(baseline).save(path)


def load(path: Path) -> dict:
    """The baseline as recorded (a regular file of bounded size, every block checked)."""
    return BaselineFile.load(path).dump()
