"""Instance-level results on the tiny world: the paper's Figure 6 at tiny scale."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from attribcheck.audit.auditor import Auditor
from attribcheck.keys.keyset import KeySet
from attribcheck.lab.world.config import WorldConfig
from attribcheck.lab.world.layout import WorldLayout, infringer_name, innocent_name, rho_tag

STRATEGIES = ("detection", "generation", "random")
DEFAULT_STRATEGY = "generation"


def innocents(cfg: WorldConfig) -> list[str]:
    return [innocent_name(s) for s in cfg.innocent_seeds] + [innocent_name(0, overlap=True)]


def audited(cfg: WorldConfig) -> list[str]:
    """Every model the bench audits: infringers, innocents, and the source's self-check."""
    return [infringer_name(r, s) for r in cfg.rhos for s in cfg.suspect_seeds] + innocents(cfg) + ["source"]


def load_keyset(layout: WorldLayout, dataset: str, strategy: str, k: int) -> KeySet:
    """The world's key set for a strategy, its first k keys; an empty one where selection kept
    too few keys to save (the world build says why)."""
    from attribcheck.models.protocol import QueryProtocol

    folder = layout.keys(dataset, strategy)
    if not (folder / "keyset.json").exists():
        return KeySet([], strategy, 0.15, {"name": "rms"}, QueryProtocol(), [0])
    return KeySet.load(folder).head(k)


def shadow_innocents(shadows, keyset: KeySet) -> dict[str, np.ndarray]:
    """The finished innocent shadows' distances on a key set (cached in each shadow's folder):
    more innocent models to bound p0 with, as a manifest with a discriminator has."""
    from attribcheck.lab.world.layout import is_done
    from attribcheck.statistical.fit import model_profile

    return {f"shadow:{f.name}": model_profile(keyset, f) for f, label in shadows if label == 0 and is_done(f)}


def evaluate_dataset(layout: WorldLayout, cfg: WorldConfig, dataset: str, k: int, alpha: float,
                     cache=None, shadows=None) -> dict:
    """`shadows`: (folder, label) of the dataset's shadows, whose innocents join p0's bound."""
    keysets = {s: load_keyset(layout, dataset, s, k) for s in STRATEGIES}
    protocol = next(ks.protocol for ks in keysets.values() if len(ks))
    auditors = {s: Auditor(ks, alpha=alpha, innocents=shadow_innocents(shadows, ks) if shadows else None)
                for s, ks in keysets.items() if len(ks)}
    names = audited(cfg)
    verdicts: dict[str, dict[str, object]] = {s: {} for s in STRATEGIES}
    for name in names:
        gen = layout.open(dataset, name, protocol, cache)  # a re-run answers from the cache
        for s in STRATEGIES:
            verdicts[s][name] = auditors[s].audit(gen) if s in auditors else None
    per_seed = {s: {rho_tag(r): [verdicts[s][infringer_name(r, seed)].conf if len(keysets[s]) else 0.0
                                 for seed in cfg.suspect_seeds] for r in cfg.rhos} for s in STRATEGIES}
    return {
        "conf": {s: {rho: float(np.mean(v)) for rho, v in row.items()} for s, row in per_seed.items()},
        "conf_std": {s: {rho: float(np.std(v)) for rho, v in row.items()} for s, row in per_seed.items()},
        "innocents": {n: verdicts[DEFAULT_STRATEGY][n].verdict if verdicts[DEFAULT_STRATEGY][n] else "no keys"
                      for n in innocents(cfg)},
        "innocent_conf": {s: {n: verdicts[s][n].conf for n in innocents(cfg)} for s in STRATEGIES if len(keysets[s])},
        "source_conf": {s: verdicts[s]["source"].conf for s in STRATEGIES if len(keysets[s])},
        "k": {s: len(ks) for s, ks in keysets.items()},
        "p0": {s: {"p0": a.p0, "innocent_models": len(a.null_models)} for s, a in auditors.items()},
        "verdicts": {s: {n: v.to_dict(with_distances=False) for n, v in vs.items() if v} for s, vs in verdicts.items()},
    }


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for dataset, r in results["datasets"].items():
        rhos = list(next(iter(r["conf"].values())))
        table = Table(title=f"{dataset}: mean conf of infringers per rho (K per strategy: {r['k']})")
        table.add_column("strategy")
        for rho in rhos:
            table.add_column(f"rho={rho}", justify="right")
        for s, row in r["conf"].items():
            table.add_row(s, *[f"{row[rho]:.3f} ± {r['conf_std'][s][rho]:.3f}" for rho in rhos])
        for s in ("detection", "generation"):  # each strategy against Baseline 2, as the paper reports
            table.add_row(f"{s} - random", *[f"{r['conf'][s][rho] - r['conf']['random'][rho]:+.3f}" for rho in rhos])
        console.print(table)
        console.print(f"innocents ({DEFAULT_STRATEGY} keys): {r['innocents']}; innocents' conf: {r['innocent_conf']}")
        console.print(f"source self-check conf: {r['source_conf']}")
        console.print("p0 bound (innocent models it rests on): " + ", ".join(
            f"{s} {v['p0']:.3f} ({v['innocent_models']})" for s, v in r.get("p0", {}).items()))


def worlds(given: list[str] | None) -> list[WorldLayout]:
    """The worlds to evaluate: those given, else every shipped one that is built."""
    paths = given or [p for p in ("fixtures/world", "fixtures/world-partial") if Path(p, "world.json").exists()]
    return [WorldLayout(Path(p)) for p in paths]


def run(args) -> int:
    from attribcheck.cache import GenerationCache

    t0 = time.perf_counter()
    cache = None if args.no_cache else GenerationCache(args.cache_dir)
    results: dict = {"datasets": {}}
    for layout in worlds(args.world):
        cfg = WorldConfig.load(layout.config)
        for d in cfg.datasets:
            missing = [n for n in audited(cfg) if not (layout.model(d, n) / ".done").exists()]
            if missing:  # a world part-built (resumable): say so rather than report a partial mean
                print(f"{layout.root}/{d}: {len(missing)} models not built ({', '.join(missing[:4])}, ...); skipped")
                continue
            shadows = None
            if args.shadows:
                from attribcheck.lab.shadows.build import ShadowBuilder

                shadows = ShadowBuilder(layout.root, args.shadow_cache).shadows(d)
            results["datasets"][d] = evaluate_dataset(layout, cfg, d, args.k, args.alpha, cache, shadows)
    results["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print_table(results)
    print(f"wall time: {results['wall_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.figure:
        from attribcheck.lab.bench.figure import key_figure

        layout = worlds(args.world)[0]
        key_figure(layout, WorldConfig.load(layout.config), args.figure)
    return 0
