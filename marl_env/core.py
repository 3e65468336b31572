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

from mahppo.marl_env.config import MIN_POWER_W, TASK_SCALE_FRAMES, TEST_DISTANCE_M, TEST_NUM_TASKS, EnvConfig

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
                 "completed", "energy", "latency", "_tasks_f", "_total_f",
                 "fade", "fade_re", "fade_im", "source_on", "target", "arrived")
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
        # cell dynamics (``EnvConfig.dynamics``): the current fading power gain h (gain = d^-l h), its complex
        # Gauss-Markov state, each arrival source's on/off state, each UE's waypoint, the last frame's arrivals
        self.fade = np.ones(n)
        self.fade_re = np.zeros(n)
        self.fade_im = np.zeros(n)
        self.source_on = np.ones(n, dtype=bool)
        self.target = np.ones(n)
        self.arrived = np.zeros(n, dtype=np.int64)
        self.dyn_rng: np.random.Generator | None = None

    def reset(self, rng: np.random.Generator) -> None:
        """Draw distances U[d_min, d_max] and tasks Poisson(lambda_p) >= 1 (or the fixed values). With
        arrivals (``EnvConfig.dynamics``) the first tasks are one frame's arrivals, Poisson(rate) (possibly 0);
        the dynamics then draw from their own generator, seeded from ``rng`` after the cell's draws."""
        cfg = self.config
        dyn = cfg.dynamics
        test = cfg.scenario == "test"
        rates = self.mean_rates() if dyn.arrivals else None
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
            elif rates is not None:
                k = int(rng.poisson(rates[i]))
            else:
                k = max(1, int(rng.poisson(cfg.task_rate)))
            self.distance[i] = d
            self.tasks_left[i] = k
            self.total_tasks[i] = k
        self.phase[:] = IDLE
        self.fade[:] = 1.0
        self.arrived[:] = 0
        if dyn.active:
            self._reset_dynamics(np.random.default_rng(int(rng.integers(2**63))))
        self.gain[:] = self.distance ** (-cfg.path_loss_exponent) * self.fade
        self._tasks_f[:] = self.tasks_left
        self._total_f[:] = self.total_tasks
        self.time_left[:] = 0.0
        self.bits_left[:] = 0.0
        self.elapsed[:] = 0.0
        self.finish_time[:] = 0.0
        self.power[:] = MIN_POWER_W
        self.point[:] = self.last_point
        self.channel[:] = 0
        self.frame = 0
        self.n_done = int(np.sum(self.phase == DONE))

    def _reset_dynamics(self, rng: np.random.Generator) -> None:
        """The dynamics' first frame: sources on/off from their stationary law, the first fading gain, the first
        waypoints. With arrivals, K_n (k is observed as k / K_n) is the UE's peak queue so far, at least
        ``TASK_SCALE_FRAMES`` frames of its mean rate: ``k <= K_n`` always, as in the paper's static cell."""
        dyn, n = self.config.dynamics, self.n
        self.dyn_rng = rng
        if dyn.arrivals:
            self.total_tasks[:] = np.maximum(np.maximum(1, np.round(TASK_SCALE_FRAMES * self.mean_rates())),
                                             self.tasks_left)
            self.phase[:] = np.where(self.tasks_left == 0, DONE, IDLE)
        if dyn.arrivals == "onoff":
            p_on = _stationary_on(dyn.p_on_off, dyn.p_off_on)
            self.source_on[:] = rng.random(n) < p_on
        else:
            self.source_on[:] = True
        if dyn.fading == "rayleigh":
            self.fade[:] = rng.exponential(1.0, n)
        elif dyn.fading == "gauss-markov":
            self.fade_re[:] = rng.normal(0.0, np.sqrt(0.5), n)
            self.fade_im[:] = rng.normal(0.0, np.sqrt(0.5), n)
            self.fade[:] = self.fade_re**2 + self.fade_im**2
        if dyn.mobility == "waypoint":
            self.target[:] = rng.uniform(self._d_min, self._d_max, n)

    def mean_rates(self) -> np.ndarray:
        """Each UE's long-run mean arrivals per frame (0 without arrivals)."""
        dyn = self.config.dynamics
        if not dyn.arrivals:
            return np.zeros(self.n)
        rates = self.on_rates()
        if dyn.arrivals == "onoff":
            p_on = _stationary_on(dyn.p_on_off, dyn.p_off_on)
            return p_on * rates + (1 - p_on) * dyn.arrival_rate_off
        return rates

    def on_rates(self) -> np.ndarray:
        """Each UE's arrival rate (tasks per frame; an on/off source's while on)."""
        return self.config.dynamics.rates(self.l_scale, self.config.frame_s)

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        """A new generator for the dynamics from now on (a planner's sampled future; common random numbers:
        the same seed gives the same arrivals and gains whatever the decisions)."""
        self.dyn_rng = np.random.default_rng(seed)

    def _advance_dynamics(self) -> None:
        """Between two frames (Sec. 3's frames, block by block): the tasks that arrived during the frame join
        the queues (a UE with an empty queue starts again with the next decision), the UEs move, the channel
        fades anew; the gain of Eq. 5 for the next frame follows."""
        dyn, rng, n = self.config.dynamics, self.dyn_rng, self.n
        assert rng is not None
        if dyn.arrivals:
            rate = np.where(self.source_on, self.on_rates(), dyn.arrival_rate_off)
            a = rng.poisson(rate)
            self.arrived[:] = a
            self.tasks_left += a
            np.maximum(self.total_tasks, self.tasks_left, out=self.total_tasks)  # K_n: the peak queue (k <= K_n)
            self._total_f[:] = self.total_tasks
            self.phase[:] = np.where((self.phase == DONE) & (a > 0), IDLE, self.phase)
            self.n_done = int(np.sum(self.phase == DONE))
            if dyn.arrivals == "onoff":
                u = rng.random(n)
                self.source_on[:] = np.where(self.source_on, u >= dyn.p_on_off, u < dyn.p_off_on)
        if dyn.mobility == "walk":
            self.distance[:] = _reflect(self.distance + rng.normal(0.0, dyn.speed_m, n), self._d_min, self._d_max)
        elif dyn.mobility == "waypoint":
            gap = self.target - self.distance
            arrive = np.abs(gap) <= dyn.speed_m
            self.distance[:] = np.where(arrive, self.target, self.distance + np.sign(gap) * dyn.speed_m)
            self.target[:] = np.where(arrive, rng.uniform(self._d_min, self._d_max, n), self.target)
        if dyn.fading == "rayleigh":
            self.fade[:] = rng.exponential(1.0, n)
        elif dyn.fading == "gauss-markov":
            s = np.sqrt(1.0 - dyn.rho**2)
            self.fade_re[:] = dyn.rho * self.fade_re + s * rng.normal(0.0, np.sqrt(0.5), n)
            self.fade_im[:] = dyn.rho * self.fade_im + s * rng.normal(0.0, np.sqrt(0.5), n)
            self.fade[:] = self.fade_re**2 + self.fade_im**2
        self.gain[:] = self.distance ** (-self.config.path_loss_exponent) * self.fade

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
        dyn = cfg.dynamics
        if dyn.active and (dyn.horizon_frames is None or self.frame < dyn.horizon_frames):
            self._advance_dynamics()  # nothing arrives after the horizon's last frame
        self._tasks_f[:] = self.tasks_left
        return FrameResult(self.completed.copy(), self.energy.copy(), self.latency.copy(), int(events))

    @property
    def all_done(self) -> bool:
        return self.n_done == self.n

    @property
    def episode_over(self) -> bool:
        """The episode's natural end: every task done (without arrivals: none will come) or the horizon."""
        dyn = self.config.dynamics
        if dyn.horizon_frames is not None and self.frame >= dyn.horizon_frames:
            return True
        return self.all_done and not dyn.arrivals

    def backlog_charge(self) -> float:
        """What the horizon charges for the tasks left (``backlog_charge``; 0 before the horizon)."""
        dyn = self.config.dynamics
        if dyn.horizon_frames is None or self.frame < dyn.horizon_frames:
            return 0.0
        return backlog_charge(self.tasks_left, self.l_scale, self.local_energy_j, self.config.frame_s,
                              self.config.beta)

    @property
    def local_energy_j(self) -> np.ndarray:
        """Each UE's energy for one task run wholly locally (the last point's e_f + e_c)."""
        idx = np.arange(self.n)
        return self.lat2d[idx, self.last_point] * self.pow2d[idx, self.last_point]

    def snapshot(self) -> dict[str, object]:
        """A copy of everything an episode changes (``restore`` puts it back, on this system or on another
        of the same cell): what a planner needs to simulate ahead from now without touching this system."""
        snap: dict[str, object] = {k: getattr(self, k).copy() for k in _STATE_ARRAYS}
        snap.update({k: getattr(self, k) for k in _STATE_SCALARS})
        snap["dyn_rng"] = None if self.dyn_rng is None else self.dyn_rng.bit_generator.state
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
        state = snap.get("dyn_rng")
        if state is None:
            self.dyn_rng = None
        else:
            self.dyn_rng = np.random.default_rng()
            self.dyn_rng.bit_generator.state = state

    def set_state(self, **per_ue: np.ndarray) -> None:
        """Every UE's state at a frame's end, frame 0 (checked by ``CollabInferenceEnv.load_state``): the arrays
        named below (the gain of Eq. 5 follows from ``distance`` and ``fade``)."""
        for name in ("phase", "tasks_left", "total_tasks", "point", "channel", "distance", "fade", "time_left",
                     "bits_left"):
            np.copyto(getattr(self, name), per_ue[name], casting="unsafe")
        self.gain[:] = self.distance ** (-self.config.path_loss_exponent) * self.fade
        self._tasks_f[:] = self.tasks_left
        self._total_f[:] = self.total_tasks
        self.elapsed[:] = 0.0
        self.finish_time[:] = 0.0
        self.frame = 0
        self.n_done = int(np.sum(self.phase == DONE))

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


def _stationary_on(p_on_off: float, p_off_on: float) -> float:
    """The on/off source's long-run share of frames on."""
    total = p_on_off + p_off_on
    return 0.5 if total == 0 else p_off_on / total


def _reflect(d: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into ``[lo, hi]`` (a walk bounces off the cell's edges)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(d, lo)
    x = np.mod(d - lo, 2 * span)
    return lo + np.where(x > span, 2 * span - x, x)


def backlog_charge(tasks_left, local_latency_s, local_energy_j, frame_s: float, beta: float) -> float:
    """The horizon's charge for the tasks left: the return (sum of Eq. 12, with its floor of 0.8 tasks per
    UE) of finishing them locally after the horizon, every UE running its tasks back to back from a frame's
    start (the task in flight restarted), no new arrivals. ``0`` with no task left.

    UE ``n`` completes its ``j``-th task at ``j t_n`` and spends ``e_n / t_n`` watts while busy, so frame
    ``f`` completes ``min(k_n, floor(f T0 / t_n)) - min(k_n, floor((f-1) T0 / t_n))`` of its tasks."""
    k = np.asarray(tasks_left, dtype=np.float64)
    t = np.asarray(local_latency_s, dtype=np.float64)
    e = np.asarray(local_energy_j, dtype=np.float64)
    busy = k * t
    if not np.any(k > 0):
        return 0.0
    frames = int(np.ceil(busy.max() / frame_s - 1e-9))
    edges = np.arange(frames + 1)[:, None] * frame_s  # [F + 1, 1]
    done = np.minimum(k, np.floor(edges / t + 1e-9))  # tasks done by each frame edge, [F + 1, N]
    completed = np.diff(done, axis=0).sum(axis=1)
    busy_s = np.diff(np.minimum(edges, busy), axis=0)  # each UE's busy time per frame
    energy = (busy_s * (e / t)).sum(axis=1)
    return float(sum(frame_reward(frame_s, beta, len(k), float(c), float(en))
                     for c, en in zip(completed, energy, strict=True)))


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
