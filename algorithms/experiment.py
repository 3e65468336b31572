"""One experiment config for every entry point: ``Experiment(env, algo, run)``.

- ``env``: the MEC system (``marl_env.config.EnvConfig``, Sec. 3 / 6.3.1),
- ``algo``: MAHPPO's hyperparameters (``MAHPPOParams``, the paper's names, Sec. 6.3.1),
- ``run``: how a training run is executed and tracked (``RunSettings``: budget, seed, scale-out).

``to_dict`` / ``from_dict`` are the one serialisation: ``run.json``, the checkpoint sidecar, study
files (flat keys, see ``flat_keys``), ``/v1/model`` and MLflow params (``flat()``) all use it. Every
bad value raises ``ValueError`` naming the field (``env.num_ues = 0 must be ...``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from mahppo.algorithms.params import ACTOR_LR, AUTO_WARM_START_MIN_UES, WARM_START_LR, MAHPPOParams
from mahppo.marl_env.config import EnvConfig, check_fields

ALGOS = ("mahppo", "ippo")
SAMPLERS = ("vector", "rllib")  # algorithms/rllib/sampler.py's VectorEnvRunner, or RLlib's own loop


@dataclass(frozen=True)
class RunSettings:
    """How one training run is executed and tracked."""

    steps: int = field(default=50_000, metadata={
        "help": "env steps (frames) to train, the warm start's teacher frames included; the run stops after the "
        "first PPO iteration (memory_size steps) that reaches it, so it may go past it by one iteration, or by "
        "the whole warm start when that alone is longer: `mahppo train` prints this plan before it starts"})
    seed: int = field(default=0, metadata={"help": "seed of the RLlib algorithm and the training envs"})
    algo: str = field(default="mahppo", metadata={
        "help": "mahppo; ippo = RLlib's stock PPO with per-UE value functions (ablation)", "choices": ALGOS})
    num_env_runners: int = field(default=0, metadata={"help": "remote samplers (0: sample in the driver)"})
    num_envs_per_env_runner: int = field(default=8, metadata={"help": "vectorised envs per sampler"})
    num_learners: int = field(default=0, metadata={"help": "remote learners (0: learn in the driver)"})
    num_gpus_per_learner: float = field(default=0.0, metadata={"help": "GPUs per learner (0 on CPU machines)"})
    sampler: str = field(default="vector", metadata={
        "help": "vector: vectorised env runner (algorithms/rllib/sampler.py); rllib: RLlib's own sampling loop",
        "choices": SAMPLERS})
    checkpoint_every: int = field(default=5, metadata={"help": "checkpoint every so many iterations"})
    eval_every: int = field(default=2, metadata={"help": "test-scenario evaluation every so many iterations"})
    address: str | None = field(default=None, metadata={"help": "Ray cluster address (default: a local Ray)"})
    mlflow: bool = field(default=False, metadata={"help": "track in MLflow (default store ./mlflow.db)"})
    mlflow_uri: str | None = field(default=None, metadata={"help": "MLflow tracking URI (implies --mlflow)"})
    mlflow_experiment: str = field(default="mahppo-train", metadata={"help": "MLflow experiment name"})

    def validate(self) -> RunSettings:
        for name in ("steps", "checkpoint_every", "eval_every", "num_envs_per_env_runner"):
            _check_int(name, getattr(self, name), 1)
        for name in ("num_env_runners", "num_learners", "seed"):
            _check_int(name, getattr(self, name), 0)
        v = self.num_gpus_per_learner
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"num_gpus_per_learner = {v!r} must be a number >= 0")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler = {self.sampler!r} must be one of {SAMPLERS}")
        if self.algo not in ALGOS:
            raise ValueError(f"algo = {self.algo!r} must be one of {ALGOS}")
        for name in ("mlflow",):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} = {getattr(self, name)!r} must be true or false")
        for name in ("address", "mlflow_uri"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{name} = {v!r} must be a string")
        return self

    @property
    def tracked(self) -> bool:
        return self.mlflow or bool(self.mlflow_uri)


def default_train_env() -> EnvConfig:
    """The default cell (``EnvConfig``'s: N = 3 ResNet18 UEs, C = 2, beta = 0.47, the headline cell of Fig. 8)
    with 60-frame training episodes and the default (shared) actor's observation."""
    return EnvConfig(max_frames=60, obs_mode="agent").validated()


@dataclass(frozen=True)
class Experiment:
    """Everything a training run needs (and all it records)."""

    env: EnvConfig = field(default_factory=default_train_env)
    algo: MAHPPOParams = field(default_factory=MAHPPOParams)
    run: RunSettings = field(default_factory=RunSettings)

    SECTIONS = ("env", "algo", "run")

    def validate(self) -> Experiment:
        for name, part in (("env", self.env), ("algo", self.algo), ("run", self.run)):
            try:
                part.validated() if name == "env" else part.validate()
            except ValueError as exc:
                raise ValueError(f"{name}.{exc}") from None
        wanted = "agent" if self.algo.actor == "shared" else "global"
        if self.run.algo == "mahppo" and self.env.obs_mode != wanted:
            raise ValueError(f"env.obs_mode = {self.env.obs_mode!r}: algo.actor = {self.algo.actor!r} needs "
                             f"obs_mode = {wanted!r}")
        if self.run.algo == "ippo" and (self.env.obs_mode != "global" or self.algo.actor != "per-ue"):
            raise ValueError("run.algo = 'ippo' (the ablation) takes the paper's per-UE actors on the global state")
        if self.algo.warm_start in ("rotate", "expert") and (self.run.algo != "mahppo" or self.algo.actor != "shared"):
            raise ValueError(f"algo.warm_start = {self.algo.warm_start!r} needs run.algo = 'mahppo' with "
                             "algo.actor = 'shared': the teacher ranks UEs by work left, which the shared actor's "
                             "load-rank token carries (the per-UE actors, on the global state, fit it poorly: "
                             "docs/training.md)")
        if self.algo.warm_start == "expert" and self.env.dynamics.active:
            raise ValueError("algo.warm_start = 'expert' needs a cell without dynamics: its teacher's rollouts replay "
                             "the episode's own future draws (exact only on a static cell; docs/learning.md)")
        return self

    @property
    def warm_start(self) -> str:
        """The warm start in effect (``algorithms/acting/teacher.py``): ``algo.warm_start``, with ``"auto"`` read as
        ``"rotate"`` for the shared actor when the training cell varies (N drawn from a range, or DNNs from a
        pool) or has at least ``AUTO_WARM_START_MIN_UES`` UEs, else ``"none"``: measured better for the
        mixed-N policy and per N at N = 5, 7 and 10, worse at N = 3 (docs/experiments/2026-11-30-warm-start.md)."""
        ws = self.algo.warm_start
        if ws == "auto":
            big = self.env.varies or self.env.num_ues >= AUTO_WARM_START_MIN_UES
            return "rotate" if big and self.run.algo == "mahppo" and self.algo.actor == "shared" else "none"
        return ws

    @property
    def learning_rate(self) -> float:
        """The rate in effect (the one place it is resolved): ``algo.lr``; unset, ``WARM_START_LR`` for a
        warm-started cell that varies (the measured better rate there), else the actor's ``ACTOR_LR``."""
        if self.algo.lr is not None:
            return float(self.algo.lr)
        if self.warm_start != "none" and self.env.varies:
            return WARM_START_LR
        return ACTOR_LR[self.algo.actor]

    def lr_schedule(self) -> float | list[list[float]]:
        """RLlib's ``lr``: ``learning_rate``, constant or (``algo.lr_schedule = "linear"``) decaying linearly to
        a hundredth over ``run.steps`` sampled env steps."""
        lr = self.learning_rate
        return [[0, lr], [int(self.run.steps), lr * 0.01]] if self.algo.lr_schedule == "linear" else lr

    def to_dict(self, *, secrets: bool = False) -> dict[str, dict[str, Any]]:
        """What run.json, sidecars and MLflow params hold: the tracking URI without its credentials
        (``--resume`` takes them from ``--mlflow-uri`` / ``$MLFLOW_TRACKING_URI`` again);
        ``secrets=True`` only for round trips in memory."""
        from mahppo.algorithms.runs.tracking import redact_uri

        run = asdict(self.run)
        if not secrets:
            run["mlflow_uri"] = redact_uri(run["mlflow_uri"])
        return {"env": self.env.to_dict(), "algo": asdict(self.algo), "run": run}

    @classmethod
    def from_dict(cls, data: Any, where: str = "experiment", consistent: bool = True) -> Experiment:
        """Nested ``{"env": ..., "algo": ..., "run": ...}`` (missing sections take the defaults). Every field is
        checked by type and range; ``consistent``: the sections together too (``validate``)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} = {data!r} must be a mapping of env, algo, run")
        for key in data:
            if key not in cls.SECTIONS:
                raise ValueError(f"{where}: unknown section {key!r} (known: {', '.join(cls.SECTIONS)})")
        base = cls()
        try:
            env = EnvConfig.from_dict(data["env"]) if "env" in data else base.env
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: env.{exc}") from None
        algo = _build(MAHPPOParams, data.get("algo", {}), f"{where}: algo")
        run = _build(RunSettings, data.get("run", {}), f"{where}: run")
        if not consistent:
            return cls(env=env, algo=algo, run=run)
        try:
            return cls(env=env, algo=algo, run=run).validate()
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def with_flat(self, updates: dict[str, Any], where: str = "experiment") -> Experiment:
        """Apply flat updates (``{"num_ues": 5, "lr": 3e-4, "seed": 1}``) by field name (study files, CLI)."""
        owner = flat_keys()
        parts: dict[str, dict[str, Any]] = {s: {} for s in self.SECTIONS}
        for key, value in updates.items():
            if key not in owner:
                raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(owner))})")
            parts[owner[key]][key] = value
        data = self.to_dict(secrets=True)
        for section, changes in parts.items():
            data[section].update(changes)
        if "ue_specs" in parts["env"] and "num_ues" not in parts["env"] and parts["env"]["ue_specs"]:
            data["env"]["num_ues"] = len(parts["env"]["ue_specs"])
        if "ue_specs" not in parts["env"] and "num_ues" in parts["env"]:
            data["env"]["ue_specs"] = None
        if parts["run"].get("algo") == "ippo" and "actor" not in parts["algo"]:  # the ablation: per-UE actors
            data["algo"]["actor"] = parts["algo"]["actor"] = "per-ue"
        if "actor" in parts["algo"] and "obs_mode" not in parts["env"]:  # the observation each actor takes
            data["env"]["obs_mode"] = "agent" if parts["algo"]["actor"] == "shared" else "global"
        return Experiment.from_dict(data, where)

    def flat(self) -> dict[str, Any]:
        """``{"env.num_ues": 3, "algo.lr": 1e-4, ...}``: MLflow params and report columns (``algo.lr``
        is the rate in effect, the default when unset; ``algo.warm_start`` the warm start in
        effect, "auto" resolved)."""
        out = {f"{s}.{k}": v for s, part in self.to_dict().items() for k, v in part.items()}
        out["algo.lr"] = self.learning_rate
        out["algo.warm_start"] = self.warm_start
        return out

    def replace(self, **parts: Any) -> Experiment:
        return replace(self, **parts).validate()

    @property
    def label(self) -> str:
        """``mahppo-n3-resnet18``: names runs and policies."""
        dnns = sorted({s.dnn for s in self.env.specs})
        return f"{self.run.algo}-n{self.env.num_ues}-{'+'.join(dnns)}"


def flat_keys() -> dict[str, str]:
    """Every flat key a study file or the CLI may set -> its section (derived from the dataclasses)."""
    out: dict[str, str] = {}
    for section, cls in (("env", EnvConfig), ("algo", MAHPPOParams), ("run", RunSettings)):
        for f in fields(cls):
            if not f.name.startswith("_") and f.name != "render_mode":
                out[f.name] = section
    return out


def _build(cls: type, data: Any, where: str) -> Any:
    check_fields(cls, data, where)
    try:
        return cls(**data).validate()
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} = {value!r} must be an integer >= {lo}")
