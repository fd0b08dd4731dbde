"""`attribcheck shadows build`: shadow models in a cache folder outside git, resumable.

The cache is keyed by a fingerprint of the world's training recipe (key-selection fields
aside) and the shadow recipe, so a changed world never reuses stale shadows. Each finished
model gets a `.done` marker. The same loop builds Baseline 1's watermark infringers (trained
on stamped source images).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from attribcheck.lab.shadows.config import ShadowConfig
from attribcheck.lab.world.config import WorldConfig
from attribcheck.lab.world.layout import WorldLayout, is_done, mark_done, rho_tag


def default_cache() -> Path:
    """The one attribcheck cache folder (attribcheck.cache.default_root); shadows live under it."""
    from attribcheck.cache import default_root

    return default_root()


def fingerprint(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
    return h.hexdigest()[:12]


class ShadowBuilder:
    def __init__(self, world_root: str | Path, cache: str | Path | None = None, cfg: ShadowConfig | None = None,
                 watermark=None):
        from attribcheck.lab.watermark.dct import WatermarkConfig
        from attribcheck.lab.world.build import WorldBuilder

        layout = WorldLayout(Path(world_root))
        self.world = WorldBuilder(world_root, WorldConfig.load(layout.config))
        self.cfg = cfg or ShadowConfig()
        self.watermark = watermark or WatermarkConfig()
        cache = Path(cache or default_cache())
        world = self.world.cfg.training_identity()
        self.root = cache / "shadows" / fingerprint(world, self.cfg.identity())
        self.watermark_root = cache / "watermark" / fingerprint(world, self.cfg.identity(), self.watermark.to_json())

    def folder(self, dataset: str, name: str) -> Path:
        return self.root / dataset / name

    def shadows(self, dataset: str) -> list[tuple[Path, int]]:
        """(folder, label) of every shadow of a dataset: 1 = infringing, 0 = innocent."""
        return [(self.folder(dataset, n), int(rho > 0)) for n, rho, _ in self.cfg.plan()]

    def watermark_infringer(self, dataset: str, rho: float) -> Path:
        return self.watermark_root / dataset / f"watermark-infringer-rho{rho_tag(rho)}"

    def _generations(self, dataset: str, stamp: bool = False):
        w = self.world
        _, splits = w.data(dataset)
        prompts = w.domain_prompts(splits)
        grid = w.source_generations(dataset, prompts)
        if stamp:  # Baseline 1: the owner stamps every image it hands out
            from attribcheck.lab.watermark.dct import DctWatermark

            mark = DctWatermark(self.watermark, side=w.cfg.side)
            grid = mark.embed_many(grid.reshape(-1, *grid.shape[2:])).reshape(grid.shape)
        return splits["real"], w.generated_pool(splits, grid)

    def shadow_jobs(self, dataset: str):
        from attribcheck.lab.train.mix import mix, overlap_mix

        real, (gens, weights) = self._generations(dataset)
        public = self.world.data(dataset)[1]["public"]
        n = self.cfg.size or self.world.cfg.suspect_size
        for name, rho, offset in self.cfg.plan():
            seed = self.cfg.seed + 100 * (sum(map(ord, dataset)) % 100) + offset
            # overlap innocents are built like the world's overlap innocent
            train = (overlap_mix(public, real, gens, n, self.world.cfg.overlap_share, seed) if "overlap" in name
                     else mix(real, gens, n, rho, seed, weights=weights if rho > 0 else None))
            yield dataset, self.folder(dataset, name), train, seed

    def watermark_jobs(self, dataset: str):
        from attribcheck.lab.train.mix import mix

        real, (gens, weights) = self._generations(dataset, stamp=True)
        n = self.cfg.size or self.world.cfg.suspect_size
        for i, rho in enumerate(self.world.cfg.rhos):
            seed = self.cfg.seed + 50 + 100 * (sum(map(ord, dataset)) % 100) + i
            yield dataset, self.watermark_infringer(dataset, rho), mix(real, gens, n, rho, seed, weights=weights), seed

    def build(self, datasets: list[str] | None = None, watermark: bool = False, workers: int = 1,
              executor=None) -> Path:
        """Shadows (and with `watermark`, the watermark infringers) of each dataset.
        `workers` > 1 trains that many models at once, in processes of one CPU share each;
        `executor` (any concurrent.futures.Executor, e.g. a Dask client's) replaces them."""
        datasets = datasets or self.world.cfg.datasets
        self.root.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.root / "shadow_config.json")
        jobs = [j for d in datasets for j in self.shadow_jobs(d)]
        if watermark:
            self.watermark_root.mkdir(parents=True, exist_ok=True)
            self.watermark.save(self.watermark_root / "watermark_config.json")
            jobs += [j for d in datasets for j in self.watermark_jobs(d)]
        if executor is None and workers > 1:
            from attribcheck.lab.shadows.executors import local_executor

            with local_executor(workers) as pool:
                self._train(jobs, pool, f"{workers} at once")
        else:
            self._train(jobs, executor, "on the executor" if executor else "one at a time")
        return self.root

    def _train(self, jobs, executor=None, how: str = "") -> None:
        from concurrent.futures import as_completed

        from rich.progress import Progress

        w = self.world
        todo = [j for j in jobs if not is_done(j[1])]
        tasks = [(str(w.layout.model(d, "base")), train_set, str(out), w.finetune_config(
            self.cfg.steps or w.cfg.suspect_steps, self.cfg.learning_rate or w.cfg.suspect_lr, seed).to_dict())
            for d, out, train_set, seed in todo]
        with Progress() as bar:
            task = bar.add_task(f"shadow models ({how})", total=len(jobs), completed=len(jobs) - len(todo))
            if executor is None:
                for t in tasks:
                    bar.update(task, description=Path(t[2]).name)
                    _train_one(*t)
                    bar.advance(task)
                return
            for f in as_completed([executor.submit(_train_one, *t) for t in tasks]):
                f.result()  # re-raises a worker's error
                bar.advance(task)


def _train_one(base: str, train_set, out: str, finetune_cfg: dict) -> None:
    """Train one model and mark it done (a top-level function: worker processes run it)."""
    from attribcheck.lab.world.build import train_one

    train_one(base, train_set, out, finetune_cfg)
    mark_done(Path(out))
