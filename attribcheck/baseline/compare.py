"""A run against its baseline: every difference past tolerance, and the table a failing test
prints (suspect, key, old, new).

Tolerances (options of the plugin, defaults here):
- distance 0.02: the same model and key set on another device or BLAS (CPU against GPU) moves
  a reconstruction distance by up to about 0.02; more than that is a changed model, sampler
  or key set, not noise. On one machine the audit is deterministic and drift is 0.
- conf 0.1 (absolute): one key in ten may cross delta_0 through that noise (a key within 0.02
  of delta_0 can flip) without failing the run.
- a verdict that changes always fails, whatever the tolerances.
"""
from __future__ import annotations

from dataclasses import dataclass

TOL_DISTANCE = 0.02
TOL_CONF = 0.1
SOURCE = "(source)"  # how the table names the source's self-check


@dataclass(frozen=True)
class Tolerance:
    distance: float = TOL_DISTANCE
    conf: float = TOL_CONF


@dataclass(frozen=True)
class Drift:
    suspect: str
    key: str  # a key id, or "verdict", "conf", "suspect", "key set"
    old: str
    new: str
    delta: float | None = None  # new - old for numbers


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _block_drifts(name: str, old: dict | None, new: dict | None, tol: Tolerance) -> list[Drift]:
    if old is None:
        if new is None:
            return []
        return [Drift(name, "suspect", "(not in baseline)", new.get("verdict", "?"))]
    if new is None:
        return [Drift(name, "suspect", old.get("verdict", "?"), "(not audited)")]
    out = []
    if old.get("verdict") != new.get("verdict"):
        # a block always has a str verdict (snapshot writes one; store._check_block refuses any other)
        out.append(Drift(name, "verdict", old["verdict"], new["verdict"]))
    # `not <=`, never `>`: a NaN on either side is a drift, not silence
    if "conf" in old and "conf" in new and not abs(new["conf"] - old["conf"]) <= tol.conf:
        out.append(Drift(name, "conf", _fmt(old["conf"]), _fmt(new["conf"]), new["conf"] - old["conf"]))
    if "distances" not in old or "distances" not in new:  # an early-stopped audit: its verdict only
        return out
    od, nd = old["distances"], new["distances"]
    keyed = []
    for k in sorted(set(od) | set(nd)):
        a, b = od.get(k), nd.get(k)
        if a is None or b is None:
            keyed.append(Drift(name, k, _fmt(a), _fmt(b)))
        elif not abs(b - a) <= tol.distance:
            keyed.append(Drift(name, k, _fmt(a), _fmt(b), b - a))
    keyed.sort(key=lambda d: -abs(d.delta) if d.delta is not None else -1.0)  # the largest drift first
    return out + keyed


def compare(old: dict, new: dict, tol: Tolerance = Tolerance()) -> list[Drift]:
    """Every difference between a baseline and the current run past tolerance."""
    oh, nh = (old.get("keyset") or {}).get("content_hash"), (new.get("keyset") or {}).get("content_hash")
    if oh != nh:  # other keys: no distance compares; re-record after review
        return [Drift("*", "key set", str(oh)[:12], str(nh)[:12])]
    out = []
    names = sorted(set(old["suspects"]) | set(new["suspects"]))
    for n in names:
        out += _block_drifts(n, old["suspects"].get(n), new["suspects"].get(n), tol)
    out += _block_drifts(SOURCE, old.get("source"), new.get("source"), tol)
    return out


def table(drifts: list[Drift]) -> str:
    """The diff table: suspect, key, old, new, change; plain text, fixed columns."""
    rows = [("suspect", "key", "old", "new", "change")]
    rows += [(d.suspect, d.key, d.old, d.new, "" if d.delta is None else f"{d.delta:+.4f}") for d in drifts]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
