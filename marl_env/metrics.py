"""Episode metrics: one definition used by the CLI, training, Tune and the Serve loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRIC_NAMES = (
    "latency_per_task_s",
    "frame_latency_per_task_s",
    "energy_per_task_j",
    "makespan_s",
    "reward",
    "tasks_completed",
)
# Means over completed tasks: undefined (None in Python, null in JSON, "n/a" in tables) when no task
# completed, never 0 (which would read as the best possible value).
PER_TASK_NAMES = ("latency_per_task_s", "frame_latency_per_task_s", "energy_per_task_j")


@dataclass
class EpisodeMetrics:
    """Accumulates one episode frame by frame.

    - ``latency_per_task_s``: mean time from a task's start on its UE to the end of its
      offloading (or of its local run), Eqs. 6-7.
    - ``frame_latency_per_task_s``: the authors' evaluation metric, frames used x T0 x N / tasks.
    - ``energy_per_task_j``: all energy spent / tasks completed (Eqs. 8-9).
    - ``makespan_s``: when the last task finished (frames x T0 if the episode was truncated).
    - ``reward``: the episode's return, the sum of Eq. 12 over frames.

    The three per-task metrics are ``None`` when no task completed.
    """

    num_ues: int
    frame_s: float
    frames: int = 0
    tasks: int = 0
    latency_sum: float = 0.0
    energy_sum: float = 0.0
    reward_sum: float = 0.0
    makespan: float = 0.0

    def add_frame(self, completed: np.ndarray, latency_s: np.ndarray, energy_j: np.ndarray,
                  reward: float) -> None:
        self.frames += 1
        self.tasks += int(np.sum(completed))
        self.latency_sum += float(np.sum(latency_s))
        self.energy_sum += float(np.sum(energy_j))
        self.reward_sum += float(reward)

    def add_infos(self, infos: dict[str, dict], reward: float) -> None:
        """Add a frame from the PettingZoo ``info`` dicts (what a remote caller sees)."""
        vals = list(infos.values())
        self.add_frame(np.array([v["completed_tasks"] for v in vals]),
                       np.array([v["latency_s"] for v in vals]),
                       np.array([v["energy_j"] for v in vals]), reward)

    def finish(self, makespan_s: float | None = None) -> dict[str, float | None]:
        self.makespan = makespan_s if makespan_s is not None else self.frames * self.frame_s
        k = self.tasks
        return {
            "latency_per_task_s": self.latency_sum / k if k else None,
            "frame_latency_per_task_s": self.frames * self.frame_s * self.num_ues / k if k else None,
            "energy_per_task_j": self.energy_sum / k if k else None,
            "makespan_s": self.makespan,
            "reward": self.reward_sum,
            "tasks_completed": float(self.tasks),
        }


def mean_metrics(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each metric over episodes, plus ``*_std`` spreads and the episode count. A per-task
    metric is averaged over the episodes that completed a task, and is ``None`` if none did."""
    out: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        vals = np.array([r[name] for r in runs if r.get(name) is not None], dtype=np.float64)
        out[name] = float(vals.mean()) if vals.size else None
        out[f"{name}_std"] = float(vals.std()) if vals.size else None
    out["episodes"] = float(len(runs))
    out["truncated_episodes"] = float(sum(r.get("truncated", 0.0) for r in runs))
    return out


def format_cell(value: float | None, fmt: str = ".4g") -> str:
    """A metric as a table shows it: ``n/a`` for an undefined one (e.g. per task with no task)."""
    return "n/a" if value is None else format(value, fmt)


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or ``None`` when either is undefined or ``b`` is 0."""
    return None if a is None or b is None or b == 0 else a / b


def format_table(rows: dict[str, dict[str, float | None]]) -> str:
    """Markdown table of policies x metrics (the same layout everywhere)."""
    cols = ["policy", *METRIC_NAMES]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, m in rows.items():
        cells = [name] + [format_cell(m[k], ".0f" if k == "tasks_completed" else ".4g") for k in METRIC_NAMES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
