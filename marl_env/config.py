"""Configuration of the multi-UE MEC system (Sec. 3 and the defaults of Sec. 6.3.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from mahppo.marl_env.profiles import DNNProfile, resolve_profile

SCENARIOS = ("train", "test", "dynamic")
OBS_MODES = ("global", "agent")
TEST_DISTANCE_M = 50.0  # Sec. 6.3.1: evaluation fixes d_n = 50 m ...
TEST_NUM_TASKS = 200  # ... and K_n = 200 for every UE
MIN_POWER_W = 1e-10  # powers <= 0 are clipped up to this (as the authors' code does)
MAX_UES = 256  # above this, one actor per UE on a 4N-value state does not fit a workstation


def training_memory_gib(num_ues: int) -> float:
    """Rough resident memory (GiB) of training ``num_ues`` UEs with one actor per UE.

    Calibrated on the measured 1.8 GiB of Ray + RLlib at N = 3-10; each actor has about
    ``1024 N + 60k`` parameters (its first layer reads the 4N-value global state), held about
    8 times (weights, gradients, Adam moments, sampler and learner copies, checkpoint buffers)."""
    n = int(num_ues)
    return 1.8 + n * (1024 * n + 60_000) * 4 * 8 / 2**30

ARRIVALS = ("poisson", "onoff")
FADING = ("rayleigh", "gauss-markov")
MOBILITY = ("walk", "waypoint")
TASK_SCALE_FRAMES = 4.0  # with arrivals, K_n (k is observed as k / K_n) is at least this many frames of arrivals


@dataclass(frozen=True)
class Dynamics:
    """What changes in the cell from frame to frame (``docs/environment-dynamics.md``); all off by default.

    - ``arrivals``: ``None`` (every task is there at the start, the paper), ``"poisson"`` (each UE gets
      Poisson(``arrival_rate``) new tasks per frame, queued at the frame's end and seen by the next decision)
      or ``"onoff"`` (a two-state Markov-modulated Poisson source per UE: ``arrival_rate`` while on,
      ``arrival_rate_off`` while off; on -> off with ``p_on_off``, off -> on with ``p_off_on`` per frame).
      ``arrival_rate``: tasks per frame, one number or one per UE; or ``load``: the (on-state) rate as a multiple
      of each UE's local capacity ``T0 / t_local`` (its DNN's frames' worth of whole local runs), which
      replaces ``arrival_rate`` (one number for a mix of DNNs: every UE equally loaded).
    - ``fading``: ``None`` (path loss only, Eq. 5), ``"rayleigh"`` (i.i.d. per frame power gain h ~ Exp(1),
      so g = d^-l h has mean d^-l) or ``"gauss-markov"`` (h = |z|^2, z_t = rho z_{t-1} + sqrt(1 - rho^2) w_t with
      w_t ~ CN(0, 1): correlated, Exp(1) marginally). The current frame's h is observed; the next is not.
    - ``mobility``: ``None``, ``"walk"`` (each UE's distance moves by N(0, ``speed_m``) per frame, reflected into
      [d_min, d_max]) or ``"waypoint"`` (towards a target distance drawn in [d_min, d_max] at ``speed_m`` metres
      per frame; a new target on arrival).
    - ``horizon_frames``: the episode's length (needed with arrivals). At the horizon the backlog left is
      charged: the return Eq. 12 would give to finishing it locally (``core.backlog_charge``).
    """

    arrivals: str | None = None
    arrival_rate: float | tuple[float, ...] = 12.0
    load: float | None = None
    arrival_rate_off: float = 0.0
    p_on_off: float = 0.1
    p_off_on: float = 0.1
    fading: str | None = None
    rho: float = 0.9
    mobility: str | None = None
    speed_m: float = 2.0
    horizon_frames: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.arrivals or self.fading or self.mobility or self.horizon_frames)

    def rates(self, local_latency_s, frame_s: float):
        """The per-UE (on-state) arrival rates, tasks per frame, for UEs of these local latencies."""
        import numpy as np

        t = np.asarray(local_latency_s, dtype=np.float64)
        if self.load is not None:
            return self.load * frame_s / t
        r = self.arrival_rate
        return np.full(len(t), float(r)) if not isinstance(r, tuple) else np.asarray(r, dtype=np.float64)

    def validated(self, num_ues: int | None = None) -> Dynamics:
        """Check every field; raise ValueError naming the field (``dynamics.NAME``) and the value."""
        for name, choices in (("arrivals", ARRIVALS), ("fading", FADING), ("mobility", MOBILITY)):
            v = getattr(self, name)
            if v is not None and v not in choices:
                raise ValueError(f"dynamics.{name} = {v!r} must be None or one of {choices}")
        r = self.arrival_rate
        if isinstance(r, tuple):
            if not r:
                raise ValueError("dynamics.arrival_rate = (): give one rate or one per UE")
            for i, x in enumerate(r):
                _check_nonneg(f"dynamics.arrival_rate[{i}]", x)
            if num_ues is not None and len(r) != num_ues:
                raise ValueError(f"dynamics.arrival_rate has {len(r)} rates for num_ues = {num_ues}: give one "
                                 "rate or one per UE")
        else:
            _check_nonneg("dynamics.arrival_rate", r)
        if self.load is not None:
            _check_nonneg("dynamics.load", self.load)
        _check_nonneg("dynamics.arrival_rate_off", self.arrival_rate_off)
        for name in ("p_on_off", "p_off_on", "rho"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
                raise ValueError(f"dynamics.{name} = {v!r} must be a number in [0, 1]")
        if self.rho == 1:
            raise ValueError("dynamics.rho = 1 never changes the gain: use a number in [0, 1)")
        _check_nonneg("dynamics.speed_m", self.speed_m)
        if self.horizon_frames is not None:
            _check_int("dynamics.horizon_frames", self.horizon_frames, 1)
        if self.arrivals and self.horizon_frames is None:
            raise ValueError(f"dynamics.arrivals = {self.arrivals!r} needs dynamics.horizon_frames (an episode "
                             "with arrivals never runs out of tasks)")
        return self

    def to_dict(self) -> dict[str, object]:
        """The fields that differ from the defaults (``{}``: all off), JSON-able."""
        out: dict[str, object] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v != f.default:
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Dynamics:
        """The inverse of ``to_dict``; unknown keys raise ``ValueError`` naming them."""
        check_fields(cls, data, "dynamics")
        kw = dict(data)
        if isinstance(kw.get("arrival_rate"), list):
            kw["arrival_rate"] = tuple(kw["arrival_rate"])  # type: ignore[arg-type]
        return cls(**kw).validated()  # type: ignore[arg-type]


# ``--scenario dynamic`` (docs/environment-dynamics.md): Poisson arrivals at LOAD x each UE's local capacity,
# i.i.d. Rayleigh fading, a random walk of 2 m per frame, 60-frame episodes (the authors' training cut)
DYNAMIC_LOAD = 1.3
DYNAMIC = Dynamics(arrivals="poisson", load=DYNAMIC_LOAD, fading="rayleigh", mobility="walk", speed_m=2.0,
                   horizon_frames=60)


@dataclass(frozen=True)
class UESpec:
    """One UE: its DNN (a profile name) and, optionally, a fixed distance and task count.

    Add a UE to the system by adding a spec; its action space follows its own ``B_n``.
    """

    dnn: str = "resnet18"
    distance_m: float | None = None
    num_tasks: int | None = None


MAX_DISTANCE_M = 1e5  # the largest d_max_m (100 km): a bound on every distance the env and Serve take


@dataclass(frozen=True)
class EnvConfig:
    """All parameters of the system; names follow the paper (Sec. 6.3.1 defaults). The default cell is the
    headline cell of Fig. 8: N = 3 ResNet18 UEs, C = 2, beta = 0.47 (every command's default)."""

    num_ues: int = 3  # N
    num_channels: int = 2  # C
    dnn: str = "resnet18"  # DNN of every UE, or one per UE ("resnet18,vgg11,..."), when no ``ue_specs``
    ue_specs: tuple[UESpec, ...] | None = None
    profile_file: str | None = None  # None: the shipped Jetson Nano profiles
    frame_s: float = 0.5  # T0
    bandwidth_hz: float = 1e6  # omega_c
    noise_w: float = 1e-9  # sigma_c
    path_loss_exponent: float = 3.0  # g_n = d_n ** -l
    d_min_m: float = 1.0
    d_max_m: float = 100.0
    task_rate: float = 200.0  # lambda_p of K_n ~ Poisson(lambda_p), at least 1
    beta: float = 0.47
    p_max_w: float = 1.0
    scenario: str = "train"  # "test": d_n = 50 m, K_n = 200; "dynamic": the DYNAMIC preset's arrivals, fading, mobility
    dynamics: Dynamics = Dynamics()  # all off: the paper's static cell
    max_frames: int | None = None  # truncate episodes (the authors train with 60)
    obs_mode: str = "global"  # "global": every agent sees s_t (the paper); "agent": own + the others as a set
    max_ues: int | None = None  # an optional cap on N for "agent" observations (None: any N up to MAX_UES)
    num_ues_range: tuple[int, int] | None = None  # draw N uniformly from [lo, hi] per episode ("agent" obs)
    dnn_pool: tuple[str, ...] | None = None  # draw each UE's DNN per episode from these (nominal: round robin)
    one_dnn_share: float = 0.0  # with dnn_pool: the share of episodes whose UEs all run one DNN drawn from it
    render_mode: str | None = None
    _profiles: tuple[DNNProfile, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def option_names(cls) -> set[str]:
        """Every option a user may set (the dataclass fields, without the private ones)."""
        return {f.name for f in fields(cls) if not f.name.startswith("_")}

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> EnvConfig:
        """The defaults with ``kwargs`` (JSON-like values: lists, spec dicts, DNN names), validated; a ``dnn``
        list without ``num_ues`` sets N (one UE per name)."""
        if kwargs.get("ue_specs") is None and "num_ues" not in kwargs and isinstance(kwargs.get("dnn"), str):
            kwargs["num_ues"] = max(1, len(dnn_names(kwargs["dnn"])))
        return cls().with_updates(**kwargs)

    @property
    def specs(self) -> tuple[UESpec, ...]:
        """The nominal cell's UEs (with ``dnn_pool``: the pool's DNNs round robin)."""
        if self.ue_specs is not None:
            return self.ue_specs
        if self.dnn_pool:
            return tuple(UESpec(dnn=self.dnn_pool[i % len(self.dnn_pool)]) for i in range(self.num_ues))
        names = dnn_names(self.dnn)
        if len(names) == 1:
            names = names * self.num_ues
        return tuple(UESpec(dnn=name) for name in names)

    @property
    def varies(self) -> bool:
        """Whether each episode draws its own cell (N and/or DNNs)."""
        return self.num_ues_range is not None or self.dnn_pool is not None

    def draw_cell(self, rng) -> EnvConfig:
        """One episode's cell: N from ``num_ues_range``, each UE's DNN from ``dnn_pool`` (or, in a share
        ``one_dnn_share`` of the episodes, one DNN from the pool for every UE)."""
        n = self.num_ues
        if self.num_ues_range is not None:
            n = int(rng.integers(self.num_ues_range[0], self.num_ues_range[1] + 1))
        if self.dnn_pool and self.one_dnn_share > 0 and rng.random() < self.one_dnn_share:
            dnns = [self.dnn_pool[int(rng.integers(0, len(self.dnn_pool)))]] * n
        elif self.dnn_pool:
            dnns = [self.dnn_pool[int(j)] for j in rng.integers(0, len(self.dnn_pool), size=n)]
        else:
            dnns = [s.dnn for s in self.specs[:n]]
        return replace(self, num_ues=n, num_ues_range=None, dnn_pool=None, one_dnn_share=0.0,
                       ue_specs=tuple(UESpec(dnn=d) for d in dnns)).validated()

    @property
    def profiles(self) -> tuple[DNNProfile, ...]:
        return self._profiles

    def validated(self) -> EnvConfig:
        """Check every field; raise ValueError naming the field and the value."""
        if self.ue_specs is not None:
            if len(self.ue_specs) == 0:
                raise ValueError("ue_specs = []: at least one UE is needed")
            object.__setattr__(self, "num_ues", len(self.ue_specs))
        _check_int("num_ues", self.num_ues, 1)
        if self.num_ues > MAX_UES:
            raise ValueError(
                f"num_ues = {self.num_ues} is above the maximum of {MAX_UES}: training it with one actor per UE "
                f"would need about {training_memory_gib(self.num_ues):,.0f} GiB of memory "
                f"({MAX_UES} UEs: about {training_memory_gib(MAX_UES):.1f} GiB)")
        if self.ue_specs is None:
            if not isinstance(self.dnn, str) or not dnn_names(self.dnn):
                raise ValueError(f"dnn = {self.dnn!r} must be a DNN name or a comma-separated list, one per UE")
            if len(dnn_names(self.dnn)) not in (1, self.num_ues):
                raise ValueError(f"dnn = {self.dnn!r} names {len(dnn_names(self.dnn))} DNNs for num_ues = "
                                 f"{self.num_ues}: give one DNN for every UE or one per UE")
        _check_int("num_channels", self.num_channels, 1)
        for name in ("frame_s", "bandwidth_hz", "noise_w", "path_loss_exponent", "task_rate",
                     "p_max_w", "d_min_m"):
            _check_pos(name, getattr(self, name))
        _check_pos("d_max_m", self.d_max_m)
        if self.d_max_m > MAX_DISTANCE_M:
            raise ValueError(f"d_max_m = {self.d_max_m!r} is above {MAX_DISTANCE_M:g} m (no radio cell is larger: "
                             "Eq. 5's path loss would underflow)")
        if self.d_max_m < self.d_min_m:
            raise ValueError(f"d_max_m = {self.d_max_m!r} must be >= d_min_m = {self.d_min_m!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, int | float) or not (
            math.isfinite(self.beta) and self.beta >= 0
        ):
            raise ValueError(f"beta = {self.beta!r} must be a finite number >= 0")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario = {self.scenario!r} must be one of {SCENARIOS}")
        if self.max_frames is not None:
            _check_int("max_frames", self.max_frames, 1)
        if not isinstance(self.dynamics, Dynamics):
            raise ValueError(f"dynamics = {self.dynamics!r} must be a Dynamics (or its dict)")
        if self.scenario == "dynamic" and not self.dynamics.active:  # the preset
            object.__setattr__(self, "dynamics", DYNAMIC)
        if isinstance(self.dynamics.arrival_rate, tuple) and self.num_ues_range is not None:
            raise ValueError("dynamics.arrival_rate: one rate per UE needs a fixed N (not num_ues_range)")
        self.dynamics.validated(self.num_ues)
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode = {self.obs_mode!r} must be one of {OBS_MODES}")
        if self.max_ues is not None:
            _check_int("max_ues", self.max_ues, 1)
        if self.max_ues is not None and self.max_ues > MAX_UES:
            raise ValueError(f"max_ues = {self.max_ues} is above the maximum of {MAX_UES} UEs per cell")
        if self.num_ues_range is not None:
            r = self.num_ues_range
            if not (isinstance(r, tuple) and len(r) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                  for x in r) and 1 <= r[0] <= r[1]):
                raise ValueError(f"num_ues_range = {r!r} must be two integers 1 <= lo <= hi")
            if self.ue_specs is not None:
                raise ValueError("num_ues_range: give either ue_specs (a fixed cell) or a range of N, not both")
            if self.obs_mode != "agent":
                raise ValueError(f"num_ues_range = {r!r} needs obs_mode = 'agent' (the global state's size "
                                 "is tied to N; with mahppo train: --actor shared)")
            object.__setattr__(self, "num_ues", r[1])
        if self.dnn_pool is not None:
            if not (isinstance(self.dnn_pool, tuple) and self.dnn_pool
                    and all(isinstance(d, str) and d for d in self.dnn_pool)):
                raise ValueError(f"dnn_pool = {self.dnn_pool!r} must be a non-empty list of DNN names")
            if self.ue_specs is not None:
                raise ValueError("dnn_pool: give either ue_specs (a fixed cell) or a DNN pool, not both")
        v = self.one_dnn_share
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ValueError(f"one_dnn_share = {v!r} must be a number in [0, 1]")
        if v and self.dnn_pool is None:
            raise ValueError(f"one_dnn_share = {v!r} needs a DNN pool (dnn_pool; with mahppo: --num-ues LO-HI "
                             "--dnn a,b,...)")
        if self.obs_mode == "agent" and self.max_ues is not None and self.num_ues > self.max_ues:
            raise ValueError(f"num_ues = {self.num_ues} exceeds max_ues = {self.max_ues} (raise or drop max_ues, "
                             "--max-ues)")
        if self.render_mode not in (None, "ansi", "human"):
            raise ValueError(f"render_mode = {self.render_mode!r} must be None, 'ansi' or 'human'")
        if self.profile_file is not None and not Path(self.profile_file).is_file():
            raise FileNotFoundError(f"profile_file = {self.profile_file!r}: no such file")
        for i, spec in enumerate(self.specs):
            if spec.distance_m is not None:
                _check_pos(f"ue_specs[{i}].distance_m", spec.distance_m)
                if spec.distance_m > self.d_max_m:
                    raise ValueError(f"ue_specs[{i}].distance_m = {spec.distance_m!r} is above d_max_m = "
                                     f"{self.d_max_m!r} (the cell's radius)")
            if spec.num_tasks is not None:
                _check_int(f"ue_specs[{i}].num_tasks", spec.num_tasks, 1)
        cache: dict[str, DNNProfile] = {}
        for dnn in self.dnn_pool or ():
            cache[dnn] = resolve_profile(dnn, self.profile_file)
        profiles = []
        for spec in self.specs:
            if spec.dnn not in cache:
                cache[spec.dnn] = resolve_profile(spec.dnn, self.profile_file)
            profiles.append(cache[spec.dnn])
        object.__setattr__(self, "_profiles", tuple(profiles))
        return self

    def with_updates(self, **changes: object) -> EnvConfig:
        """This config with ``changes`` (by field name; JSON-like values accepted), validated; unknown names
        raise ``ValueError`` naming them."""
        known = self.option_names()
        for key in changes:
            if key not in known:
                raise ValueError(f"unknown env option {key!r} (known: {', '.join(sorted(known))})")
        specs = changes.get("ue_specs")
        if specs is not None:
            if isinstance(specs, str | bytes) or not hasattr(specs, "__len__"):
                raise ValueError(f"ue_specs = {specs!r} must be a list of UE specs")
            n = changes.get("num_ues")
            if n is not None and n != len(specs):
                raise ValueError(f"num_ues = {n!r} conflicts with ue_specs ({len(specs)} UEs): give one of "
                                 "them, or as many specs as UEs")
            changes["ue_specs"] = tuple(_as_spec(s, i) for i, s in enumerate(specs))  # type: ignore[arg-type]
        if "num_ues" in changes and "ue_specs" not in changes and self.ue_specs is not None \
                and changes["num_ues"] != len(self.ue_specs):
            raise ValueError(f"num_ues = {changes['num_ues']!r} conflicts with ue_specs ({len(self.ue_specs)} UEs)")
        if changes.get("profile_file") is not None:
            changes["profile_file"] = str(changes["profile_file"])
        for key in ("num_ues_range", "dnn_pool"):
            if isinstance(changes.get(key), list):
                changes[key] = tuple(changes[key])  # type: ignore[arg-type]
        if not isinstance(changes.get("dynamics", Dynamics()), Dynamics):  # its dict, or None: off
            changes["dynamics"] = Dynamics.from_dict(changes["dynamics"] or {})  # type: ignore[arg-type]
        return replace(self, **changes).validated()  # type: ignore[arg-type]

    def cell(self) -> EnvConfig:
        """The fixed cell a policy trained on this config decides (no scenario, dynamics, episode cut or per-episode
        draws: a varying config gives its nominal N and its ``dnn``); serving and evaluation start from it."""
        return self.with_updates(scenario="train", dynamics=None, max_frames=None, render_mode=None,
                                 num_ues_range=None, dnn_pool=None, one_dnn_share=0.0)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able fields (what ``from_dict`` reads back); ``ue_specs`` as a list of dicts."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name.startswith("_") or f.name == "render_mode":
                continue
            v = getattr(self, f.name)
            if f.name == "ue_specs" and v is not None:
                v = [{k: x for k, x in vars(s).items() if x is not None} for s in v]
            elif f.name == "dynamics":
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EnvConfig:
        """The inverse of ``to_dict``; unknown keys and bad values raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"env config = {data!r} must be a mapping")
        return cls.from_kwargs(**data)


def dnn_names(dnn: str) -> list[str]:
    """``"resnet18,vgg11"`` -> ``["resnet18", "vgg11"]`` (one name: every UE runs it)."""
    return [name.strip() for name in dnn.split(",") if name.strip()]


def _as_spec(spec: object, i: int) -> UESpec:
    if isinstance(spec, UESpec):
        return spec
    if isinstance(spec, str):
        return UESpec(dnn=spec)
    if isinstance(spec, dict):
        unknown = set(spec) - {"dnn", "distance_m", "num_tasks"}
        if unknown:
            raise ValueError(f"ue_specs[{i}]: unknown field {sorted(unknown)[0]!r}")
        return UESpec(**spec)
    raise ValueError(f"ue_specs[{i}] = {spec!r}: expected a UESpec, a dict or a DNN name")


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} = {value!r} must be an integer >= {lo}")


def _check_nonneg(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} = {value!r} must be a finite number >= 0")


def _check_pos(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name} = {value!r} must be a finite number > 0")


def check_fields(cls: type, data: object, where: str) -> None:
    """``data`` must be a mapping of ``cls``'s dataclass fields: else ``ValueError`` naming ``where`` and the key."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} = {data!r} must be a mapping of its fields")
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ValueError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(known))})")
