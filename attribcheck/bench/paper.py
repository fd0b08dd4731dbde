"""`python -m attribcheck.bench paper --out DIR`: the paper's experiments on the tiny world.

Figure 6 (conf vs rho per strategy and baseline), Table 1 (the shadow discriminator on
suspects that were never shadows), Table 2 (distance distributions), Figure 7 (conf vs K).
Models it needs beyond the shipped world (shadows, watermark infringers) are built into the
shadow cache first; every model's distances are cached too, so a second run only reports.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from attribcheck.audit import score
from attribcheck.keys.keyset import KeySet
from attribcheck.metrics.classification import TABLE1
from attribcheck.statistical.features import DEFAULT_BINS
from attribcheck.world.layout import infringer_name, innocent_name, rho_tag

STRATEGIES = ("detection", "generation", "random")
K_GRID = (20, 30, 50, 100)
BIN_LABELS = ("<0.1", "[0.1,0.15)", "[0.15,0.2)", "[0.2,0.25)", ">=0.25")


def held_out_models(cfg) -> list[tuple[str, int]]:
    """Suspects never used as shadows: the world's infringers (1) and innocent models (0),
    including the owner's two held-out calibration references (the discriminator never saw them)."""
    inf = [(infringer_name(r, s), 1) for r in cfg.rhos for s in cfg.suspect_seeds]
    inn = [innocent_name(s) for s in cfg.innocent_seeds] + [innocent_name(0, overlap=True)]
    return inf + [(n, 0) for n in inn + ["ref-innocent", "ref-calibration"]]


def statistical_strategy(cfg, dataset: str) -> str:
    """The key set Table 1/2 use: the one the dataset's suite audits with, else Strategy 1."""
    return cfg.suite_keys.get(dataset, "detection")


class PaperBench:
    def __init__(self, world: str | Path, cache: str | Path | None = None):
        from attribcheck.shadows.build import ShadowBuilder

        self.builder = ShadowBuilder(world, cache)
        self.layout, self.cfg = self.builder.world.layout, self.builder.world.cfg
        self.store = self.builder.root / "profiles"  # distances of the world's (git-tracked) models

    def profiles(self, dataset: str, keyset: KeySet) -> dict[str, np.ndarray]:
        from attribcheck.statistical.fit import model_profile

        out = {n: model_profile(keyset, self.layout.model(dataset, n), self.store / dataset)
               for n, _ in held_out_models(self.cfg)}
        out.update({f.name: model_profile(keyset, f) for f, _ in self.builder.shadows(dataset)})
        return out

    def mean_conf(self, profiles: dict, keyset: KeySet, k: int) -> dict[str, float]:
        cfg = self.cfg
        return {rho_tag(r): float(np.mean([score.conf(profiles[infringer_name(r, s)][:k], keyset.delta_0)
                                           for s in cfg.suspect_seeds])) for r in cfg.rhos}

    def watermark(self, dataset: str) -> dict:
        """Baseline 1: each watermark infringer queried once per domain prompt."""
        from attribcheck.bench.watermark import watermark_conf

        return watermark_conf(self.builder, dataset, self.cfg.rhos,
                              [self.layout.model(dataset, innocent_name(s)) for s in self.cfg.innocent_seeds])

    def dataset(self, dataset: str) -> dict:
        keysets = {s: KeySet.load(self.layout.keys(dataset, s)) for s in STRATEGIES}
        profiles = {s: self.profiles(dataset, ks) for s, ks in keysets.items() if len(ks)}
        k = self.cfg.k
        fig6 = {s: self.mean_conf(profiles[s], keysets[s], k) for s in profiles}
        wm = self.watermark(dataset)
        fig6["watermark"] = wm["conf"]
        strat = statistical_strategy(self.cfg, dataset)
        ks, prof = keysets[strat], profiles[strat]
        kk = min(k, len(ks))
        head = {n: d[:kk] for n, d in prof.items()}
        shadows = self.builder.shadows(dataset)
        # The paper's protocol: innocent shadows on real data disjoint from D_S. The shipped
        # discriminator also has overlap innocents (part of D_S); reported beside it.
        t1 = table1(ks.head(kk), head, [s for s in shadows if "overlap" not in s[0].name], held_out_models(self.cfg))
        t1_overlap = table1(ks.head(kk), head, shadows, held_out_models(self.cfg))
        infringer, innocent = infringer_name(1.0, self.cfg.suspect_seeds[0]), innocent_name(self.cfg.innocent_seeds[0])
        t2 = {"infringing": table2(prof[infringer][:kk]), "innocent": table2(prof[innocent][:kk]),
              "models": {"infringing": infringer, "innocent": innocent}}
        det = keysets["detection"]
        ks_grid = [kg for kg in K_GRID if kg < len(det)] + [len(det)]
        fig7 = {str(kg): float(np.mean([score.conf(profiles["detection"][n][:kg], det.delta_0)
                                        for n, lab in held_out_models(self.cfg) if lab == 1])) for kg in ks_grid}
        fig7_innocent = {str(kg): float(np.mean([score.conf(profiles["detection"][n][:kg], det.delta_0)
                                                 for n, lab in held_out_models(self.cfg) if lab == 0])) for kg in ks_grid}
        return {"figure6": fig6, "table1": t1["metrics"], "table2": t2, "figure7": fig7,
                "figure7_innocent": fig7_innocent, "table1_with_overlap_shadows": t1_overlap["metrics"],
                "details": {"k": {s: min(k, len(keysets[s])) for s in keysets}, "keys_available":
                            {s: len(keysets[s]) for s in keysets}, "statistical_strategy": strat,
                            "table1": {x: t1[x] for x in t1 if x != "metrics"}, "watermark": wm,
                            "table1_with_overlap_shadows": {x: t1_overlap[x] for x in t1_overlap if x != "metrics"},
                            "figure7_keys": "detection"}}


def table1(keyset: KeySet, profiles: dict, shadows, tests) -> dict:
    """Fit on the shadows' profiles; score the test models; the paper's four metrics."""
    from attribcheck.statistical.fit import fit_profiles

    X = np.stack([profiles[f.name] for f, _ in shadows])
    y = np.array([lab for _, lab in shadows])
    est = fit_profiles(keyset, X, y, [f.name for f, _ in shadows])
    y_test = np.array([lab for _, lab in tests])
    p = est.predict_proba(np.stack([profiles[n] for n, _ in tests]))[:, 1]
    return {"metrics": {name: float(m(y_test, p)) for name, m in TABLE1.items()},
            "p_infringing": {n: float(v) for (n, _), v in zip(tests, p)},
            "labels": {n: int(lab) for n, lab in tests},
            "shadows": {"infringing": int(y.sum()), "innocent": int(len(y) - y.sum())},
            "test": {"infringing": int(y_test.sum()), "innocent": int(len(y_test) - y_test.sum())},
            "shadow_cv_accuracy": est.metadata_["cv_accuracy"]}


def table2(distances) -> dict:
    """Counts of keys per distance bin (the paper's Table 2), with mean and best (smallest)."""
    d = np.asarray(distances)
    edges = np.asarray(DEFAULT_BINS)
    idx = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, len(edges) - 2)
    return {**{lab: int((idx == b).sum()) for b, lab in enumerate(BIN_LABELS)},
            "mean": float(d.mean()), "best": float(d.min()), "k": int(len(d))}


def run(args) -> int:
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = PaperBench(args.world, args.cache)
    bench.builder.build(watermark=True, workers=args.workers)  # resumes: trains only what the cache lacks
    results = {"datasets": {d: bench.dataset(d) for d in bench.cfg.datasets}}
    results["wall_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from attribcheck.bench.report import markdown, plot_all, print_tables

    print_tables(results)
    (out / "results.md").write_text(markdown(results))
    plot_all(results, out)
    print(f"wall time: {results['wall_seconds']} s -> {out / 'results.json'}")
    return 0
