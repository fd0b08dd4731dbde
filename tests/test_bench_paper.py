"""The paper report's arithmetic (Table 1 and 2) and its plots, on synthetic profiles."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from attribcheck.lab.bench.paper import BIN_LABELS, table1, table2, held_out_models
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.models.protocol import QueryProtocol
from attribcheck.lab.world.config import WorldConfig
from tests.folder_world import PRIVATE


def test_table2_counts_every_key_once():
    d = np.array([0.05, 0.1, 0.12, 0.15, 0.19, 0.2, 0.249, 0.25, 0.9])
    t = table2(d)
    assert [t[b] for b in BIN_LABELS] == [1, 2, 2, 2, 2]
    assert t["k"] == 9 and t["best"] == 0.05 and t["mean"] == pytest.approx(d.mean())


def test_test_models_are_never_shadows():
    names = [n for n, _ in held_out_models(WorldConfig())]
    assert len(names) == len(set(names)) and not any(n.startswith("shadow") for n in names)
    assert sum(lab for _, lab in held_out_models(WorldConfig())) == 8


class _Folder:
    def __init__(self, name):
        self.name = name


def test_table1_scores_held_out_models():
    rng = np.random.default_rng(0)
    k = 10
    ks = KeySet([Key(f"k{i}", f"c{i}", np.zeros((4, 4, 3)), 0.0) for i in range(k)], "detection", 0.15,
                {"name": "rms"}, QueryProtocol(), [0], selection=PRIVATE)
    prof = {}
    for i in range(6):  # shadows: infringing ones reproduce some keys
        prof[f"si{i}"] = np.r_[rng.uniform(0.02, 0.1, 5), rng.uniform(0.2, 0.4, k - 5)]
        prof[f"sn{i}"] = rng.uniform(0.18, 0.4, k)
    tests = [(f"ti{i}", 1) for i in range(4)] + [(f"tn{i}", 0) for i in range(4)]
    for n, lab in tests:
        prof[n] = np.r_[rng.uniform(0.02, 0.1, 4), rng.uniform(0.2, 0.4, k - 4)] if lab else rng.uniform(0.18, 0.4, k)
    shadows = [(_Folder(f"si{i}"), 1) for i in range(6)] + [(_Folder(f"sn{i}"), 0) for i in range(6)]
    t = table1(ks, prof, shadows, tests)
    assert set(t["metrics"]) == {"accuracy", "auc", "tpr_at_10_fpr", "tpr_at_1_fpr"}
    y = [lab for _, lab in tests]
    assert t["metrics"]["auc"] == pytest.approx(roc_auc_score(y, [t["p_infringing"][n] for n, _ in tests]))
    assert t["metrics"]["auc"] == 1.0 and t["test"] == {"infringing": 4, "innocent": 4}
    assert t["lowest_fpr"] == 0.25  # 4 innocent test models: one false positive is 25%


def test_report_draws_its_plots(tmp_path):
    from attribcheck.lab.bench.report import markdown, plot_all

    t2 = {"innocent": {**{b: 1 for b in BIN_LABELS}, "mean": 0.2, "best": 0.05, "k": 5},
          "infringing": {**{b: 1 for b in BIN_LABELS}, "mean": 0.1, "best": 0.01, "k": 5},
          "models": {"innocent": "a", "infringing": "b"}}
    fig6 = {s: {"0.3": 0.1, "1.0": 0.5} for s in ("detection", "generation", "watermark", "random")}
    results = {"datasets": {"toy": {"figure6": fig6, "table2": t2, "figure7": {"20": 0.3, "30": 0.4},
                                    "figure7_innocent": {"20": 0.0, "30": 0.05}}}}
    paths = plot_all(results, tmp_path)
    results["datasets"]["toy"]["table1"] = {"accuracy": 1.0, "auc": 1.0}
    results["datasets"]["toy"]["details"] = {"k": {"detection": 30}, "statistical_strategy": "detection", "table1": {
        "shadows": {"infringing": 6}, "test": {"infringing": 8}, "shadow_cv_accuracy": 0.9}}
    results["wall_seconds"] = 1.0
    results["datasets"]["toy"]["details"]["table1"].update(labels={"a": 1, "b": 0}, p_infringing={"a": 0.9, "b": 0.2})
    assert [p.name for p in plot_all(results, tmp_path)][-1] == "roc.png"
    md = markdown(results)
    assert "| Baseline 1 (watermark) | 0.100 | 0.500 |" in md and "| infringers | 0.300 | 0.400 |" in md
    assert [p.name for p in paths] == ["figure6.png", "figure7.png", "table2.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
