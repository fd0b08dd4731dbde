"""What a baseline records of one manifest's audit: per suspect its verdict, conf and per-key
distances, and the same for the source's self-check, keyed by names and key ids so a diff
names what moved. Built from the audit report's entry (attribcheck.report.AuditEntry), the
same data `--attrib-json` writes.

Distances are rounded to 4 decimals: 200 times finer than the default tolerance (0.02), so
rounding never decides a comparison, and coarse enough that a reviewer reads the file.

An early-stopped audit (--attrib-early-stop) is recorded and compared by its verdict only:
its verdict is the full audit's, but its distances are the best of the seeds it asked.
A baseline is recorded from full audits (the update refuses early stopping)."""
from __future__ import annotations

FORMAT = "attribcheck.baseline"
FORMAT_VERSION = 1
DIGITS = 4


def _block(row: dict) -> dict:
    if row.get("instance") is None:
        return {"verdict": "error", "error": (row.get("error") or {}).get("kind", "error")}
    v = row["instance"]
    if v.get("early_stop"):  # the verdict is the full audit's; distances and conf are of the seeds asked
        return {"verdict": v["verdict"], "early_stop": True}
    return {"verdict": v["verdict"], "conf": round(v["conf"], DIGITS), "matches": v["matches"], "k": v["k"],
            "distances": {k["id"]: round(k["distance"], DIGITS) for k in row.get("keys", [])}}


def snapshot(entry: dict) -> dict:
    """The baseline of one audit entry (its manifest's source self-check and every suspect)."""
    ks = entry.get("keyset") or {}
    suspects = {r["name"]: _block(r) for r in entry.get("suspects", []) if r.get("role") != "source"}
    source = next((_block(r) for r in entry.get("suspects", []) if r.get("role") == "source"), None)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "audit": entry["name"],
            "keyset": {"content_hash": ks.get("content_hash"), "strategy": ks.get("strategy"), "k": ks.get("k"),
                       "delta_0": ks.get("delta_0")},
            "source": source, "suspects": suspects}
