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


@dataclass
class EpisodeMetrics:
    """Accumulates one episode frame by frame.

    - ``latency_per_task_s``: mean time from a task's start on its UE to the end of its
      offloading (or of its local run), Eqs. 6-7.
    - ``frame_latency_per_task_s``: the authors' evaluation metric, frames used x T0 x N / tasks.
    - ``energy_per_task_j``: all energy spent / tasks completed (Eqs. 8-9).
    - ``makespan_s``: when the last task finished (frames x T0 if the episode was truncated).
    - ``reward``: the episode's return, the sum of Eq. 12 over frames.
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

    def finish(self, makespan_s: float | None = None) -> dict[str, float]:
        self.makespan = makespan_s if makespan_s is not None else self.frames * self.frame_s
        k = max(self.tasks, 1)
        return {
            "latency_per_task_s": self.latency_sum / k,
            "frame_latency_per_task_s": self.frames * self.frame_s * self.num_ues / k,
            "energy_per_task_j": self.energy_sum / k,
            "makespan_s": self.makespan,
            "reward": self.reward_sum,
            "tasks_completed": float(self.tasks),
        }


def mean_metrics(runs: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over episodes, plus ``*_std`` spreads and the episode count."""
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        vals = np.array([r[name] for r in runs], dtype=np.float64)
        out[name] = float(vals.mean())
        out[f"{name}_std"] = float(vals.std())
    out["episodes"] = float(len(runs))
    out["truncated_episodes"] = float(sum(r.get("truncated", 0.0) for r in runs))
    return out


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of policies x metrics (the same layout everywhere)."""
    cols = ["policy", *METRIC_NAMES]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, m in rows.items():
        cells = [name] + [f"{m[k]:.4g}" if k != "tasks_completed" else f"{m[k]:.0f}" for k in METRIC_NAMES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
