"""Many cheap innocent models, to check the instance-level null (`bench null`).

The recipe differs from the world's innocents (and the statistical level's innocent shadows)
in one way only: fewer steps. Each is the base fine-tuned on its own seeded draw of real pairs
of the domain (never on the source's outputs), at the suspects' learning rate and batch, so
models differ by data subset and seed. Measured on the partial world (one thread, two shared
cores): a full 2,500-step fine-tune costs 6-8 minutes; 100 steps leave a model close to the
base (mean distance to the keys 0.40, where full innocents sit at 0.36); from 200-400 steps
the mean is the full innocents' (0.37 at 200, 0.36 at 400). Models are built and measured in
the shadow cache (outside git), resumably: a `.done` marker per model, its distances cached
in its `profiles/` folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from attribcheck.lab.shadows.config import ShadowConfig


@dataclass
class InnocentConfig(ShadowConfig):
    count: int = 100
    per_class: int = 0
    overlap_innocents: int = 0
    steps: int | None = 200  # the cheap part: the suspects train 2,500 steps
    seed: int = 9000  # apart from the world's seeds and the shadows' (7000 + offsets below 1,002)

    def plan(self) -> list[tuple[str, float, int]]:
        return [(f"innocent-{i}", 0.0, i) for i in range(self.count)]

    def identity(self) -> str:
        counts = ("per_class", "overlap_innocents", "count")  # more models never retrain the first
        return json.dumps({k: v for k, v in self.to_dict().items() if k not in counts}, sort_keys=True)


def build_innocents(world: str | Path, keys: str | Path, cfg: InnocentConfig, dataset: str,
                    cache: str | Path | None = None, workers: int = 1, executor=None) -> list[Path]:
    """Train and measure (on the key set at `keys`) every innocent of `cfg`; returns the folders
    of those finished, in plan order. Each job trains then measures, so a run cut short keeps
    every model it finished with its distances."""
    from concurrent.futures import as_completed

    from attribcheck.lab.shadows.build import ShadowBuilder

    sb = ShadowBuilder(world, cache, cfg)
    sb.root.mkdir(parents=True, exist_ok=True)
    cfg.save(sb.root / "shadow_config.json")
    w = sb.world
    base = str(w.layout.model(dataset, "base"))
    tasks = [(base, train, str(out), w.finetune_config(cfg.steps or w.cfg.suspect_steps,
                                                        cfg.learning_rate or w.cfg.suspect_lr, seed).to_dict(), str(keys))
             for _, out, train, seed in sb.shadow_jobs(dataset)]
    if executor is None and workers > 1:
        from attribcheck.lab.shadows.executors import local_executor

        with local_executor(workers) as pool:
            for f in as_completed([pool.submit(_train_and_measure, *t) for t in tasks]):
                f.result()
    elif executor is not None:
        for f in as_completed([executor.submit(_train_and_measure, *t) for t in tasks]):
            f.result()
    else:
        for t in tasks:
            _train_and_measure(*t)
    return [Path(t[2]) for t in tasks]


def _train_and_measure(base: str, train_set, out: str, finetune_cfg: dict, keys: str) -> None:
    """One innocent: trained unless done, then its distances on the keys (cached)."""
    from attribcheck.keys.keyset import KeySet
    from attribcheck.lab.shadows.build import _train_one
    from attribcheck.lab.world.layout import is_done
    from attribcheck.statistical.fit import model_profile

    if not is_done(Path(out)):
        _train_one(base, train_set, out, finetune_cfg)
    model_profile(KeySet.load(keys), out)
