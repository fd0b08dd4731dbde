"""`python -m attribcheck.bench null`: the instance-level null checked on many innocent models.

Questions (issue 19, items 3-4): how often does the audit attribute an innocent model at
alpha (with a Clopper-Pearson interval)? Are its p-values uniform or conservative over
innocents? Do innocents' match counts spread more than the binomial allows (a model-level
random effect), and do keys differ in how often innocents reproduce them? Does a per-key
null, fitted on innocents, separate infringers from innocents better at low FPR than one
delta_0 for all keys?

The analysis functions take distance matrices (models x keys) and are tested on synthetic
profiles; `run` gathers the profiles: the cheap innocents (lab/shadows/innocents.py), the
full-recipe innocents (the key set's discriminator's innocent shadows, the world's innocents
and its calibration reference) and the infringers (the world's eight and the discriminator's
infringing shadows).
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from scipy import special

from attribcheck.audit.score import p0_upper, p_value, rate_upper

FPR = 0.01  # the field's operating point (LiRA); 0.1% needs 1,000 innocents
OWNER_SIZES = (1, 5, 13)  # innocent models an owner might have (13: the partial world's suite)
SIMULATIONS = 20000  # Monte Carlo draws for the dispersion tests
PER_KEY_QUANTILE = 0.05  # a per-key threshold: the distance 5% of innocents come closer than


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval on a rate seen as x of n."""
    a = 1 - level
    lo = 0.0 if x == 0 else float(special.betaincinv(x, n - x + 1, a / 2))
    hi = 1.0 if x == n else float(special.betaincinv(x + 1, n - x, 1 - a / 2))
    return lo, hi


def rate(x: int, n: int) -> dict:
    """x of n, its two-sided 95% interval and its one-sided 95% upper bound (what "at most r
    with 95% confidence" claims: 0 of 300 gives 0.0099, the interval's top 0.0122)."""
    lo, hi = clopper_pearson(x, n)
    return {"count": int(x), "of": int(n), "rate": x / n if n else None, "ci95": [lo, hi],
            "upper95": rate_upper(x, n) if n else None}


def counts(D: np.ndarray, delta_0: float) -> np.ndarray:
    """Matches per model (rows) at delta_0."""
    return (np.asarray(D) < delta_0).sum(axis=1)


def owner_p_values(m: np.ndarray, k: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    """Each innocent's p-value against a p0 the audit would bound from `size` *other* innocents
    (drawn at random); size None: the point estimate from all the others (no bound), floored at
    half a hit so that no p-value is 0: a check of the binomial model itself, not of the bound."""
    n, out = len(m), np.empty(len(m))
    for i in range(n):
        others = np.delete(m, i)
        if size is None:
            p0 = max(others.sum(), 0.5) / (len(others) * k)
        else:
            pick = others[rng.choice(len(others), min(size, len(others)), replace=False)]
            p0 = p0_upper(int(pick.sum()), len(pick) * k, k)
        out[i] = p_value(int(m[i]), k, p0)
    return out


def calibration(p: np.ndarray, levels=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5)) -> dict:
    """P(p <= u) over innocents at each u: uniform gives u, conservative less; `excess` is the
    largest ECDF(u) - u over the observed p-values (> 0: anti-conservative somewhere)."""
    p = np.sort(np.asarray(p))
    ecdf = np.arange(1, len(p) + 1) / len(p)
    return {"share_at_most": {str(u): float(np.mean(p <= u)) for u in levels},
            "excess": float(np.max(ecdf - p)) if len(p) else 0.0}


def dispersion(x: np.ndarray, trials: int, rng: np.random.Generator) -> dict:
    """Over-dispersion of counts x (each of `trials`) against one binomial rate: the variance
    ratio and a Monte Carlo p-value for the Pearson statistic (small rates make chi-square
    approximations poor). For models' match counts, > 1 means some innocents reproduce many
    more keys than a binomial allows; for keys' hit counts, that keys differ in difficulty."""
    x = np.asarray(x, dtype=np.float64)
    p = x.mean() / trials
    if p <= 0 or p >= 1:
        return {"rate": float(p), "ratio": None, "p_value": None, "note": "no spread to test"}
    def stat(v):
        return ((v - v.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    binom_var = trials * p * (1 - p)
    sims = stat(rng.binomial(trials, p, size=(SIMULATIONS, len(x))).astype(np.float64))
    s = stat(x)
    return {"rate": float(p), "variance": float(x.var(ddof=1)), "binomial_variance": float(binom_var),
            "ratio": float(x.var(ddof=1) / binom_var), "p_value": float((1 + np.sum(sims >= s)) / (1 + SIMULATIONS)),
            "p_value_under": float((1 + np.sum(sims <= s)) / (1 + SIMULATIONS))}


def beta_binomial_rho(x: np.ndarray, trials: int) -> float:
    """Method-of-moments intra-model correlation (0: binomial)."""
    x = np.asarray(x, dtype=np.float64)
    p = x.mean() / trials
    if not 0 < p < 1 or trials < 2:
        return 0.0
    phi = x.var(ddof=1) / (trials * p * (1 - p))
    return float(max(0.0, (phi - 1) / (trials - 1)))


def tpr_at_fpr(neg: np.ndarray, pos: np.ndarray, fpr: float = FPR) -> dict:
    """TPR at the strictest threshold letting at most floor(fpr x n) negatives through (higher
    score = more infringing); `resolved` is whether n >= 1/fpr, else it is TPR at 0 false
    positives and `lowest_fpr` says what the negatives resolve."""
    neg, pos = np.sort(np.asarray(neg, dtype=np.float64))[::-1], np.asarray(pos, dtype=np.float64)
    allowed = int(np.floor(fpr * len(neg) + 1e-9))
    cut = neg[allowed] if allowed < len(neg) else -np.inf
    return {"tpr": float(np.mean(pos > cut)), "fpr": float(np.mean(neg > cut)), "threshold": float(cut),
            "negatives": len(neg), "positives": len(pos), "resolved": len(neg) >= round(1 / fpr),
            "lowest_fpr": 1 / len(neg)}


def auc(neg: np.ndarray, pos: np.ndarray) -> float:
    neg, pos = np.asarray(neg, dtype=np.float64), np.asarray(pos, dtype=np.float64)
    return float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])))


# Scores: higher = more infringing. Each per-key one is fitted on innocents' distances only.
def score_global(fit: np.ndarray, D: np.ndarray, delta_0: float) -> np.ndarray:
    return counts(D, delta_0).astype(np.float64)


def score_key_quantile(fit: np.ndarray, D: np.ndarray, delta_0: float) -> np.ndarray:
    """Keys on which the model comes closer than PER_KEY_QUANTILE of the innocents did."""
    return (np.asarray(D) < np.quantile(fit, PER_KEY_QUANTILE, axis=0)).sum(axis=1).astype(np.float64)


def score_key_z(fit: np.ndarray, D: np.ndarray, delta_0: float) -> np.ndarray:
    """LiRA-style per-key calibration (the offline, innocent-only variant): each distance as a
    z-score against the innocents' on that key, averaged over keys."""
    mu, sd = fit.mean(axis=0), np.maximum(fit.std(axis=0, ddof=1), 1e-6)
    return ((mu - np.asarray(D)) / sd).mean(axis=1)


def score_mean_distance(fit: np.ndarray, D: np.ndarray, delta_0: float) -> np.ndarray:
    """The control: one continuous score, no per-key fit (is a gain per-key, or only continuous?)."""
    return -np.asarray(D).mean(axis=1)


SCORES = {"global delta_0 (matches)": score_global, "per-key threshold (5% innocent quantile)": score_key_quantile,
          "per-key z (LiRA-style)": score_key_z, "mean distance (global, continuous)": score_mean_distance}


def per_key_study(innocents: np.ndarray, infringers: np.ndarray, delta_0: float, fpr: float = FPR,
                  others: dict[str, np.ndarray] | None = None) -> dict:
    """Each score's TPR at `fpr` and AUC, innocents scored leave-one-out (fit on the rest),
    infringers with the fit on every innocent; `others` (e.g. the full-recipe innocents) are
    scored with that fit too, and their false positives at the innocents' threshold counted."""
    out = {}
    n = len(innocents)
    for name, f in SCORES.items():
        neg = np.array([f(np.delete(innocents, i, axis=0), innocents[i:i + 1], delta_0)[0] for i in range(n)])
        pos = f(innocents, infringers, delta_0)
        row = {**tpr_at_fpr(neg, pos, fpr), "auc": auc(neg, pos)}
        for label, D in (others or {}).items():
            row[f"{label}_above_threshold"] = int(np.sum(f(innocents, D, delta_0) > row["threshold"]))
        out[name] = row
    return out


def analyse(cheap: np.ndarray, full: np.ndarray, infringers: np.ndarray, delta_0: float, suite_p0: float,
            alpha: float = 0.01, seed: int = 0) -> dict:
    """Everything the bench reports, from distance matrices (models x keys)."""
    rng = np.random.default_rng(seed)
    k = cheap.shape[1]
    m_cheap, m_full, m_inf = counts(cheap, delta_0), counts(full, delta_0), counts(infringers, delta_0)
    fa = {"suite p0": rate(int(np.sum([p_value(int(m), k, suite_p0) < alpha for m in m_cheap])), len(m_cheap))}
    pv = {"suite p0": np.array([p_value(int(m), k, suite_p0) for m in m_cheap])}
    for r in OWNER_SIZES:
        pv[f"p0 bound from {r} other innocent(s)"] = p = owner_p_values(m_cheap, k, r, rng)
        fa[f"p0 bound from {r} other innocent(s)"] = rate(int(np.sum(p < alpha)), len(p))
    pv["p0 point estimate (leave one out)"] = p = owner_p_values(m_cheap, k, None, rng)
    fa["p0 point estimate (leave one out)"] = rate(int(np.sum(p < alpha)), len(p))
    fa["full-recipe innocents, suite p0"] = rate(int(np.sum([p_value(int(m), k, suite_p0) < alpha for m in m_full])),
                                                 len(m_full))
    verdict_tpr = rate(int(np.sum([p_value(int(m), k, suite_p0) < alpha for m in m_inf])), len(m_inf))
    hist = {name: {int(v): int(c) for v, c in zip(*np.unique(m, return_counts=True))}
            for name, m in (("cheap", m_cheap), ("full", m_full), ("infringers", m_inf))}
    return {
        "k": k, "delta_0": delta_0, "alpha": alpha, "suite_p0": suite_p0,
        "models": {"cheap_innocents": len(cheap), "full_innocents": len(full), "infringers": len(infringers)},
        "match_counts": hist,
        "innocent_rate": {"cheap": rate(int(m_cheap.sum()), len(m_cheap) * k),
                          "full": rate(int(m_full.sum()), len(m_full) * k)},
        "mean_distance": {"cheap": float(cheap.mean()), "full": float(full.mean()),
                          "per_key_correlation": float(np.corrcoef(cheap.mean(0), full.mean(0))[0, 1])},
        # which keys innocents reproduce (difficulty per key) and how often infringers do
        "hits_per_key": {"cheap": counts(cheap.T, delta_0).tolist(), "full": counts(full.T, delta_0).tolist(),
                         "infringers": counts(infringers.T, delta_0).tolist()},
        "false_attribution": fa,
        "attributed_infringers_suite_p0": verdict_tpr,
        "calibration": {name: calibration(p) for name, p in pv.items()},
        "dispersion": {"models (cheap)": dispersion(m_cheap, k, rng), "models (full)": dispersion(m_full, k, rng),
                       "keys (cheap: hits per key over models)": dispersion(counts(cheap.T, delta_0), len(cheap), rng),
                       "keys (full: hits per key over models)": dispersion(counts(full.T, delta_0), len(full), rng),
                       "beta_binomial_rho (cheap)": beta_binomial_rho(m_cheap, k)},
        "per_key": {"cheap innocents (leave one out)": per_key_study(cheap, infringers, delta_0,
                                                                    others={"full_innocents": full}),
                    "full-recipe innocents (leave one out)": per_key_study(full, infringers, delta_0)},
        "_p_values": {name: p.tolist() for name, p in pv.items()},
    }


def figure(results: dict, path: str | Path) -> Path:
    """QQ plot of innocents' p-values against the uniform (log scale), and match counts
    against the binomial at the innocents' own rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attribcheck.outputs import write_atomic

    fig, (qq, hist) = plt.subplots(1, 2, figsize=(9, 4))
    for name, p in results["_p_values"].items():
        p = np.sort(np.asarray(p))
        qq.step(np.arange(1, len(p) + 1) / (len(p) + 1), p, where="post", label=name)
    qq.plot([1e-3, 1], [1e-3, 1], ":", color="grey", label="uniform")
    qq.set(xscale="log", yscale="log", xlim=(5e-3, 1), ylim=(1e-4, 1.05), xlabel="uniform quantile",
           ylabel="innocents' p-value (sorted)", title=f"{results['models']['cheap_innocents']} innocents: p-values")
    qq.legend(fontsize=7)
    k = results["k"]
    top = max(int(v) for group in ("cheap", "full") for v in results["match_counts"][group]) + 2
    xs = np.arange(0, top + 1)
    for shift, (group, color) in zip((-0.2, 0.2), (("cheap", "tab:blue"), ("full", "tab:orange"))):
        c, n = results["match_counts"][group], results["models"][f"{group}_innocents"]
        hist.bar(xs + shift, [c.get(int(x), 0) / n for x in xs], width=0.4, color=color, alpha=0.6,
                 label=f"{group} innocents ({n})")
        p = results["innocent_rate"][group]["rate"]  # the binomial at the group's own rate
        if 0 < p < 1:
            pmf = np.exp(special.gammaln(k + 1) - special.gammaln(xs + 1) - special.gammaln(k - xs + 1)
                         + xs * np.log(p) + (k - xs) * np.log1p(-p))
            hist.plot(xs + shift, pmf, "o-", color=color, ms=3, label=f"binomial, rate {p:.3f}")
    hist.set(xlabel=f"keys reproduced (of {k})", ylabel="share of models", title="match counts vs binomial")
    hist.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_atomic(path, buf.getvalue(), "figure")


def world_profiles(layout, dataset: str, keyset, names: list[str], cache=None) -> dict[str, np.ndarray]:
    """The world's models' distances on the keys, through the generation cache."""
    from attribcheck.audit.auditor import Auditor

    auditor = Auditor(keyset)
    return {n: np.asarray(auditor.measure(layout.open(dataset, n, keyset.protocol, cache)), dtype=np.float64)
            for n in names}


def run(args) -> int:
    from attribcheck.audit.auditor import Auditor, calibration_distances
    from attribcheck.cache import GenerationCache
    from attribcheck.keys.keyset import KeySet
    from attribcheck.lab.bench.instance import innocents as world_innocents
    from attribcheck.lab.shadows.build import ShadowBuilder
    from attribcheck.lab.shadows.innocents import InnocentConfig, build_innocents
    from attribcheck.lab.world.config import WorldConfig
    from attribcheck.lab.world.layout import WorldLayout, infringer_name, is_done
    from attribcheck.statistical import discriminator_file
    from attribcheck.statistical.fit import innocent_profiles, model_profile

    t0 = time.perf_counter()
    layout = WorldLayout(Path(args.world))
    wcfg = WorldConfig.load(layout.config)
    dataset = wcfg.datasets[0]
    keys = layout.keys(dataset, args.strategy)
    keyset = KeySet.load(keys)
    cfg = InnocentConfig(**{k: v for k, v in (("count", args.count), ("steps", args.steps)) if v is not None})
    if not args.no_build:
        build_innocents(layout.root, keys, cfg, dataset, args.shadow_cache, workers=args.workers)
    folders = [f for f, _ in ShadowBuilder(layout.root, args.shadow_cache, cfg).shadows(dataset) if is_done(f)]
    cheap = np.stack([model_profile(keyset, f) for f in folders])
    # the full-recipe innocents and infringers: the discriminator's shadows, the world's models
    disc = keys / "discriminator.json"
    data = discriminator_file.read(disc)
    shadow_inn = innocent_profiles(disc, keyset)
    shadow_inf = [np.asarray(x, dtype=np.float64) for x, y in zip(data.X, data.y) if y == 1]
    cache = GenerationCache(args.cache_dir)
    world_inf = world_profiles(layout, dataset, keyset, [infringer_name(r, s) for r in wcfg.rhos
                                                          for s in wcfg.suspect_seeds], cache)
    world_inn = world_profiles(layout, dataset, keyset, world_innocents(wcfg), cache)
    full = np.stack(list(shadow_inn.values()) + list(world_inn.values()) + list(calibration_distances(keyset).values()))
    infringers = np.stack(shadow_inf + list(world_inf.values()))
    suite_p0 = Auditor(keyset, alpha=args.alpha, innocents=shadow_inn).p0  # what `pytest suites/` uses
    results = analyse(cheap, full, infringers, keyset.delta_0, suite_p0, args.alpha)
    results["recipe"] = {"cheap_innocents": cfg.to_dict(), "suspects": {"steps": wcfg.suspect_steps,
                         "learning_rate": wcfg.suspect_lr, "pairs": wcfg.suspect_size},
                         "difference": "fewer steps only: base fine-tuned on a seeded draw of real pairs, "
                                       "never the source's outputs"}
    results["keys"] = {"folder": str(keys), "strategy": keyset.strategy, "hash": keyset.content_hash()}
    results["full_innocents"] = list(shadow_inn) + list(world_inn) + list(calibration_distances(keyset))
    results["infringers"] = {"world": {n: int(np.sum(d < keyset.delta_0)) for n, d in world_inf.items()},
                             "shadows": len(shadow_inf)}
    results["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.figure:
        figure(results, args.figure)
    p_values = results.pop("_p_values")
    results["p_values_suite_p0"] = p_values["suite p0"]
    print(summary(results))
    if args.json:
        from attribcheck.outputs import write_atomic

        write_atomic(args.json, json.dumps(results, indent=1), "bench json")
    return 0


def summary(r: dict) -> str:
    """The figures for docs/results.md, as Markdown."""
    lines = [f"{r['models']['cheap_innocents']} cheap innocents, {r['models']['full_innocents']} full-recipe innocents, "
             f"{r['models']['infringers']} infringers; K = {r['k']}, delta_0 = {r['delta_0']:.4f}, "
             f"alpha = {r['alpha']}, suite p0 = {r['suite_p0']:.3f}", "",
             "| p0 | innocents attributed | rate (95% CI) | one-sided 95% bound | P(p <= 0.01) | P(p <= 0.05) |",
             "|---|---|---|---|---|---|"]
    for name, fa in r["false_attribution"].items():
        cal = r["calibration"].get(name, {}).get("share_at_most", {})
        lines.append(f"| {name} | {fa['count']}/{fa['of']} | {fa['rate']:.3f} ({fa['ci95'][0]:.3f}-{fa['ci95'][1]:.3f})"
                     f" | {fa['upper95']:.4f} | {cal.get('0.01', float('nan')):.3f} | {cal.get('0.05', float('nan')):.3f} |")
    d = r["dispersion"]
    lines += ["", "Per-key innocent rate: cheap {:.4f} (CI {:.4f}-{:.4f}), full {:.4f} (CI {:.4f}-{:.4f})".format(
        r["innocent_rate"]["cheap"]["rate"], *r["innocent_rate"]["cheap"]["ci95"],
        r["innocent_rate"]["full"]["rate"], *r["innocent_rate"]["full"]["ci95"]),
        f"Match counts: {r['match_counts']}"]
    for name, v in d.items():
        lines.append(f"Dispersion, {name}: {v}")
    lines += ["", "| innocents | score | TPR at 1% FPR | FPR reached | AUC | lowest FPR resolved |", "|---|---|---|---|---|---|"]
    for group, rows in r["per_key"].items():
        for name, v in rows.items():
            extra = f" (full innocents above: {v['full_innocents_above_threshold']})" if "full_innocents_above_threshold" in v else ""
            lines.append(f"| {group} | {name} | {v['tpr']:.3f}{extra} | {v['fpr']:.3f} | {v['auc']:.3f} | {v['lowest_fpr']:.3f} |")
    return "\n".join(lines)
