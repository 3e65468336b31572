"""Fig. 4-style plot: compression rate per partition point, ours vs JALAD."""

from __future__ import annotations

from pathlib import Path


def plot_rates(points: list[int], ours: list[float], jalad: list[float], path: str | Path,
               title: str = "") -> Path:
    """Grouped bars of the overall rate (log scale) per point; writes a PNG with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    xs = range(len(points))
    width = 0.38
    bars_o = ax.bar([x - width / 2 for x in xs], ours, width, label="ours (AE + 8-bit, Eq. 3)", color="#1f77b4")
    bars_j = ax.bar([x + width / 2 for x in xs], jalad, width, label="JALAD (8-bit + zlib)", color="#ff7f0e")
    for bars in (bars_o, bars_j):
        for bar in bars:
            ax.annotate(f"{bar.get_height():.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log", base=2)
    ax.set_ylim(0.8, 4 * max([1.0, *ours, *jalad]))  # headroom for the legend
    ax.set_xticks(list(xs), [str(p) for p in points])
    ax.set_xlabel("partition point")
    ax.set_ylabel("compression rate")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
