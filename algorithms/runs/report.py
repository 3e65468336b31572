"""The end of a training run: the trained policy against every baseline, and the training curve."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mahppo.algorithms.runs.run import test_scenario
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.lookahead import Lookahead
from mahppo.marl_env.metrics import format_table, ratio
from mahppo.marl_env.policies import BASELINES, make_baseline

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mahppo.algorithms.experiment import Experiment

LOOKAHEAD_ROW = "trained+lookahead"  # the trained policy inside the decision-time lookahead
# the lookahead row for cells up to this N: its rollouts cost 0.5 s per frame at N = 12 on one core (docs/results.md,
# "Decision-time lookahead") and grow about as N^2; larger cells: `mahppo evaluate --lookahead` on request
LOOKAHEAD_MAX_UES = 12
# static-search's coordinate descent simulates whole episodes for every UE x candidate x sweep: it took over
# 100 s at N = 20 (loaded machine) and grows faster than N^2; above this N the report leaves it out (rotate,
# the best classical rule, stays)
SEARCH_MAX_UES = 10


def compare_with_baselines(out: Path, experiment: Experiment,
                           episodes: int | None = None) -> dict[str, dict[str, float]]:
    """Evaluate the latest checkpoint (alone, and inside the decision-time lookahead when it finishes the
    episode alone and the cell has at most ``LOOKAHEAD_MAX_UES`` UEs) and every ``marl_env`` baseline on the
    test scenario."""
    from mahppo.algorithms.acting.policy import load_policy

    config = test_scenario(experiment.env)
    policy = load_policy(out)
    rows: dict[str, dict[str, float]] = {"trained": evaluate(policy, config, episodes=episodes)}
    dynamic = config.dynamics.active
    if dynamic:  # sampled futures: about 40 s per 60-frame episode at N = 5 (docs/environment-dynamics.md)
        log.info("no lookahead row on a dynamic cell (its sampled rollouts take minutes over the evaluation "
                 f"episodes): `mahppo evaluate --policy {out} --scenario dynamic --lookahead`")
    elif rows["trained"]["truncated_episodes"]:  # rollouts need a policy that finishes (marl_env.lookahead)
        log.info("no lookahead row: the policy does not finish the test episode alone")
    elif config.num_ues > LOOKAHEAD_MAX_UES:
        log.info(f"no lookahead row: N = {config.num_ues} > {LOOKAHEAD_MAX_UES} (run `mahppo evaluate --policy "
                 f"{out} --lookahead` for it)")
    else:
        rows[LOOKAHEAD_ROW] = evaluate(Lookahead(policy), config, episodes=episodes)
    for name in BASELINES:
        if name == "static-search" and dynamic:
            log.info("no static-search row on a dynamic cell (fixed decisions cannot follow the queues: worse than "
                     "Local there, docs/dynamic.md)")
            continue
        if name == "static-search" and config.num_ues > SEARCH_MAX_UES:
            log.info(f"no static-search row: N = {config.num_ues} > {SEARCH_MAX_UES} (its search grows faster than "
                     "N^2)")
            continue
        rows[name] = evaluate(make_baseline(name), config, episodes=episodes)
    local = rows["local"]
    for m in rows.values():
        m["latency_vs_local"] = ratio(m["frame_latency_per_task_s"], local["frame_latency_per_task_s"])
        m["energy_vs_local"] = ratio(m["energy_per_task_j"], local["energy_per_task_j"])
    (out / "evaluation.json").write_text(json.dumps(rows, indent=2))
    label = {"trained": f"{experiment.run.algo} (trained)",
             LOOKAHEAD_ROW: f"{experiment.run.algo} (trained) + lookahead"}
    table = format_table({label.get(k, k): v for k, v in rows.items()})
    (out / "evaluation.md").write_text(table + "\n")  # the command prints it (mahppo.commands.train)
    return rows


def plot_training_curve(out: Path, rows: list[dict[str, float]], table: dict[str, dict[str, float]],
                        experiment: Experiment) -> Path:
    """Fig. 8 style: the test-scenario episode reward against env steps, Local as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    algo = experiment.run.algo.upper()
    pts = [(r["env_steps"], r["test_reward"]) for r in rows if "test_reward" in r]
    if pts:
        ax.plot(*zip(*pts, strict=True), label=f"{algo} (test scenario, deterministic)")
    train_pts = [(r["env_steps"], r["train_return_per_ue"]) for r in rows if "train_return_per_ue" in r]
    if train_pts:
        ax.plot(*zip(*train_pts, strict=True), alpha=0.45, label="training episodes (60 frames, per UE)")
    for name, style in (("local", "--"), ("static-search", ":")):
        if name in table:
            ax.axhline(table[name]["reward"], linestyle=style, color="gray" if name == "local" else "black",
                       label=f"{name} baseline")
    ax.set_xlabel("env steps (frames)")
    ax.set_ylabel("episode reward (sum of Eq. 12)")
    env = experiment.env
    dnns = "+".join(sorted({s.dnn for s in env.specs}))
    ax.set_title(f"{algo} ({experiment.algo.actor} actor): N={env.num_ues}, C={env.num_channels}, {dnns}, "
                 f"beta={env.beta}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: hides no line
    fig.tight_layout()
    path = out / "training_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
