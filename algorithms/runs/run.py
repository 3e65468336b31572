"""``Run``: one RLlib algorithm's life, shared by ``mahppo train`` and the Tune trainable.

``step()`` trains one iteration (|M| env steps, ``K * |M| / B`` minibatch updates, Alg. 1) and returns
flat metrics with one set of names (``METRICS``), ``evaluate()`` runs the deterministic policy on the
test scenario (d = 50 m, K = 200, Sec. 6.3.1), ``save()`` / ``restore()`` write and read a checkpoint
(``algorithms.checkpoints``: RLlib's state, the weights-only export that acting loads, and the sidecar
``mahppo_policy.json`` holding the ``Experiment``, module ids and a verified file manifest).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mahppo.algorithms.experiment import Experiment
from mahppo.algorithms.runs import checkpoints as ck
from mahppo.algorithms.runs.checkpoints import read_meta
from mahppo.marl_env.config import EnvConfig

BRANCHES = ("point", "channel", "power")
TEST_METRICS = ("reward", "frame_latency_per_task_s", "energy_per_task_j", "latency_per_task_s", "makespan_s",
                "tasks_completed")
# The one set of metric names: curve.csv columns, Tune results, MLflow metrics (train and tune alike).
METRICS = ("iteration", "env_steps", "time_s", "train_return_per_ue", *(f"test_{k}" for k in TEST_METRICS),
           "vf_loss", "policy_loss", "entropy", *(f"entropy_{b}" for b in BRANCHES))


def init_ray(address: str | None = None) -> None:
    """Connect to ``address`` (or ``$RAY_ADDRESS``), else start a local Ray sized to this machine."""
    import ray

    from mahppo.runtime.logs import ensure_configured, ray_init_kwargs

    ensure_configured()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        from mahppo.runtime.cluster import connect

        connect(address, **ray_init_kwargs())  # token authentication handled, bad addresses fail in seconds
    else:
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, **ray_init_kwargs())


def check_gpus(per_learner: float, learners: int) -> None:
    """Fail fast (instead of waiting forever for resources) when the cluster lacks the GPUs asked for."""
    import ray

    if per_learner <= 0:
        return
    have = float(ray.cluster_resources().get("GPU", 0))
    if have < per_learner * learners:
        raise ValueError(f"num_gpus_per_learner = {per_learner:g} needs {per_learner * learners:g} GPUs; "
                         f"the Ray cluster has {have:g}")


def set_torch_threads(n: int = 1) -> None:
    """Small MLPs: one thread each for sampler and learner, so they do not fight over 2 cores."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    torch.set_num_threads(n)


def test_scenario(env: EnvConfig) -> EnvConfig:
    """The evaluation twin of a training env: same UEs, C, beta and profile; test scenario, no cut.

    A training env that draws its cell per episode (``num_ues_range`` / ``dnn_pool``) is evaluated on
    its nominal cell (the largest N, the pool's DNNs round robin), the same cell every time. A dynamic
    training env (``scenario="dynamic"``) is evaluated on the dynamic scenario's fixed evaluation episodes
    (``marl_env.evaluation``), its cell draws included."""
    if env.scenario == "dynamic":
        return env.with_updates(max_frames=None, render_mode=None)
    if env.varies:
        env = env.with_updates(num_ues_range=None, dnn_pool=None, one_dnn_share=0.0, ue_specs=tuple(env.specs))
    return env.with_updates(scenario="test", max_frames=None, render_mode=None)


def result_metrics(result: dict[str, Any], num_ues: float) -> dict[str, float]:
    """Flat metrics of one RLlib result: training return per UE, value loss, policy loss and the
    entropy of each branch (means over actor modules). NaNs are dropped."""
    out: dict[str, float] = {"iteration": float(result.get("training_iteration", 0)),
                             "env_steps": float(result.get("num_env_steps_sampled_lifetime", 0))}
    ret = result.get("env_runners", {}).get("episode_return_mean")
    if ret is not None:
        out["train_return_per_ue"] = float(ret) / num_ues  # RLlib sums the team reward over agents
    learners = {k: v for k, v in result.get("learners", {}).items() if isinstance(v, dict)}
    actors = [v for k, v in learners.items() if k != "critic" and ("entropy" in v or "vf_loss" in v)]
    vf = learners.get("critic", {}).get("vf_loss")
    if vf is None:  # IPPO: one value function per UE
        vals = [float(u["vf_loss"]) for u in actors if "vf_loss" in u]
        vf = sum(vals) / len(vals) if vals else None
    if vf is not None:
        out["vf_loss"] = float(vf)
    for name in ("policy_loss", "entropy", *(f"entropy_{b}" for b in BRANCHES)):
        vals = [float(u[name]) for u in actors if name in u]
        if vals:
            out[name] = sum(vals) / len(vals)
    return {k: v for k, v in out.items() if v == v}


class Run:
    """Builds the RLlib algorithm of an ``Experiment`` and drives it iteration by iteration."""

    def __init__(self, experiment: Experiment):
        from mahppo.algorithms.rllib.mahppo import build_config

        self.experiment = experiment.validate()
        set_torch_threads(1)
        init_ray(experiment.run.address)
        check_gpus(experiment.run.num_gpus_per_learner, max(1, experiment.run.num_learners))
        self.algo = build_config(self.experiment).build_algo()
        self.iteration = 0
        self.env_steps = 0
        self.elapsed_s = 0.0  # training wall time, carried over a restore
        self.teacher_steps = 0  # env steps the warm start's teacher played (algorithms/acting/teacher.py)
        self.warm_start_stats: dict[str, float] = {}
        self._last_test: dict[str, float] = {}

    @property
    def done(self) -> bool:
        return self.env_steps >= self.experiment.run.steps

    def step(self) -> dict[str, float]:
        """One training iteration; the test scenario every ``eval_every`` iterations and at the end
        (its last values repeat in between, so every row has them)."""
        t0 = time.perf_counter()
        if self.iteration == 0 and self.experiment.warm_start != "none" and not self.teacher_steps:
            if self.experiment.warm_start == "expert":
                from mahppo.algorithms.acting.expert import expert_start as start
            else:
                from mahppo.algorithms.acting.teacher import warm_start as start

            self.warm_start_stats = start(self.algo, self.experiment)
            self.teacher_steps = int(self.warm_start_stats["teacher_frames"])
        result = self.algo.train()
        self.elapsed_s += time.perf_counter() - t0
        env = self.experiment.env  # RLlib sums the team reward over the agents of an episode: per UE,
        r = env.num_ues_range      # divide by the (mean) N of the training cells
        metrics = result_metrics(result, (r[0] + r[1]) / 2 if r else env.num_ues)
        self.iteration = int(metrics["iteration"])
        self.env_steps = int(metrics["env_steps"]) + self.teacher_steps
        metrics["env_steps"] = float(self.env_steps)
        if not self._last_test or self.iteration % self.experiment.run.eval_every == 0 or self.done:
            self._last_test = {f"test_{k}": float(v) for k, v in self.evaluate().items()
                               if k in TEST_METRICS and v is not None}  # None: no task completed
        metrics.update(self._last_test)
        metrics["time_s"] = self.elapsed_s
        return metrics

    def policy(self):
        """The current actors as a ``TrainedPolicy`` (deterministic by default)."""
        from mahppo.algorithms.acting.policy import live_policy

        return live_policy(self.algo, self.experiment, self.meta())

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """``marl_env`` metrics of the deterministic policy on the test scenario (on the dynamic scenario: its
        evaluation episodes, ``marl_env.evaluation``)."""
        from mahppo.marl_env.evaluation import evaluate

        return evaluate(self.policy(), test_scenario(self.experiment.env), episodes=episodes)

    def meta(self) -> dict[str, Any]:
        """The checkpoint sidecar: what was trained, on what, for how long."""
        return {"policy_id": f"{self.experiment.label}-it{self.iteration}-{uuid.uuid4().hex[:8]}",
                "iteration": self.iteration, "env_steps": self.env_steps, "time_s": self.elapsed_s,
                "teacher_steps": self.teacher_steps,
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "experiment": self.experiment.to_dict()}

    def save(self, path: str | Path) -> Path:
        """RLlib checkpoint at ``path`` + weights-only export + the sidecar (written last), verified."""
        return ck.write_checkpoint(self.algo, path, self.meta())

    def restore(self, path: str | Path) -> dict[str, Any]:
        """Load a checkpoint written by ``save`` once verified complete, with the same modules as this
        run's (RLlib pickles: only restore runs you trust)."""
        path = Path(path).expanduser().resolve()
        read_meta(path)
        meta = ck.restore_checkpoint(self.algo, path)
        self.iteration = int(meta["iteration"])
        self.env_steps = int(meta["env_steps"])
        self.elapsed_s = float(meta.get("time_s", 0.0))
        self.teacher_steps = int(meta.get("teacher_steps", 0))
        self._last_test = {}
        return meta

    def stop(self) -> None:
        self.algo.stop()
