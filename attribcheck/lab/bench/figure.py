"""A picture of key images beside what the source and suspects generate for their captions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attribcheck import images
from attribcheck.keys.keyset import KeySet
from attribcheck.models.generator import generate_grid
from attribcheck.lab.world.layout import infringer_name, innocent_name


def key_figure(layout, cfg, out: str | Path, strategy: str = "generation", n_keys: int = 12, scale: int = 4) -> Path:
    """Rows: keys. Columns: key image | source | infringers rho=0.3, 1.0 | innocent | overlap
    innocent; each model's best-of-query-seeds output (as the audit measures it)."""
    from attribcheck.audit.reconstruct import distances_to
    from attribcheck.metrics.distance import get_distance
    from attribcheck.models.diffusers_generator import DiffusersGenerator

    sheets = []
    for dataset in cfg.datasets:
        ks = KeySet.load(layout.keys(dataset, strategy)).head(n_keys)
        if not len(ks):
            continue
        models = ["source", infringer_name(cfg.rhos[0], 0), infringer_name(cfg.rhos[-1], 0),
                  innocent_name(0), innocent_name(0, overlap=True)]
        cols = [np.stack(ks.images)]
        for name in models:
            gen = DiffusersGenerator.from_path(layout.model(dataset, name), ks.protocol, name)
            grid = generate_grid(gen, ks.captions, ks.query_seeds)
            d = distances_to(grid, ks.images, get_distance(ks.distance))
            cols.append(grid[np.arange(len(grid)), d.argmin(axis=1)])
        pad = np.ones((len(ks), ks.images[0].shape[0], 2, 3), np.float32)
        sheet = np.concatenate([np.concatenate([c, pad], axis=2) for c in cols], axis=2)
        sheets.append(np.concatenate(list(sheet), axis=0))
    h = max(s.shape[0] for s in sheets)
    sheets = [np.pad(s, ((0, h - s.shape[0]), (0, 6), (0, 0)), constant_values=1.0) for s in sheets]
    img = np.concatenate(sheets, axis=1)
    img = np.kron(img, np.ones((scale, scale, 1), np.float32))
    images.save(img, out)
    return Path(out)
