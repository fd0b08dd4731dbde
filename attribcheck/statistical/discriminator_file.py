"""The schema of `discriminator.json`, checked before anything is fitted.

Field by field, so each error names the field: `bins` (strictly increasing finite numbers),
`X` (the shadows' profiles: a rectangle of finite distances >= 0), `y` (labels 0 or 1, both
classes, at least two shadows of each so leave-one-out can refit without any one), and
`metadata`. The classifier's description is checked by `estimators.build` (and its refit's
cost by `estimators.check_refit`). Only this library writes the file, so one it did not write
the way it writes them is an IntegrityError; a missing or unreadable one an InputError.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from attribcheck.artifacts import Artifact
from attribcheck.errors import IntegrityError
from attribcheck.statistical import estimators

MAX_BINS, MAX_SHADOWS, MAX_K = 64, 10_000, 10_000
Distance = Annotated[float, Field(ge=0)]
Label = Annotated[int, Field(ge=0, le=1)]  # 1 = infringing, 0 = innocent; strict: true is no label


class DiscriminatorFile(Artifact):
    FORMAT = "attribcheck.discriminator"
    FORMAT_VERSION = 1
    ERROR = IntegrityError
    WHAT = "discriminator"
    INDENT = None  # profiles of thousands of numbers: one line

    format_version: int = 1  # the first files carried no version
    bins: list[float] = Field(min_length=2, max_length=MAX_BINS)
    classifier: dict[str, Any]
    X: list[Annotated[list[Distance], Field(min_length=1, max_length=MAX_K)]] = Field(min_length=4,
                                                                                     max_length=MAX_SHADOWS)
    y: list[Label]
    # the key set's content hash (so the pair cannot drift apart), the shadows' names, the
    # leave-one-out accuracy (recomputed at load, and a stored value that disagrees refused)
    metadata: dict[str, Any] = {}

    def check(self, path) -> None:
        def fail(message: str, field: str):
            raise IntegrityError(message, path, field)

        for i in range(1, len(self.bins)):
            if self.bins[i] <= self.bins[i - 1]:
                fail("bin edges must increase strictly", f"bins.{i}")
        k = len(self.X[0])
        for i, row in enumerate(self.X):
            if len(row) != k:
                fail(f"every profile has the first one's {k} distances", f"X.{i}")
        if len(self.y) != len(self.X):
            fail(f"must be a list of {len(self.X)} labels, one per profile", "y")
        if min(self.y.count(0), self.y.count(1)) < 2:
            fail(f"{self.y.count(1)} infringing and {self.y.count(0)} innocent shadows; each needs at least 2", "y")
        estimators.check_refit(self.classifier, len(self.X), path)  # loading refits it once per shadow
        meta = self.metadata
        cv = meta.get("cv_accuracy")
        if cv is not None and not (isinstance(cv, (int, float)) and not isinstance(cv, bool) and 0 <= cv <= 1):
            fail(f"{cv!r} is not an accuracy in [0, 1]", "metadata.cv_accuracy")
        if "keyset_hash" in meta and not isinstance(meta["keyset_hash"], str):
            fail("must be a string", "metadata.keyset_hash")
        shadows = meta.get("shadows")
        if shadows is not None and not (isinstance(shadows, list) and len(shadows) == len(self.X)
                                        and all(isinstance(s, str) for s in shadows)):
            fail(f"must be a list of {len(self.X)} shadow names", "metadata.shadows")


def read(path: Path) -> DiscriminatorFile:
    return DiscriminatorFile.load(path)
