"""Plots of a comparison: validation curves and the accuracy/speed trade-off (one PNG).

Left panel: the validation score (the configured ``valid_metric``) per epoch for every model,
averaged over seeds at each epoch a seed reached. Right panel: bars of the test NDCG@10 (the
first NDCG metric, else the first metric) and of the training seconds per epoch, side by side
per model. Drawn with matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

from recbole_ext.results.record import RunRecord


def _trade_off_metric(records: List[RunRecord]) -> Optional[str]:
    names: List[str] = []
    for r in records:
        for k in r.test_result:
            if k not in names:
                names.append(k)
    for want in ("ndcg@10",):
        if want in names:
            return want
    ndcg = [n for n in names if n.lower().startswith("ndcg")]
    return (ndcg or names or [None])[0]


def curves(records: List[RunRecord]) -> Dict[str, List[Tuple[int, float]]]:
    """Per model: ``[(epoch, mean validation score over seeds)]``."""
    out: Dict[str, Dict[int, List[float]]] = {}
    for r in records:
        if not r.ok:
            continue
        for epoch, score in r.valid_curve:
            out.setdefault(r.model, {}).setdefault(int(epoch), []).append(float(score))
    return {m: [(e, sum(v) / len(v)) for e, v in sorted(d.items())] for m, d in out.items()}


def plot_comparison(records: List[RunRecord], path: str, echo: Callable[[str], None] = print) -> Optional[str]:
    """Draw the two panels into ``path`` (PNG) and return ``path``."""
    import matplotlib  # noqa: PLC0415 - matplotlib loads when a plot is drawn

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib loads when a plot is drawn

    ok = [r for r in records if r.ok]
    models: List[str] = []
    for r in ok:
        if r.model not in models:
            models.append(r.model)
    valid_metric = next((r.valid_metric for r in ok if r.valid_metric), "validation score")
    metric = _trade_off_metric(ok)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    _curves_panel(ax1, ok, models, valid_metric)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else 0.0

    acc = [mean([r.test_result.get(metric) for r in ok if r.model == m]) for m in models]
    speed = [mean([mean(r.train_epoch_s) for r in ok if r.model == m]) for m in models]
    x = list(range(len(models)))
    w = 0.38
    bars1 = ax2.bar([i - w / 2 for i in x], acc, w, color="tab:blue", label=f"test {metric}")
    ax2.set_ylabel(f"test {metric}", color="tab:blue")
    ax2.set_xticks(x)
    ax2.set_xticklabels(models, rotation=20, ha="right")
    ax3 = ax2.twinx()
    bars2 = ax3.bar([i + w / 2 for i in x], speed, w, color="tab:orange", label="train s/epoch")
    ax3.set_ylabel("training seconds per epoch", color="tab:orange")
    ax2.set_title(f"Accuracy ({metric}) vs. speed (s/epoch)")
    # below the bars, never over them
    ax2.legend(
        [bars1, bars2],
        [f"test {metric}", "train s/epoch"],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.28),
        ncol=2,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curves_panel(ax, ok: List[dict], models: List[str], valid_metric: str) -> None:
    """The left panel: each model's validation score per epoch."""
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 - matplotlib loads when a plot is drawn

    for model, pts in curves(ok).items():
        if pts:
            # joined markers; a model evaluated once is one marker, drawn larger so it reads as a point
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3 if len(pts) > 1 else 6, label=model
            )
    epochs = sorted({p[0] for pts in curves(ok).values() for p in pts})
    if 0 < len(epochs) <= 12:  # whole epochs only, also for a run of one or two
        ax.set_xticks(epochs)
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"valid {valid_metric}")
    ax.set_title("Validation score per epoch")
    if models:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
