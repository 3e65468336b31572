"""Multi-agent collaborative inference environment (PettingZoo), baselines and metrics.

PettingZoo's conventions: ``parallel_env()`` (the native ``ParallelEnv``), ``env()`` (the same
system as an AEC env, through PettingZoo's ``parallel_to_aec``) and ``raw_env`` (the unwrapped class).

>>> from mahppo.marl_env import env, parallel_env
>>> par = parallel_env(num_ues=3, scenario="test")
>>> obs, infos = par.reset(seed=0)
>>> aec = env(num_ues=3)
>>> aec.reset(seed=0)
"""

from __future__ import annotations

from typing import Any

from mahppo.marl_env.config import EnvConfig, UESpec
from mahppo.marl_env.parallel import CollabInferenceEnv, parallel_env
from mahppo.marl_env.profiles import DNNProfile, default_profiles, load_profile_file

raw_env = CollabInferenceEnv  # PettingZoo's name for the unwrapped environment class


def env(**config: Any):
    """The env as a PettingZoo AEC env (agents act in turn; a frame is simulated once every UE has
    acted). Same options as ``parallel_env`` (see ``marl_env.config.EnvConfig``)."""
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(parallel_env(**config))


__all__ = [
    "CollabInferenceEnv",
    "DNNProfile",
    "EnvConfig",
    "UESpec",
    "default_profiles",
    "env",
    "load_profile_file",
    "parallel_env",
    "raw_env",
]
