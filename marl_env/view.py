"""The policy boundary: a read-only view of the simulated system.

A policy (a baseline, a trained MAHPPO policy, a remote decision-maker) gets a ``SystemView`` in
``reset(view, seed)`` and in every ``act(view)``, never the env itself. It exposes what a decision
maker at the edge can know:

- the cell: ``config`` (this episode's ``EnvConfig``: N, C, beta, p_max, each UE's DNN), ``agents``,
  ``num_actions`` (``B_n + 2`` per UE), ``profiles``, the DNN descriptors of ``marl_env.observations``;
- the physics a model-based baseline needs: ``gain`` (``d ** -l`` times this frame's fading ``fading``),
  ``bits`` / ``front_latency_s`` /
  ``front_power_w`` per UE and point (Eqs. 6-9);
- the raw per-UE state at the end of the last frame: ``tasks_left``, ``total_tasks``,
  ``time_left_s`` (``l``), ``bits_left`` (``n``), ``distance_m`` (``d``), the point and channel of a task in
  flight (``point_in_flight``, ``channel_in_flight``); and its normalised forms,
  ``state()`` (the global state) and ``observations()`` (agent-centric).
- for a planner (``marl_env.lookahead``): ``snapshot()``, a copy of the whole episode state (each UE's
  task in flight included) to restore on its own simulator of the cell; the env is not touched.

Arrays are read-only views: writing to them raises ``ValueError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mahppo.marl_env.observations import agent_observations

if TYPE_CHECKING:
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.profiles import DNNProfile


def _ro(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


class SystemView:
    """Read-only window on a ``CollabInferenceEnv``'s current cell (see the module doc)."""

    def __init__(self, env: Any):  # a marl_env.parallel.CollabInferenceEnv (which imports this module)
        self._env = env

    @property
    def config(self) -> EnvConfig:
        """This episode's cell (with a varying env: the drawn N and DNNs)."""
        return self._env.cell

    @property
    def agents(self) -> list[str]:
        return list(self._env.possible_agents[:self._env.system.n])

    @property
    def num_ues(self) -> int:
        return self._env.system.n

    @property
    def num_actions(self) -> np.ndarray:
        return _ro(self._env.system.num_actions)

    @property
    def profiles(self) -> tuple[DNNProfile, ...]:
        return self._env.cell.profiles

    @property
    def gain(self) -> np.ndarray:
        return _ro(self._env.system.gain)

    @property
    def fading(self) -> np.ndarray:
        """This frame's fading power gain h per UE (``gain = d^-l h``; 1 without fading); the next frame's is
        not known."""
        return _ro(self._env.system.fade)

    @property
    def path_gain(self) -> np.ndarray:
        """The path loss part of the gain, ``d^-l`` (the mean of the gain under fading)."""
        return self._env.system.distance ** (-self._env.cell.path_loss_exponent)

    @property
    def mean_rates(self) -> np.ndarray:
        """Each UE's long-run mean task arrivals per frame (0 without arrivals)."""
        return self._env.system.mean_rates()

    @property
    def frame(self) -> int:
        """Frames simulated so far in this episode."""
        return self._env.system.frame

    @property
    def bits(self) -> np.ndarray:
        return _ro(self._env.system.bits2d)

    @property
    def front_latency_s(self) -> np.ndarray:
        return _ro(self._env.system.lat2d)

    @property
    def front_power_w(self) -> np.ndarray:
        return _ro(self._env.system.pow2d)

    @property
    def tasks_left(self) -> np.ndarray:
        return _ro(self._env.system.tasks_left)

    @property
    def total_tasks(self) -> np.ndarray:
        return _ro(self._env.system.total_tasks)

    @property
    def time_left_s(self) -> np.ndarray:
        return _ro(self._env.system.time_left)

    @property
    def bits_left(self) -> np.ndarray:
        return _ro(self._env.system.bits_left)

    @property
    def distance_m(self) -> np.ndarray:
        return _ro(self._env.system.distance)

    @property
    def point_in_flight(self) -> np.ndarray:
        """The partition point of each UE's task in flight (the decision in force when it started): meaningful
        while the UE runs its front part or sends (``time_left_s`` or ``bits_left`` > 0), as a cell knows it."""
        return _ro(self._env.system.point)

    @property
    def channel_in_flight(self) -> np.ndarray:
        """The channel of each UE's task in flight (meaningful while it sends or will send)."""
        return _ro(self._env.system.channel)

    @property
    def tokens(self) -> np.ndarray:
        """Each UE's rank token of this episode (by distance, ties broken at random) (``marl_env.observations``)."""
        return _ro(self._env.tokens)

    def state(self) -> np.ndarray:
        """The global state ``[4N]`` (Sec. 4.3)."""
        return self._env.state()

    def descriptors(self) -> np.ndarray:
        """Each UE's DNN descriptor ``[N, D]`` (``marl_env.observations.dnn_descriptor``)."""
        return _ro(self._env.descriptors())

    def snapshot(self) -> dict:
        """A copy of the episode's state now, for a planner's own simulator of this cell (``marl_env.lookahead``);
        the env is not changed."""
        return self._env.snapshot()

    def work_left_s(self) -> np.ndarray:
        """Each UE's local work left: tasks left x its full local latency (s) (the load rank's key)."""
        return _ro(self._env.work_left_s())

    def observations(self) -> np.ndarray:
        """Every UE's agent-centric observation ``[N, obs]`` (one frame, key ``(0, 0)``)."""
        return agent_observations(self.state(), self.tokens, self.descriptors(), self._env.work_left_s(),
                                  self._env.system.fade)
