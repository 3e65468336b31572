"""Classical decision-makers that see what a learned policy sees (the current frame's queues, distances and
fading gains; not the next frame's): ``maxweight`` and ``myopic`` (``policies.make_baseline``).

Both price a task by the one-frame cost estimate ``t + beta e`` (Eq. 12's weights per task; Eqs. 6-9): a UE
offloading at point ``b`` with power ``p`` alone on its channel (no interference, Eq. 5 at this frame's gain
``d^-l h``) spends ``t = t_f(b) + f_b / r(p)`` seconds and ``e = e_f(b) + p f_b / r(p)`` joules per task;
running the whole DNN locally costs ``t_local + beta e_local``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mahppo.marl_env.config import EnvConfig
    from mahppo.marl_env.parallel import CollabInferenceEnv
    from mahppo.marl_env.view import SystemView

POWERS = (0.1, 0.25, 0.5, 1.0)  # the power grid of the one-frame estimate, x p_max


def offload_costs(view: SystemView, powers: tuple[float, ...] = POWERS) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray, np.ndarray]:
    """Per UE: the best offloading point and power by the one-frame estimate (module doc), its cost per task,
    and the cost per task of running locally. ``[N]`` each."""
    cfg, n = view.config, view.num_ues
    gain = np.asarray(view.gain)
    lat, pw, bits = np.asarray(view.front_latency_s), np.asarray(view.front_power_w), np.asarray(view.bits)
    p = np.asarray(powers, dtype=np.float64) * cfg.p_max_w
    last = np.asarray(view.num_actions, dtype=np.int64) - 1
    rows = np.arange(n)
    local = lat[rows, last] * (1 + cfg.beta * pw[rows, last])
    rate = cfg.bandwidth_hz * np.log2(1.0 + p[None, :] * gain[:, None] / cfg.noise_w)  # [N, P]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_t = bits[:, :, None] / rate[:, None, :]  # [N, W, P]
    c = (lat * (1 + cfg.beta * pw))[:, :, None] + t_t * (1 + cfg.beta * p[None, None, :])
    c = np.where((np.arange(lat.shape[1])[None, :] < last[:, None])[:, :, None], c, np.inf)  # offloading points
    c = np.nan_to_num(c, nan=np.inf).reshape(n, -1)
    j = np.argmin(c, axis=1)
    points, power, cost = j // len(p), p[j % len(p)], c[rows, j]
    return points, power, cost, local


class MaxWeightPolicy:
    """Channel-aware max-weight: every frame the UEs with the largest backlog x current achievable rate
    (``tasks_left`` x Eq. 5's rate at p_max and this frame's gain, alone on a channel) offload, one per channel,
    each at the point and power of its best one-frame cost (module doc); a UE offloads only where that beats its
    local cost; the others run locally."""

    name = "maxweight"

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        pass

    def act(self, view: SystemView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg, n = view.config, view.num_ues
        pts, pws, cost, local = offload_costs(view)
        rate = cfg.bandwidth_hz * np.log2(1.0 + cfg.p_max_w * np.asarray(view.gain) / cfg.noise_w)
        weight = np.asarray(view.tasks_left, dtype=np.float64) * rate
        eligible = (cost < local) & (weight > 0)
        out_p = np.asarray(view.num_actions, dtype=np.int64) - 1
        out_c, out_w = np.zeros(n, dtype=np.int64), np.full(n, cfg.p_max_w)
        order = [i for i in np.argsort(-weight, kind="stable") if eligible[i]][:cfg.num_channels]
        for ch, i in enumerate(order):
            out_p[i], out_c[i], out_w[i] = pts[i], ch, pws[i]
        return out_p, out_c, out_w


class MyopicPolicy:
    """The best joint action for this frame alone: the frame's exact reward (Eq. 12; the simulator of the cell
    from the current state and this frame's gains, which are known) maximised over a pruned space by
    coordinate descent from ``maxweight``'s decisions. Per UE the candidates are Local, and its best one-frame
    offloading point and power (``offload_costs``) on each channel; ``rounds`` passes over the UEs at most."""

    name = "myopic"

    def __init__(self, rounds: int = 2):
        self.rounds = rounds
        self._cell: EnvConfig | None = None
        self._sim: CollabInferenceEnv | None = None
        self._base = MaxWeightPolicy()

    def reset(self, view: SystemView, seed: int | None = None) -> None:
        from mahppo.marl_env.parallel import CollabInferenceEnv

        cell = view.config.with_updates(render_mode=None)
        if cell != self._cell:
            self._cell, self._sim = cell, CollabInferenceEnv(cell)

    def frame_reward(self, snap: dict, actions: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
        """This frame's reward (Eq. 12, and the backlog charge at a horizon) of ``actions`` from ``snap``."""
        assert self._sim is not None
        self._sim.restore(snap)
        return self._sim.advance(*actions)

    def act(self, view: SystemView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._sim is None:
            raise RuntimeError(f"{self.name}: call reset(view) first")
        n, c = view.num_ues, view.config.num_channels
        snap = view.snapshot()
        pts, pws, cost, local = offload_costs(view)
        lp = np.asarray(view.num_actions, dtype=np.int64) - 1
        best = tuple(a.copy() for a in self._base.act(view))
        best_val = self.frame_reward(snap, best)
        for _ in range(self.rounds):
            improved = False
            for i in range(n):
                if view.tasks_left[i] == 0:
                    continue
                cands = [(lp[i], 0, view.config.p_max_w)]
                if np.isfinite(cost[i]):
                    cands += [(pts[i], ch, pws[i]) for ch in range(c)]
                for b, ch, p in cands:
                    if (best[0][i], best[1][i], best[2][i]) == (b, ch, p):
                        continue
                    trial = tuple(a.copy() for a in best)
                    trial[0][i], trial[1][i], trial[2][i] = b, ch, p
                    v = self.frame_reward(snap, trial)
                    if v > best_val + 1e-12:
                        best, best_val, improved = trial, v, True
            if not improved:
                break
        return best
