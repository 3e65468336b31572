"""``mahppo tune report STUDY``: the study's figure, drawn from its MLflow runs.

- ``plot: curves`` (Figs. 9, 10): test-scenario reward and value loss vs env steps, one curve per value
  of the swept key, the mean over seeds with a +-1 std band.
- ``plot: tradeoff`` (Fig. 12): final latency per task and energy per task vs the swept key (log x for
  beta), mean over seeds with a +-1 std band.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mahppo.tune_configs.study import Study

CURVE_PANELS = (("test_reward", "test-scenario episode reward"), ("vf_loss", "value loss (Eq. 16)"))
TRADEOFF_PANELS = (("test_frame_latency_per_task_s", "frame latency per task (s)"),
                   ("test_energy_per_task_j", "energy per task (J)"))


def param_name(key: str) -> str:
    """The MLflow param of a study key: ``lr`` -> ``algo.lr`` (``Experiment.flat`` names)."""
    from mahppo.algorithms.experiment import flat_keys

    return f"{flat_keys()[key]}.{key}"


def _value(text: str) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def collect_runs(study: Study, uri: str | None = None, sweep: str | None = None) -> dict[Any, list[Any]]:
    """The finished trial runs of one sweep of the study (default: its latest), grouped by the value of
    the swept key."""
    from mahppo.algorithms.runs.tracking import client, redact_uri, tracking_uri
    from mahppo.tune_configs.sweeps import ROLE_TAG, latest_sweep, sweep_ids, trial_filter

    cl = client(uri)
    exp = cl.get_experiment_by_name(study.experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment {study.experiment!r} in {redact_uri(tracking_uri(uri))}: run "
                         f"`mahppo tune --study {study.source or study.name}` first")
    if sweep is None:
        sweep = latest_sweep(cl, exp.experiment_id)  # None: a store from before sweeps (every run)
    elif sweep not in sweep_ids(cl, exp.experiment_id):
        known = sweep_ids(cl, exp.experiment_id)
        raise ValueError(f"--sweep {sweep!r}: no such sweep of {study.experiment!r} (sweeps: "
                         f"{', '.join(known) or 'none'})")
    runs = [r for r in cl.search_runs([exp.experiment_id], filter_string=trial_filter(sweep), max_results=5000)
            if r.data.tags.get(ROLE_TAG) != "sweep"]
    groups: dict[Any, list[Any]] = {}
    for run in runs:
        key = param_name(study.vary)
        if key in run.data.params:
            groups.setdefault(_value(run.data.params[key]), []).append(run)
    if not groups:
        raise ValueError(f"experiment {study.experiment!r} has no finished runs with a {study.vary!r} param")
    return dict(sorted(groups.items(), key=lambda kv: (isinstance(kv[0], str), kv[0])))


def metric_history(cl: Any, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """One metric of one MLflow run by env step (the step it was logged at): steps, values."""
    pts = sorted({m.step: m.value for m in cl.get_metric_history(run_id, key)}.items())
    return np.array([p[0] for p in pts], dtype=float), np.array([p[1] for p in pts], dtype=float)


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]], n: int = 60) -> tuple[np.ndarray, ...] | None:
    """Seeds on a common env-step grid (up to the shortest run): x, mean, std."""
    curves = [c for c in curves if len(c[0])]
    if not curves:
        return None
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    x = np.linspace(lo, hi, n) if hi > lo else np.array([hi])
    ys = np.stack([np.interp(x, cx, cy) for cx, cy in curves])
    return x, ys.mean(0), ys.std(0)


def draw_report(study: Study, out: str | Path, uri: str | None = None, sweep: str | None = None) -> dict[str, Any]:
    """Write the figure of one sweep of the study (default: the latest) to ``out`` (PNG); returns how many
    runs and values it drew, and the sweep."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    from mahppo.algorithms.runs.tracking import client

    groups = collect_runs(study, uri, sweep)
    sweep = _sweep_of(groups)
    cl = client(uri)
    panels = TRADEOFF_PANELS if study.plot == "tradeoff" else CURVE_PANELS
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8))
    n_runs = sum(len(v) for v in groups.values())
    if study.plot == "tradeoff":
        xs = [v for v in groups if not isinstance(v, str)]
        for ax, (key, label) in zip(axes, panels, strict=True):
            means, stds = [], []
            for v in xs:
                finals = [r.data.metrics[key] for r in groups[v] if key in r.data.metrics]
                means.append(np.mean(finals) if finals else np.nan)
                stds.append(np.std(finals) if finals else np.nan)
            m, s = np.array(means), np.array(stds)
            ax.plot(xs, m, marker="o")
            ax.fill_between(xs, m - s, m + s, alpha=0.25)
            if xs and min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
            ax.set_xlabel(study.vary)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    else:
        cmap = plt.get_cmap("viridis", max(2, len(groups)))
        for ax, (key, label) in zip(axes, panels, strict=True):
            for i, (v, runs) in enumerate(groups.items()):
                mc = mean_curve([metric_history(cl, r.info.run_id, key) for r in runs])
                if mc is None:
                    continue
                x, m, s = mc
                ax.plot(x, m, color=cmap(i), label=f"{study.vary}={v:g}" if isinstance(v, float) else str(v),
                        marker="." if len(x) == 1 else None)
                ax.fill_between(x, m - s, m + s, color=cmap(i), alpha=0.2)
            ax.set_xlabel("env steps")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
    seeds = sorted({len(v) for v in groups.values()})
    budgets = sorted({r.data.params.get("steps", "?") for runs in groups.values() for r in runs})
    fig.suptitle(f"{study.title}: {n_runs} runs, {'/'.join(map(str, seeds))} seed(s) per value, "
                 f"{'/'.join(budgets)} env steps each" + (f" (sweep {sweep})" if sweep else ""), fontsize=11)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"runs": n_runs, "points": len(groups), "out": str(out), "sweep": sweep}


def _sweep_of(groups: dict[Any, list[Any]]) -> str | None:
    from mahppo.tune_configs.sweeps import SWEEP_TAG

    ids = {r.data.tags.get(SWEEP_TAG) for runs in groups.values() for r in runs}
    return ids.pop() if len(ids) == 1 else None
