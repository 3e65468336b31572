"""Evaluation of the policy being trained on the test scenario (d = 50 m, K = 200), every few iterations."""

from __future__ import annotations

from typing import Any

from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate


def test_scenario_config(env_config: dict[str, Any]) -> EnvConfig:
    """The evaluation twin of a training env: same UEs, C, beta and profile; test scenario, no cut."""
    cfg = {k: v for k, v in env_config.items() if k not in ("max_frames", "render_mode")}
    cfg["scenario"] = "test"
    return EnvConfig.from_kwargs(**cfg)


class TestScenarioEvaluation:
    """An ``on_train_result`` callback: adds ``result["test_scenario"]`` (``marl_env`` metrics of the
    deterministic policy) every ``interval`` iterations, repeating the last value in between."""

    def __init__(self, interval: int = 1, episodes: int = 1):
        self.interval = max(1, int(interval))
        self.episodes = episodes
        self.last: dict[str, float] | None = None

    def __call__(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        from mahppo.algorithms.policy import live_policy

        it = int(result.get("training_iteration", 0))
        if self.last is None or it % self.interval == 0:
            env_config = dict(algorithm.config.env_config)
            config = test_scenario_config(env_config)
            agents = [f"ue_{i}" for i in range(config.num_ues)]
            policy = live_policy(algorithm, agents)
            self.last = evaluate(policy, config, episodes=self.episodes, seed=0)
        result["test_scenario"] = dict(self.last)
