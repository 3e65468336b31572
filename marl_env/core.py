"""The MEC system of Sec. 3, simulated exactly, event by event, inside each frame.

Arrays over UEs hold the system; one compiled kernel (`_run_frame`) advances a frame of ``T0``
seconds from event to event. Between two events nothing changes, so each UE's uplink rate (Eq. 5)
is constant; at every event (a front part finishes, a transmission finishes, a task starts) the
rates are recomputed from the UEs that are *transmitting on the same channel at that instant*.

Per task (Eqs. 6-9): the UE runs its front part for ``t_f + t_c`` seconds at the profile's power
(skipped at point 0), then sends ``f`` bits at rate ``r`` (skipped at the last point, which runs the
whole model locally), spending ``p * t_t`` joules. The edge's own latency is ignored (Sec. 3.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from mahppo.marl_env.config import MIN_POWER_W, TEST_DISTANCE_M, TEST_NUM_TASKS, EnvConfig

# UE phases
IDLE = 0  # episode started, first task not yet begun (it begins with the first frame's action)
FRONT = 1  # running the model's front part (+ encoder and quantizer)
SENDING = 2  # transmitting the (compressed) feature or the raw input
DONE = 3  # all tasks completed

_EPS_T = 1e-10  # same completion tolerance as the authors' simulator


@njit(cache=True, nogil=True)
def _start_task(n, point, phase, time_left, bits_left, elapsed, bits2d, lat2d):
    elapsed[n] = 0.0
    bits_left[n] = bits2d[n, point[n]]
    if point[n] == 0:
        phase[n] = SENDING
        time_left[n] = 0.0
    else:
        phase[n] = FRONT
        time_left[n] = lat2d[n, point[n]]


@njit(cache=True, nogil=True)
def _run_frame(frame_s, t0_abs, bandwidth, noise, num_channels, last_point,
               phase, tasks_left, point, channel, next_point, next_channel, power, gain,
               time_left, bits_left, elapsed, bits2d, lat2d, pow2d,
               completed, energy, latency, finish_time, rate, chan_power):
    """Advance every UE by one frame. Per-frame outputs (completed, energy, latency) are zeroed here."""
    n_ue = phase.shape[0]
    for n in range(n_ue):
        completed[n] = 0
        energy[n] = 0.0
        latency[n] = 0.0
        if phase[n] == IDLE:  # the first task starts with the first decision
            point[n] = next_point[n]
            channel[n] = next_channel[n]
            _start_task(n, point, phase, time_left, bits_left, elapsed, bits2d, lat2d)
    t = 0.0
    events = 0
    while frame_s - t > 1e-12:
        # Eq. 5: rates from the UEs transmitting right now, per channel
        for c in range(num_channels):
            chan_power[c] = 0.0
        for n in range(n_ue):
            if phase[n] == SENDING:
                chan_power[channel[n]] += power[n] * gain[n]
        dt = frame_s - t
        for n in range(n_ue):
            if phase[n] == FRONT:
                if time_left[n] < dt:
                    dt = time_left[n]
            elif phase[n] == SENDING:
                own = power[n] * gain[n]
                interference = chan_power[channel[n]] - own
                if interference < 0.0:
                    interference = 0.0
                rate[n] = bandwidth * np.log2(1.0 + own / (noise + interference))
                if rate[n] > 0.0:
                    tt = bits_left[n] / rate[n]
                    if tt < dt:
                        dt = tt
            else:
                rate[n] = 0.0
        busy = False
        for n in range(n_ue):
            ph = phase[n]
            finished = False
            if ph == FRONT:
                busy = True
                energy[n] += pow2d[n, point[n]] * dt
                elapsed[n] += dt
                if time_left[n] - dt < _EPS_T:
                    time_left[n] = 0.0
                    if point[n] == last_point[n]:
                        finished = True  # a full local run ends the task
                    else:
                        phase[n] = SENDING
                else:
                    time_left[n] -= dt
            elif ph == SENDING:
                busy = True
                energy[n] += power[n] * dt  # Eq. 9
                elapsed[n] += dt
                if rate[n] > 0.0 and bits_left[n] / rate[n] - dt < _EPS_T:
                    bits_left[n] = 0.0
                    finished = True
                else:
                    bits_left[n] -= rate[n] * dt
            if finished:  # a task finished at t + dt
                completed[n] += 1
                latency[n] += elapsed[n]
                tasks_left[n] -= 1
                if tasks_left[n] > 0:  # Sec. 4.3: the new point and channel take effect now
                    point[n] = next_point[n]
                    channel[n] = next_channel[n]
                    _start_task(n, point, phase, time_left, bits_left, elapsed, bits2d, lat2d)
                else:
                    phase[n] = DONE
                    bits_left[n] = 0.0
                    finish_time[n] = t0_abs + t + dt
        t += dt
        events += 1
        if not busy:
            break
    n_done = 0
    total_completed = 0
    total_energy = 0.0
    for n in range(n_ue):
        if phase[n] == DONE:
            n_done += 1
        total_completed += completed[n]
        total_energy += energy[n]
    return events, n_done, total_completed, total_energy


def clip_power(powers, p_max_w: float, out: np.ndarray | None = None) -> np.ndarray:
    """The transmit power the simulator applies: clipped into ``[MIN_POWER_W, p_max]`` (a power <= 0
    becomes 1e-10 W, as in the authors' code). The one place powers are clipped."""
    return np.clip(np.asarray(powers, dtype=np.float64), MIN_POWER_W, p_max_w, out=out)


@dataclass
class FrameResult:
    """What one frame did, per UE."""

    completed: np.ndarray  # tasks completed in the frame
    energy_j: np.ndarray  # energy spent in the frame
    latency_s: np.ndarray  # summed latency of the tasks completed in the frame
    events: int


# what changes during an episode (``MECSystem.snapshot`` / ``restore``); the rest is fixed by the cell
_STATE_ARRAYS = ("phase", "tasks_left", "total_tasks", "point", "channel", "next_point", "next_channel", "power",
                 "distance", "gain", "time_left", "bits_left", "elapsed", "finish_time", "rate", "chan_power",
                 "completed", "energy", "latency", "_tasks_f", "_total_f")
_STATE_SCALARS = ("frame", "last_events", "n_done", "frame_completed", "frame_energy")


class MECSystem:
    """Array state of N UEs sharing C channels; ``step`` simulates one frame exactly."""

    def __init__(self, config: EnvConfig):
        self.config = config
        profiles = config.profiles
        n = len(profiles)
        width = max(p.num_actions for p in profiles)
        self.num_actions = np.array([p.num_actions for p in profiles], dtype=np.int64)
        self.last_point = self.num_actions - 1
        self.bits2d = np.zeros((n, width))
        self.lat2d = np.zeros((n, width))
        self.pow2d = np.zeros((n, width))
        for i, p in enumerate(profiles):
            k = p.num_actions
            self.bits2d[i, :k] = p.bits
            self.lat2d[i, :k] = p.front_latency_s
            # the power that spends exactly e_f + e_c over t_f + t_c (Eq. 8 with the profile's energy)
            lat = p.front_latency_s
            self.pow2d[i, :k] = np.divide(p.front_energy_j, lat, out=np.zeros(k), where=lat > 0)
        # state normalisation (Sec. 4.3), as in the authors' code: k / K_n, l / local latency,
        # n / raw-input bits, (d - d_min) / (d_max - d_min)
        self.l_scale = np.array([p.local_latency_s for p in profiles])
        self.n_scale = self.bits2d[:, 0].copy()
        self.n = n
        self._alloc()

    def _alloc(self) -> None:
        n, c = self.n, self.config.num_channels
        self.phase = np.zeros(n, dtype=np.int64)
        self.tasks_left = np.zeros(n, dtype=np.int64)
        self.total_tasks = np.ones(n, dtype=np.int64)
        self.point = np.zeros(n, dtype=np.int64)
        self.channel = np.zeros(n, dtype=np.int64)
        self.next_point = np.zeros(n, dtype=np.int64)
        self.next_channel = np.zeros(n, dtype=np.int64)
        self.power = np.full(n, MIN_POWER_W)
        self.distance = np.ones(n)
        self.gain = np.ones(n)
        self.time_left = np.zeros(n)
        self.bits_left = np.zeros(n)
        self.elapsed = np.zeros(n)
        self.finish_time = np.zeros(n)
        self.rate = np.zeros(n)
        self.chan_power = np.zeros(c)
        self.completed = np.zeros(n, dtype=np.int64)
        self.energy = np.zeros(n)
        self.latency = np.zeros(n)
        self.frame = 0
        self.last_events = 0
        self.n_done = 0
        self.frame_completed = 0
        self.frame_energy = 0.0
        self._tasks_f = np.zeros(n)
        self._total_f = np.ones(n)
        self._d_min = float(self.config.d_min_m)
        self._d_max = float(self.config.d_max_m)

    def reset(self, rng: np.random.Generator) -> None:
        """Draw distances U[d_min, d_max] and tasks Poisson(lambda_p) >= 1 (or the fixed values)."""
        cfg = self.config
        test = cfg.scenario == "test"
        for i, spec in enumerate(cfg.specs):
            if spec.distance_m is not None:
                d = float(spec.distance_m)
            elif test:
                d = TEST_DISTANCE_M
            else:
                d = float(rng.uniform(cfg.d_min_m, cfg.d_max_m))
            if spec.num_tasks is not None:
                k = int(spec.num_tasks)
            elif test:
                k = TEST_NUM_TASKS
            else:
                k = max(1, int(rng.poisson(cfg.task_rate)))
            self.distance[i] = d
            self.tasks_left[i] = k
            self.total_tasks[i] = k
        self.gain[:] = self.distance ** (-cfg.path_loss_exponent)
        self._tasks_f[:] = self.tasks_left
        self._total_f[:] = self.total_tasks
        self.phase[:] = IDLE
        self.time_left[:] = 0.0
        self.bits_left[:] = 0.0
        self.elapsed[:] = 0.0
        self.finish_time[:] = 0.0
        self.power[:] = MIN_POWER_W
        self.point[:] = self.last_point
        self.channel[:] = 0
        self.frame = 0
        self.n_done = int(np.sum(self.phase == DONE))

    def set_actions(self, points: np.ndarray, channels: np.ndarray, powers: np.ndarray) -> None:
        """Power takes effect at once; point and channel when the UE starts its next task (Sec. 4.3).

        Inputs must already be validated; powers are clipped to [MIN_POWER_W, p_max].
        """
        self.next_point[:] = points
        self.next_channel[:] = channels
        clip_power(powers, self.config.p_max_w, out=self.power)

    def step(self) -> FrameResult:
        cfg = self.config
        events, n_done, total_completed, total_energy = _run_frame(
            cfg.frame_s, self.frame * cfg.frame_s, cfg.bandwidth_hz, cfg.noise_w, cfg.num_channels,
            self.last_point, self.phase, self.tasks_left, self.point, self.channel,
            self.next_point, self.next_channel, self.power, self.gain, self.time_left,
            self.bits_left, self.elapsed, self.bits2d, self.lat2d, self.pow2d,
            self.completed, self.energy, self.latency, self.finish_time, self.rate, self.chan_power,
        )
        self.frame += 1
        self.last_events = int(events)
        self.n_done = int(n_done)
        self.frame_completed = int(total_completed)
        self.frame_energy = float(total_energy)
        self._tasks_f[:] = self.tasks_left
        return FrameResult(self.completed.copy(), self.energy.copy(), self.latency.copy(), int(events))

    @property
    def all_done(self) -> bool:
        return self.n_done == self.n

    def snapshot(self) -> dict[str, object]:
        """A copy of everything an episode changes (``restore`` puts it back, on this system or on another
        of the same cell): what a planner needs to simulate ahead from now without touching this system."""
        snap: dict[str, object] = {k: getattr(self, k).copy() for k in _STATE_ARRAYS}
        snap.update({k: getattr(self, k) for k in _STATE_SCALARS})
        return snap

    def restore(self, snap: dict[str, object]) -> None:
        """Put back a ``snapshot`` (taken on a system of the same cell: the same UEs and channels)."""
        if snap["phase"].shape != self.phase.shape or snap["chan_power"].shape != self.chan_power.shape:  # type: ignore[union-attr]
            raise ValueError(f"snapshot of {len(snap['phase'])} UEs / {len(snap['chan_power'])} channels does not "  # type: ignore[arg-type]
                             f"fit this system ({self.n} UEs, {self.config.num_channels} channels)")
        for k in _STATE_ARRAYS:
            np.copyto(getattr(self, k), snap[k])  # type: ignore[arg-type]
        for k in _STATE_SCALARS:
            setattr(self, k, snap[k])

    def state(self) -> np.ndarray:
        """The global state s_t = {k, l, n, d} (Sec. 4.3), per UE ``[k, l, n, d]``, about [0, 1]."""
        return _normalize_kernel(
            self._tasks_f, self._total_f, self.time_left, self.bits_left, self.distance,
            self.l_scale, self.n_scale, self._d_min, self._d_max,
        )


@njit(cache=True, nogil=True)
def _normalize_kernel(tasks_left, total_tasks, time_left_s, bits_left, distance_m, l_scale, n_scale,
                      d_min_m, d_max_m):
    n = tasks_left.shape[0]
    out = np.empty(4 * n, dtype=np.float32)
    span = d_max_m - d_min_m
    for i in range(n):
        out[4 * i] = tasks_left[i] / max(total_tasks[i], 1.0)
        out[4 * i + 1] = time_left_s[i] / l_scale[i]
        out[4 * i + 2] = bits_left[i] / n_scale[i]
        out[4 * i + 3] = (distance_m[i] - d_min_m) / span if span > 0 else 0.0
    return out


def normalize_state(tasks_left, total_tasks, time_left_s, bits_left, distance_m,
                    l_scale, n_scale, d_min_m: float, d_max_m: float) -> np.ndarray:
    """Normalise raw UE state to the network input: one function for the env and for Serve.

    Per UE ``[k / K_n, l / t_local, n / f_raw, (d - d_min) / (d_max - d_min)]``, UEs concatenated.
    """
    f = np.asarray
    return _normalize_kernel(f(tasks_left, dtype=np.float64), f(total_tasks, dtype=np.float64),
                             f(time_left_s, dtype=np.float64), f(bits_left, dtype=np.float64),
                             f(distance_m, dtype=np.float64), f(l_scale, dtype=np.float64),
                             f(n_scale, dtype=np.float64), float(d_min_m), float(d_max_m))


def frame_reward(frame_s: float, beta: float, num_ues: int, completed: float, energy_j: float) -> float:
    """Eq. 12 from the frame's totals over UEs (see ``reward``)."""
    k = max(completed / num_ues, 0.8)
    return -(frame_s + beta * energy_j / num_ues) / k


def reward(frame_s: float, beta: float, completed: np.ndarray, energy_j: np.ndarray) -> float:
    """Eq. 12, r_t = -(T0 + beta E_t) / K_t, with the authors' per-UE means and floor.

    K_t and E_t are the per-UE means of tasks completed and energy spent in the frame (so the scale
    does not grow with N), and a frame with no completed task divides by 0.8 instead of 0, as the
    authors' code does (``max(K_t, 0.8)``).
    """
    return frame_reward(frame_s, beta, len(completed), float(np.sum(completed)), float(np.sum(energy_j)))
