"""The paper report's tables (terminal) and plots (PNG, matplotlib)."""
from __future__ import annotations

from pathlib import Path

STRATEGY_LABELS = {"detection": "Strategy 1 (detection)", "generation": "Strategy 2 (generation)",
                   "watermark": "Baseline 1 (watermark)", "random": "Baseline 2 (random keys)"}


def print_tables(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name, r in results["datasets"].items():
        fig6 = r["figure6"]
        rhos = list(next(iter(fig6.values())))
        t = Table(title=f"{name} - Figure 6: mean conf vs rho (K per strategy: {r['details']['k']})")
        t.add_column("method")
        for rho in rhos:
            t.add_column(f"rho={rho}", justify="right")
        for s, row in fig6.items():
            t.add_row(STRATEGY_LABELS.get(s, s), *[f"{row[rho]:.3f}" for rho in rhos])
        console.print(t)
        d = r["details"]["table1"]
        t = Table(title=f"{name} - Table 1: discriminator ({r['details']['statistical_strategy']} keys; "
                        f"shadows {d['shadows']}, test {d['test']}; lowest FPR resolved "
                        f"{d.get('lowest_fpr', float('nan')):.2f})")
        for col in r["table1"]:
            t.add_column(col, justify="right")
        t.add_row(*[f"{v:.3f}" for v in r["table1"].values()])
        console.print(t)
        t = Table(title=f"{name} - Table 2: keys per distance bin ({r['table2']['models']})")
        t.add_column("suspect")
        cols = [c for c in r["table2"]["infringing"] if c != "k"]
        for c in cols:
            t.add_column(c, justify="right")
        for who in ("innocent", "infringing"):
            row = r["table2"][who]
            t.add_row(who, *[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols])
        console.print(t)
        console.print(f"{name} - Figure 7 (detection keys): infringers' mean conf vs K {r['figure7']}; "
                      f"innocents' {r['figure7_innocent']}")


def plot_all(results: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = results["datasets"]
    paths = []
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], datasets.items()):
        for s, row in r["figure6"].items():
            ax.plot([float(x) for x in row], list(row.values()), marker="o", label=STRATEGY_LABELS.get(s, s))
        ax.set(title=f"{name}: Figure 6", xlabel="rho (share of source generations)", ylabel="mean conf", ylim=(0, 1.05))
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "figure6.png"))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], datasets.items()):
        for key, label in (("figure7", "infringers"), ("figure7_innocent", "innocents")):
            ax.plot([int(k) for k in r[key]], list(r[key].values()), marker="o", label=label)
        ax.set(title=f"{name}: Figure 7 (Strategy 1 keys)", xlabel="K", ylabel="mean conf", ylim=(0, 1.05))
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "figure7.png"))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], datasets.items()):
        bins = [c for c in r["table2"]["innocent"] if c not in ("mean", "best", "k")]
        for i, who in enumerate(("innocent", "infringing")):
            ax.bar([j + 0.4 * i for j in range(len(bins))], [r["table2"][who][b] for b in bins], width=0.4,
                   label=f"{who} ({r['table2']['models'][who]})")
        ax.set_xticks([j + 0.2 for j in range(len(bins))], bins, fontsize=8)
        ax.set(title=f"{name}: Table 2", xlabel="reconstruction distance", ylabel="keys")
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "table2.png"))
    if all("details" in r for r in datasets.values()):
        from attribcheck.metrics.classification import roc_curve

        fig, ax = plt.subplots(figsize=(4.5, 4))
        for name, r in datasets.items():
            t1 = r["details"]["table1"]
            names = list(t1["labels"])
            fpr, tpr, _ = roc_curve([t1["labels"][n] for n in names], [t1["p_infringing"][n] for n in names])
            ax.step(fpr, tpr, where="post", label=f"{name} (AUC {r['table1']['auc']:.2f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(title="Table 1: discriminator ROC (held-out models)", xlabel="FPR", ylabel="TPR")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "roc.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def markdown(results: dict) -> str:
    """The report's tables as Markdown (the README's results section is pasted from it)."""
    lines = []
    for name, r in results["datasets"].items():
        det = r["details"]
        fig6 = r["figure6"]
        rhos = list(next(iter(fig6.values())))
        lines += [f"**{name}: Figure 6**, mean conf vs rho (K: {det['k']})", "",
                  "| method | " + " | ".join(f"rho = {x}" for x in rhos) + " |",
                  "|---|" + "---|" * len(rhos)]
        lines += [f"| {STRATEGY_LABELS.get(s, s)} | " + " | ".join(f"{row[x]:.3f}" for x in rhos) + " |"
                  for s, row in fig6.items()]
        t1 = det["table1"]
        lines += ["", f"**{name}: Table 1**, discriminator on {det['statistical_strategy']} keys "
                  f"(shadows {t1['shadows']}, held-out test models {t1['test']}, shadows' leave-one-out "
                  f"accuracy {t1['shadow_cv_accuracy']:.2f}; the test set resolves FPR down to "
                  f"{t1.get('lowest_fpr', float('nan')):.2f}, so TPR@1%/10% FPR are TPR at that FPR or below)", "",
                  "| " + " | ".join(r["table1"]) + " |", "|" + "---|" * len(r["table1"]),
                  "| " + " | ".join(f"{v:.3f}" for v in r["table1"].values()) + " |", ""]
        if "table1_with_overlap_shadows" in r:
            t1o = det["table1_with_overlap_shadows"]
            lines += [f"With overlap innocents among the shadows (the shipped discriminator; shadows "
                      f"{t1o['shadows']}, leave-one-out accuracy {t1o['shadow_cv_accuracy']:.2f}):", "",
                      "| " + " | ".join(r["table1"]) + " |", "|" + "---|" * len(r["table1"]),
                      "| " + " | ".join(f"{v:.3f}" for v in r["table1_with_overlap_shadows"].values()) + " |", ""]
        t2 = r["table2"]
        cols = [c for c in t2["infringing"] if c != "k"]
        lines += [f"**{name}: Table 2**, keys per distance bin (K = {t2['infringing']['k']})", "",
                  "| suspect | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for who in ("innocent", "infringing"):
            row = t2[who]
            lines.append(f"| {who} (`{t2['models'][who]}`) | " + " | ".join(
                f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in cols) + " |")
        ks = list(r["figure7"])
        lines += ["", f"**{name}: Figure 7**, mean conf vs K (Strategy 1 keys)", "",
                  "| | " + " | ".join(f"K = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks),
                  "| infringers | " + " | ".join(f"{r['figure7'][k]:.3f}" for k in ks) + " |",
                  "| innocents | " + " | ".join(f"{r['figure7_innocent'][k]:.3f}" for k in ks) + " |", ""]
    lines.append(f"Wall time: {results['wall_seconds']} s.")
    return "\n".join(lines) + "\n"
