"""The schema of `discriminator.json`, checked before anything is fitted.

Field by field, so each error names the field: `bins` (strictly increasing finite numbers),
`X` (the shadows' profiles: a rectangle of finite distances >= 0), `y` (labels 0 or 1, both
classes, at least two shadows of each so leave-one-out can refit without any one), and
`metadata`. The classifier's description is checked by `estimators.build`. A file this
library did not write the way it writes them is an IntegrityError; a missing or unreadable
one an InputError.
"""
from __future__ import annotations

from pathlib import Path

from attribcheck.errors import IntegrityError
from attribcheck.safe_files import read_json_object
from attribcheck.statistical import estimators

KEYS = {"format_version", "bins", "classifier", "X", "y", "metadata"}
REQUIRED = ("bins", "classifier", "X", "y")
MAX_BINS, MAX_SHADOWS, MAX_K = 64, 10_000, 10_000


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) != float("inf")


def read(path: Path) -> dict:
    def fail(message, field=None):
        raise IntegrityError(message, path, field)

    data = read_json_object(path)
    for key in data:
        if key not in KEYS:
            fail("unknown key", key)
    for key in REQUIRED:
        if key not in data:
            fail("missing", key)
    if data.get("format_version", 1) != 1:
        fail(f"{data['format_version']!r} is not 1", "format_version")

    bins = data["bins"]
    if not isinstance(bins, list) or not 2 <= len(bins) <= MAX_BINS:
        fail(f"must be a list of 2 to {MAX_BINS} bin edges", "bins")
    for i, b in enumerate(bins):
        if not _number(b):
            fail(f"{b!r} is not a finite number", f"bins.{i}")
        if i and b <= bins[i - 1]:
            fail("bin edges must increase strictly", f"bins.{i}")

    X = data["X"]
    if not isinstance(X, list) or not 4 <= len(X) <= MAX_SHADOWS:
        fail(f"must be a list of 4 to {MAX_SHADOWS} shadow profiles", "X")
    k = len(X[0]) if isinstance(X[0], list) else 0
    if not 1 <= k <= MAX_K:
        fail(f"a profile is a list of 1 to {MAX_K} distances", "X.0")
    for i, row in enumerate(X):
        if not isinstance(row, list) or len(row) != k:
            fail(f"every profile has the first one's {k} distances", f"X.{i}")
        for j, d in enumerate(row):
            if not _number(d) or d < 0:
                fail(f"{d!r} is not a finite distance >= 0", f"X.{i}.{j}")

    y = data["y"]
    if not isinstance(y, list) or len(y) != len(X):
        fail(f"must be a list of {len(X)} labels, one per profile", "y")
    for i, v in enumerate(y):
        if isinstance(v, bool) or v not in (0, 1) or not isinstance(v, (int, float)):
            fail(f"{v!r} is not a label (1 = infringing, 0 = innocent)", f"y.{i}")
    if min(y.count(0), y.count(1)) < 2:
        fail(f"{y.count(1)} infringing and {y.count(0)} innocent shadows; each needs at least 2", "y")

    estimators.check_refit(data["classifier"], len(X), path)  # loading refits it once per shadow

    meta = data.setdefault("metadata", {})
    if not isinstance(meta, dict):
        fail("must be an object", "metadata")
    cv = meta.get("cv_accuracy")
    if cv is not None and not (_number(cv) and 0 <= cv <= 1):
        fail(f"{cv!r} is not an accuracy in [0, 1]", "metadata.cv_accuracy")
    if "keyset_hash" in meta and not isinstance(meta["keyset_hash"], str):
        fail("must be a string", "metadata.keyset_hash")
    shadows = meta.get("shadows")
    if shadows is not None and not (isinstance(shadows, list) and len(shadows) == len(X)
                                    and all(isinstance(s, str) for s in shadows)):
        fail(f"must be a list of {len(X)} shadow names", "metadata.shadows")
    return data
