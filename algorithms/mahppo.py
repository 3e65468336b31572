"""MAHPPO (Sec. 5, Alg. 1) as a custom RLlib algorithm on the new API stack.

``MAHPPOConfig`` subclasses RLlib's ``PPOConfig`` and adds one builder method, ``.mahppo(...)``,
taking the paper's hyperparameters by their names (``MAHPPOParams``). Alg. 1 maps onto RLlib:

- memory ``M`` of ``memory_size`` transitions  -> ``train_batch_size_per_learner`` (env steps)
- ``batch_size`` samples per update             -> ``minibatch_size``
- sample reuse time ``K``                       -> ``num_epochs``: ``K * |M| / B`` minibatch updates
- ``clip_eps`` (Eq. 19), ``zeta`` (Eq. 20), ``gamma`` and ``lam`` (Eqs. 15, 18)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from mahppo.algorithms.learner import MAHPPOTorchLearner
from mahppo.algorithms.modules import CRITIC_ID, CentralCriticModule, HybridActorModule
from mahppo.marl_env.env import CollabInferenceEnv
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

CLIP_MODES = ("per_branch", "joint")


@dataclass(frozen=True)
class MAHPPOParams:
    """MAHPPO's hyperparameters, the paper's names and defaults (Sec. 6.3.1)."""

    lr: float = 1e-4  # actors and critic
    memory_size: int = 1024  # |M|: transitions per update
    batch_size: int = 256  # B: samples per minibatch update
    reuse_time: int = 10  # K: minibatch updates = K * memory_size / batch_size
    clip_eps: float = 0.2  # epsilon of Eq. 19
    clip_mode: str = "per_branch"  # the authors clip each branch's ratio; "joint": one ratio
    zeta: float = 0.001  # entropy bonus per branch, Eq. 20
    gamma: float = 0.95
    lam: float = 0.95  # lambda of GAE, Eq. 18
    normalize_advantages: bool = True  # standardise advantages per update (RLlib's default)
    grad_clip: float | None = None  # the authors do not clip gradients

    def validate(self) -> MAHPPOParams:
        """Reject bad values with a message naming the hyperparameter."""
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{name} = {getattr(self, name)!r} {why}")

        for name in ("lr", "clip_eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise bad(name, "must be a finite number > 0")
        for name in ("memory_size", "batch_size", "reuse_time"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise bad(name, "must be an integer > 0")
        if self.batch_size > self.memory_size:
            raise bad("batch_size", f"must be <= memory_size = {self.memory_size}")
        for name in ("gamma", "lam"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not 0 <= v <= 1:
                raise bad(name, "must be in [0, 1]")
        if not isinstance(self.zeta, int | float) or not math.isfinite(self.zeta) or self.zeta < 0:
            raise bad("zeta", "must be a finite number >= 0")
        if self.clip_mode not in CLIP_MODES:
            raise bad("clip_mode", f"must be one of {CLIP_MODES}")
        return self

    @property
    def updates_per_iteration(self) -> int:
        return self.reuse_time * self.memory_size // self.batch_size


class RLlibCollabEnv(ParallelPettingZooEnv):
    """The ``marl_env`` PettingZoo env through RLlib's PettingZoo wrapper, built from ``env_config``."""

    def __init__(self, config: dict | None = None):
        super().__init__(CollabInferenceEnv(**dict(config or {})))


class MAHPPOConfig(PPOConfig):
    """``PPOConfig`` plus ``.mahppo(...)``; the learner is ``MAHPPOTorchLearner``."""

    def __init__(self, algo_class: type | None = None):
        super().__init__(algo_class=algo_class or MAHPPO)
        self.mahppo_params = MAHPPOParams()
        self.mahppo()

    def get_default_learner_class(self):
        return MAHPPOTorchLearner

    def mahppo(self, **changes: Any) -> MAHPPOConfig:
        """Set the paper's hyperparameters (see ``MAHPPOParams``); unknown names are rejected."""
        known = {f.name for f in fields(MAHPPOParams)}
        for key in changes:
            if key not in known:
                raise ValueError(f"unknown MAHPPO hyperparameter {key!r} (known: {', '.join(sorted(known))})")
        p = replace(self.mahppo_params, **changes)
        self.mahppo_params = p
        self.training(
            lr=p.lr, train_batch_size_per_learner=p.memory_size, minibatch_size=p.batch_size,
            num_epochs=p.reuse_time, clip_param=p.clip_eps, entropy_coeff=p.zeta, gamma=p.gamma,
            lambda_=p.lam, use_kl_loss=False, grad_clip=p.grad_clip, grad_clip_by="global_norm",
        )
        self.learner_config_dict = {**(self.learner_config_dict or {}), "clip_mode": p.clip_mode,
                                    "normalize_advantages": p.normalize_advantages}
        return self

    def validate(self) -> None:
        self.mahppo_params.validate()
        super().validate()


class MAHPPO(PPO):
    """PPO's training step with MAHPPO's modules and learner (Alg. 1)."""

    @classmethod
    def get_default_config(cls) -> MAHPPOConfig:
        return MAHPPOConfig()


def env_spaces(env_config: dict):
    env = CollabInferenceEnv(**env_config)
    agents = list(env.possible_agents)
    return env, agents, env.observation_space(agents[0]), {a: env.action_space(a) for a in agents}


def build_config(env_config: dict, params: MAHPPOParams | None = None, *, algo: str = "mahppo",
                 num_env_runners: int = 0, num_envs_per_env_runner: int = 8, num_learners: int = 0,
                 num_gpus_per_learner: float = 0, seed: int | None = 0) -> PPOConfig:
    """The RLlib config that trains on ``marl_env`` with ``env_config``.

    ``algo="mahppo"``: hybrid actors + one centralized critic. ``algo="ippo"``: RLlib's stock PPO
    modules, one independent value function per UE (the ablation).
    """
    params = (params or MAHPPOParams()).validate()
    _, agents, obs_space, act_spaces = env_spaces(env_config)
    if algo == "mahppo":
        config: PPOConfig = MAHPPOConfig().mahppo(**asdict(params))
        specs: dict[str, RLModuleSpec] = {
            a: RLModuleSpec(module_class=HybridActorModule, observation_space=obs_space,
                            action_space=act_spaces[a], model_config={"trunk": [256, 128], "branch": 64})
            for a in agents
        }
        specs[CRITIC_ID] = RLModuleSpec(module_class=CentralCriticModule, observation_space=obs_space,
                                        action_space=act_spaces[agents[0]], learner_only=True,
                                        model_config={"hidden": [256, 128, 64]})
        config.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
    elif algo == "ippo":
        config = PPOConfig().training(
            lr=params.lr, train_batch_size_per_learner=params.memory_size, minibatch_size=params.batch_size,
            num_epochs=params.reuse_time, clip_param=params.clip_eps, entropy_coeff=params.zeta,
            gamma=params.gamma, lambda_=params.lam, use_kl_loss=False, grad_clip=params.grad_clip,
        )
        config.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
            a: RLModuleSpec(observation_space=obs_space, action_space=act_spaces[a],
                            model_config={"fcnet_hiddens": [256, 128, 64], "vf_share_layers": False})
            for a in agents}))
    else:
        raise ValueError(f"algo = {algo!r} must be 'mahppo' or 'ippo'")
    # The sampled power goes to the env unchanged (and unclipped into the learner's log-probs); the env
    # clips it into [1e-10 W, p_max] itself, so RLlib's per-step clipping connector is skipped.
    config.environment(RLlibCollabEnv, env_config=dict(env_config), normalize_actions=False, clip_actions=False)
    config.multi_agent(policies=set(agents), policy_mapping_fn=_agent_is_module)
    config.env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner,
                       rollout_fragment_length="auto", num_cpus_per_env_runner=1)
    config.learners(num_learners=num_learners, num_gpus_per_learner=num_gpus_per_learner)
    config.debugging(seed=seed)
    config.reporting(metrics_num_episodes_for_smoothing=20)
    return config


def _agent_is_module(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    return agent_id
