"""How much a world's models memorize, measured: the partial world's numbers.

    python -m attribcheck.lab.world.memorization --world fixtures/world-partial --dataset emoji-web

For the source: the share of its fine-tuning pairs it reproduces (RMS < delta_0 to the pair's
own image, with the pair's caption), with the best of the query seeds and with one seed,
split by duplicated and singleton images and by how distinctive an image is. For every other
model: the same on the pairs the source memorized (what infringers inherit, what innocents
reproduce anyway), and the distribution of those distances over the paper's Table 2 bins.
Writes `memorization.json` beside the dataset's splits.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from attribcheck.lab.datasets.webcaptions import original_id
from attribcheck.statistical.features import DEFAULT_BINS

BINS = (*DEFAULT_BINS[:-1], np.inf)  # the paper's Table 2 bins, the last one open-ended


def reconstruction(generator, dataset, seeds) -> np.ndarray:
    """(len(dataset), len(seeds)) RMS distances from each pair's generations to its image."""
    from attribcheck.metrics.distance import rms_distance
    from attribcheck.models.generator import generate_grid

    grid = generate_grid(generator, list(dataset.captions), list(seeds))
    return np.array([[rms_distance(grid[i, j], s.image) for j in range(len(seeds))]
                     for i, s in enumerate(dataset)])


def share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def bins(r: np.ndarray) -> list[float]:
    """Share of distances in each Table 2 bin: <0.1, [0.1,0.15), [0.15,0.2), [0.2,0.25), >=0.25."""
    counts, _ = np.histogram(r, bins=BINS)
    return [float(c) / max(len(r), 1) for c in counts]


def source_summary(r: np.ndarray, ids: list[str], copies: dict[str, int], distinct: np.ndarray | None,
                   delta: float, n_query: int | None = None) -> dict:
    """Shares of pairs reproduced, overall and by group; r is (pairs, seeds), its first
    `n_query` columns the query seeds ("best of seeds" is over those), the rest further
    seeds measured one by one (the seed an infringer's images were generated with)."""
    n_query = n_query or r.shape[1]
    best, one = r[:, :n_query].min(1), r[:, 0]
    dup = np.array([copies.get(original_id(i), 1) > 1 for i in ids])
    out = {}
    for group, m in (("all", np.ones(len(ids), bool)), ("duplicated", dup), ("singleton", ~dup)):
        out[group] = {"pairs": int(m.sum()), "best_of_seeds": share(best[m] < delta),
                      "one_seed": share(one[m] < delta), "bins_best": bins(best[m]),
                      # memorization that holds for one seed only is not what an infringer collects
                      "per_seed": [share(r[m, j] < delta) for j in range(r.shape[1])]}
    # per image (a duplicated image counts once: reproduced with any of its captions)
    per_image: dict[str, bool] = {}
    for i, b in zip(ids, best):
        per_image[original_id(i)] = per_image.get(original_id(i), False) or bool(b < delta)
    out["images"] = {"images": len(per_image), "best_of_seeds": share(np.array(list(per_image.values())))}
    if distinct is not None:  # singletons by tercile of distinctiveness (distance to nearest pre-training image)
        s = np.where(~dup)[0]
        edges = np.quantile(distinct[s], [1 / 3, 2 / 3])
        tier = np.searchsorted(edges, distinct[s])
        out["singleton_by_distinctiveness"] = {
            name: {"pairs": int((tier == t).sum()), "best_of_seeds": share(best[s][tier == t] < delta),
                   "nn_distance": [float(distinct[s][tier == t].min()), float(distinct[s][tier == t].max())]}
            for t, name in enumerate(("common", "middle", "distinctive"))}
    return out


def nearest_distance(images: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Each image's RMS distance to its nearest neighbour in `pool`."""
    a = images.reshape(len(images), -1).astype(np.float64)
    b = pool.reshape(len(pool), -1).astype(np.float64)
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.maximum(d2, 0).min(1) / a.shape[1])


GENERATION_SEEDS = (50_000,)  # the first seed the world's source generations use (build.py)


def measure(world: str | Path, dataset: str, models: list[str] | None = None, seeds=(0, 1, 2, 3),
            previous: dict | None = None, all_pairs: bool = False, cache=None) -> dict:
    """The report; `previous` (an earlier report of the same world) reuses its source
    measurement and keeps its other models' entries. `all_pairs` also measures each model
    on every pair of D_S (the candidates' distances that thresholds are calibrated from).
    `cache`: a GenerationCache shared with key selection, which asks the same questions."""
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.config import WorldConfig
    from attribcheck.lab.world.layout import WorldLayout, is_done

    layout = WorldLayout(Path(world))
    cfg = WorldConfig.load(layout.config)
    builder = WorldBuilder(world, cfg, cache=cache)
    _, splits = builder.data(dataset)
    d_s = splits["source"]
    copies_path = layout.dataset(dataset) / "source_set.json"
    copies = json.loads(copies_path.read_text())["copies"] if copies_path.exists() else {}
    distinct = nearest_distance(d_s.images, splits["pretrain"].images)
    all_seeds = list(seeds) + list(GENERATION_SEEDS)
    report = {"delta_0": cfg.delta_0, "seeds": list(seeds), "per_seed": all_seeds, "models": {}}
    if previous and previous.get("per_seed") == all_seeds and "r" in previous.get("source", {}):
        r_src = np.array(previous["source"]["r"])
        report["models"] = dict(previous.get("models", {}))
    else:
        r_src = reconstruction(builder.generator(dataset, "source"), d_s, all_seeds)
    report["source"] = source_summary(r_src, d_s.ids, copies, distinct, cfg.delta_0, n_query=len(seeds))
    report["source"]["r"] = r_src.round(5).tolist()
    report["source"]["ids"] = d_s.ids
    memorized = np.where(r_src[:, :len(seeds)].min(1) < cfg.delta_0)[0]
    report["source"]["memorized_ids"] = [d_s.ids[i] for i in memorized]
    keys = d_s.subset(memorized)
    names = models or sorted(p.name for p in (layout.dataset(dataset) / "models").iterdir()
                             if is_done(p) and p.name != "source")
    for name in names:
        gen = builder.generator(dataset, name)
        if all_pairs:
            r_all = reconstruction(gen, d_s, seeds).min(1)
            r = r_all[memorized]
        else:
            r_all, r = None, (reconstruction(gen, keys, seeds).min(1) if len(keys) else np.zeros(0))
        report["models"][name] = {"reproduces": share(r < cfg.delta_0), "bins": bins(r),
                                  "mean": float(r.mean()) if r.size else None,
                                  "r_memorized": r.round(5).tolist()}
        if r_all is not None:
            report["models"][name]["r_all_pairs"] = r_all.round(5).tolist()
            report["models"][name]["reproduces_all_pairs"] = share(r_all < cfg.delta_0)
        print(f"{name:24s} reproduces {report['models'][name]['reproduces']:.3f} of the source's "
              f"{len(keys)} memorized pairs; bins {np.round(bins(r), 3).tolist()}", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="fixtures/world-partial")
    ap.add_argument("--dataset", default="emoji-web")
    ap.add_argument("--model", action="append", help="measure only these models besides the source")
    ap.add_argument("--all-pairs", action="store_true", help="also measure the models on every pair of D_S")
    ap.add_argument("--fresh", action="store_true", help="measure the source again; drop earlier entries")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", help="generation cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    ap.add_argument("--no-cache", action="store_true", help="generate every image afresh")
    args = ap.parse_args(argv)
    from attribcheck.cache import GenerationCache

    torch.set_num_threads(args.threads)
    out = Path(args.world) / args.dataset / "memorization.json"
    previous = None if args.fresh or not out.exists() else json.loads(out.read_text())
    report = measure(args.world, args.dataset, args.model, previous=previous, all_pairs=args.all_pairs,
                     cache=None if args.no_cache else GenerationCache(args.cache_dir))
    src = report["source"]
    print(json.dumps({k: v for k, v in src.items() if k not in ("memorized_ids", "r", "ids")}, indent=1))
    out.write_text(json.dumps(report, indent=1))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
