"""PettingZoo's creators for the env: ``parallel_env(...)``, ``env(...)`` and the AEC class ``raw_env``.

As in PettingZoo's own environments: ``parallel_env`` builds the native ``ParallelEnv``
(``CollabInferenceEnv``), ``raw_env`` is the AEC environment class (agents act in turn; a frame is
simulated once every UE has acted) and ``env`` is ``raw_env`` inside PettingZoo's order-enforcing
wrapper. Every keyword is an ``EnvConfig`` field and defaults to it (one default cell).
"""

from __future__ import annotations

from typing import Any

from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from mahppo.marl_env.config import Dynamics, EnvConfig, UESpec
from mahppo.marl_env.parallel import CollabInferenceEnv

_D = EnvConfig  # the dataclass's field defaults


def parallel_env(
    *,
    num_ues: int = _D.num_ues,
    num_channels: int = _D.num_channels,
    dnn: str = _D.dnn,
    ue_specs: list[UESpec | dict | str] | None = _D.ue_specs,
    beta: float = _D.beta,
    scenario: str = _D.scenario,
    dynamics: Dynamics | dict | None = _D.dynamics,
    max_frames: int | None = _D.max_frames,
    obs_mode: str = _D.obs_mode,
    max_ues: int = _D.max_ues,
    profile_file: str | None = _D.profile_file,
    p_max_w: float = _D.p_max_w,
    frame_s: float = _D.frame_s,
    bandwidth_hz: float = _D.bandwidth_hz,
    noise_w: float = _D.noise_w,
    path_loss_exponent: float = _D.path_loss_exponent,
    d_min_m: float = _D.d_min_m,
    d_max_m: float = _D.d_max_m,
    task_rate: float = _D.task_rate,
    num_ues_range: tuple[int, int] | None = _D.num_ues_range,
    dnn_pool: tuple[str, ...] | None = _D.dnn_pool,
    one_dnn_share: float = _D.one_dnn_share,
    render_mode: str | None = _D.render_mode,
    **more: Any,
) -> CollabInferenceEnv:
    """The env as a PettingZoo ``ParallelEnv`` (Sec. 3-4 of the paper; defaults of Sec. 6.3.1).

    Args:
        num_ues: N, the UEs sharing the edge server (agents ``ue_0`` ... ``ue_{N-1}``); with ``ue_specs`` or a
            list of DNNs, N is their count.
        num_channels: C, the shared uplink channels.
        dnn: the DNN every UE runs (a profile name), or one per UE (``"resnet18,vgg11,mobilenetv2"``).
        ue_specs: one entry per UE (a DNN name, a ``UESpec`` or ``{"dnn", "distance_m", "num_tasks"}``).
        beta: the latency/energy weight of the reward (Eq. 12).
        scenario: ``"train"`` (random distances and task counts), ``"test"`` (d = 50 m, K = 200) or ``"dynamic"``
            (the ``DYNAMIC`` preset's arrivals, fading and mobility).
        dynamics: what changes from frame to frame (``Dynamics`` or its dict: arrivals, fading, mobility); all
            off by default (the paper's static cell).
        max_frames: truncate episodes after so many frames (``None``: run until every task is done).
        obs_mode: ``"global"`` (every agent sees the global state, the paper) or ``"agent"`` (own row plus
            the others as a padded set: what the shared actor takes).
        max_ues: the padded set size of ``"agent"`` observations.
        profile_file: a JSON of measured DNN profiles (``None``: the shipped Jetson Nano profiles).
        p_max_w: the most transmit power, W.
        frame_s: T0, the frame length, s.
        bandwidth_hz: omega, each channel's bandwidth, Hz.
        noise_w: sigma, the noise power, W.
        path_loss_exponent: l of the channel gain ``d ** -l``.
        d_min_m, d_max_m: the range of the UEs' distances in the train scenario, m.
        task_rate: lambda of the Poisson task counts in the train scenario.
        num_ues_range: ``(lo, hi)``: draw N per episode (``"agent"`` observations).
        dnn_pool: draw each UE's DNN per episode from these names.
        one_dnn_share: with ``dnn_pool``, the share of episodes in which every UE runs one DNN.
        render_mode: ``"ansi"`` or ``"human"``.
        more: further ``EnvConfig`` options (an unknown name raises ``ValueError``).
    """
    given = dict(locals())
    more = given.pop("more")
    # only what differs from the defaults: N follows ue_specs or a DNN list when num_ues is left at its default
    options = {k: v for k, v in given.items() if v is not getattr(_D, k) and v != getattr(_D, k)}
    return CollabInferenceEnv(**options, **more)


class raw_env(parallel_to_aec_wrapper):  # PettingZoo's name for the AEC class
    """The env as a PettingZoo ``AECEnv`` class: agents act in turn, a frame is simulated once every UE has
    acted. Takes ``parallel_env``'s keywords; ``env(...)`` adds PettingZoo's order-enforcing wrapper."""

    def __init__(self, **config: Any):
        super().__init__(parallel_env(**config))


def env(**config: Any) -> OrderEnforcingWrapper:
    """The env as a PettingZoo AEC env (``raw_env`` in PettingZoo's ``OrderEnforcingWrapper``); ``parallel_env``'s
    keywords."""
    return OrderEnforcingWrapper(raw_env(**config))
