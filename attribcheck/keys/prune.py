"""Repair a key set selected before keys had to be independent: drop each key that repeats an
earlier key's caption or lies within delta_0 / 2 of its image (keys are stored best margin
first, so the weaker of each pair goes), and refit its discriminator on the shadows' stored
profiles without those keys' columns (no model runs). The content hash is recomputed; pins
on the key set must be renewed (`attribcheck pin`)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from attribcheck.keys.keyset import KeySet
from attribcheck.keys.select import independent
from attribcheck.metrics.distance import get_distance


def prune(folder: str | Path) -> list[str]:
    """The ids of the keys dropped from the key set in `folder` (rewritten in place)."""
    folder = Path(folder)
    ks = KeySet.load(folder, independence=False)  # the hash is still verified
    kept = independent(ks.keys, get_distance(ks.distance), ks.delta_0, {})
    kept_ids = {k.id for k in kept}  # ids are unique in a key set (validate)
    dropped = [k.id for k in ks.keys if k.id not in kept_ids]
    if not dropped:
        return []
    new = replace(ks, keys=kept, selection={**ks.selection, "pruned_not_independent": dropped})
    disc = folder / "discriminator.json"
    refit = None
    if disc.is_file():
        from attribcheck.statistical import discriminator_file
        from attribcheck.statistical.discriminator import ShadowDiscriminator

        ShadowDiscriminator.load(disc, keyset_hash=ks.content_hash())  # only a genuine one is refitted
        raw = discriminator_file.read(disc)
        columns = [i for i, k in enumerate(ks.keys) if k.id in kept_ids]
        refit = (np.asarray(raw.X, dtype=np.float64)[:, columns], np.asarray(raw.y),
                 list(raw.metadata["shadows"]))
    for stale in (folder / "images").glob("*.png"):  # save() writes images/0000.png.. for the kept keys
        stale.unlink()
    new.save(folder)
    if refit is not None:
        from attribcheck.statistical.fit import fit_profiles

        fit_profiles(new, *refit, path=disc)
    return dropped
