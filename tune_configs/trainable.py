"""The Tune trainable: one MAHPPO training run per trial, built from a compact config.

The RLlib config (module specs) depends on N, so each trial builds its own algorithm in ``setup``.
Each trial needs one CPU (sampling and learning in the trial's actor, one torch thread), so a
machine or cluster with C CPUs runs C trials side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mahppo.tune_configs.study import ENV_KEYS, PARAM_KEYS, flat_config
from ray import tune

# Flat metrics each trial reports per iteration (and the MLflow run logs).
TEST_METRICS = ("reward", "frame_latency_per_task_s", "energy_per_task_j", "latency_per_task_s", "makespan_s",
                "tasks_completed")
BRANCHES = ("point", "channel", "power")
FAIL_ONCE_KEY = "_fail_once_marker"  # test hook: raise in the first step unless this file exists


def trial_settings(config: dict[str, Any]):
    """The ``TrainSettings`` of a trial's compact config (what ``save_checkpoint`` records)."""
    from mahppo.algorithms.mahppo import MAHPPOParams
    from mahppo.algorithms.train import TrainSettings

    config = flat_config(config)
    params = MAHPPOParams(**{k: config[k] for k in PARAM_KEYS if k in config})
    env = {k: config[k] for k in ENV_KEYS if k in config}
    return TrainSettings(**env, params=params, seed=int(config.get("seed", 0)), steps=int(config["steps"]),
                         algo=config.get("algo", "mahppo"), eval_every=int(config.get("eval_every", 2)),
                         num_envs_per_env_runner=int(config.get("num_envs_per_env_runner", 8))).validate()


def trial_metrics(result: dict[str, Any], num_ues: int, env_steps: int) -> dict[str, float]:
    """The flat per-iteration metrics of an RLlib result: training return, test-scenario metrics,
    value loss, and each branch's entropy and the policy loss (means over UEs)."""
    out: dict[str, float] = {"env_steps": float(env_steps)}
    ret = result.get("env_runners", {}).get("episode_return_mean")
    if ret is not None and ret == ret:
        out["train_return_per_ue"] = float(ret) / num_ues  # RLlib sums the team reward over agents
    ts = result.get("test_scenario", {})
    for k in TEST_METRICS:
        if k in ts:
            out[f"test_{k}"] = float(ts[k])
    learners = result.get("learners", {})
    ues = [v for k, v in learners.items() if k.startswith("ue_")]
    vf = learners.get("critic", {}).get("vf_loss")
    if vf is None:  # IPPO: one value function per UE
        vals = [float(u["vf_loss"]) for u in ues if "vf_loss" in u]
        vf = sum(vals) / len(vals) if vals else None
    if vf is not None:
        out["vf_loss"] = float(vf)
    for name in [f"entropy_{b}" for b in BRANCHES] + ["entropy", "policy_loss"]:
        vals = [float(u[name]) for u in ues if name in u]
        if vals:
            out[name] = sum(vals) / len(vals)
    return {k: v for k, v in out.items() if v == v}


class MAHPPOTrainable(tune.Trainable):
    """Builds MAHPPO for the trial's N, C, beta and hyperparameters; one ``step`` = one iteration."""

    def setup(self, config: dict[str, Any]) -> None:
        from mahppo.algorithms.evaluation import TestScenarioEvaluation
        from mahppo.algorithms.mahppo import build_config
        from mahppo.algorithms.train import set_torch_threads

        set_torch_threads(1)
        self.settings = trial_settings(config)
        s = self.settings
        rl = build_config(s.env_config(), s.params, algo=s.algo, num_env_runners=0,
                          num_envs_per_env_runner=s.num_envs_per_env_runner, num_learners=0, seed=s.seed)
        rl.callbacks(on_train_result=TestScenarioEvaluation(interval=s.eval_every))
        self.algo = rl.build_algo()
        self.env_steps = 0
        self._fail_marker = config.get(FAIL_ONCE_KEY)

    def step(self) -> dict[str, float]:
        if self._fail_marker and not Path(self._fail_marker).exists():
            Path(self._fail_marker).write_text("failed once\n")
            raise RuntimeError("injected failure (first attempt of this trial)")
        result = self.algo.train()
        self.env_steps += int(result.get("env_runners", {}).get("num_env_steps_sampled", 0))
        if self.env_steps >= self.settings.steps and int(result["training_iteration"]) % self.settings.eval_every:
            result["test_scenario"] = self.evaluate()  # the last iteration's metrics are the trial's result
        return trial_metrics(result, self.settings.num_ues, self.env_steps)

    def evaluate(self) -> dict[str, float]:
        """The deterministic policy on the test scenario now (``marl_env`` metrics)."""
        from mahppo.algorithms.evaluation import test_scenario_config
        from mahppo.algorithms.policy import live_policy
        from mahppo.marl_env.evaluation import evaluate

        config = test_scenario_config(self.settings.env_config())
        return evaluate(live_policy(self.algo, [f"ue_{i}" for i in range(config.num_ues)]), config, seed=0)

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        from mahppo.algorithms.train import save_checkpoint

        save_checkpoint(self.algo, Path(checkpoint_dir), self.settings, self.iteration, self.env_steps)

    def load_checkpoint(self, checkpoint: str | dict | None) -> None:
        import json

        from mahppo.algorithms.policy import POLICY_META, find_checkpoint

        ckpt = find_checkpoint(checkpoint)  # type: ignore[arg-type]
        self.algo.restore_from_path(str(ckpt))
        self.env_steps = int(json.loads((ckpt / POLICY_META).read_text())["env_steps"])

    def cleanup(self) -> None:
        self.algo.stop()
