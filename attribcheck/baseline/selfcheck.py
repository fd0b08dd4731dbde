"""The source's self-check against its baseline, for the owner's new checkpoint: which keys
the new checkpoint no longer reproduces, and whether the key set still holds.

A key set is the source's memorized samples; a new checkpoint (further training, a merge, a
new base) forgets some of them. Keys it no longer reproduces cannot be inherited from it by
a future infringer, and a key set with few keys left has little power (with K keys the
smallest p-value is p0^K). Below RESELECT (default: 80% of the keys still reproduced; the
source reproduces 95-100% of its keys when they are selected) the advice is to re-select.
"""
from __future__ import annotations

RESELECT = 0.8


def lost_keys(old: dict | None, new: dict | None, delta_0: float) -> list[str]:
    """Keys the baseline's source reproduced (distance < delta_0) that the current one does not."""
    if not old or not new or "distances" not in old or "distances" not in new:
        return []
    return sorted(k for k, d in old["distances"].items()
                  if d < delta_0 and not new["distances"].get(k, float("inf")) < delta_0)


def advice(old: dict | None, new: dict | None, delta_0: float, reselect: float = RESELECT) -> str:
    """One paragraph on the source's state, or "" when nothing changed."""
    if not new or "distances" not in new:
        return ""
    lost = lost_keys(old, new, delta_0)
    k = len(new["distances"])
    kept = sum(d < delta_0 for d in new["distances"].values())
    share = kept / k if k else 0.0
    text = []
    if lost:
        text.append(f"source self-check: the checkpoint no longer reproduces {len(lost)} of {k} keys "
                    f"({', '.join(lost)}).")
    if share < reselect:
        text.append(f"It reproduces {kept} of {k} keys ({share:.0%} < {reselect:.0%}): re-select the key set "
                    f"from this checkpoint (attribcheck keys select ...), then re-record the baseline.")
    elif lost:
        text.append(f"It still reproduces {kept} of {k} keys ({share:.0%} >= {reselect:.0%}): the key set holds.")
    return " ".join(text)
