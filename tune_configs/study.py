"""Study files: one YAML file per sweep (``tune_configs/studies/NAME.yaml``); add a study by adding a file.

A study file::

    name: lr                      # the MLflow experiment is ``tune-<name>``
    title: "Learning rate (Fig. 9a)"
    plot: curves                  # curves: reward (and value loss) vs env steps; tradeoff: Fig. 12
    grid: {lr: [1.0e-5, 1.0e-4]}  # cartesian product over the keys ...
    points:                       # ... or explicit points (several keys moving together)
      - {memory_size: 256, batch_size: 64}
    vary: memory_size             # the key a figure is drawn over (default: the first swept key)
    fixed: {num_ues: 5, beta: 0.47}
    seeds: 5                      # repeats per point (an int: seeds 0..n-1, or a list)
    steps: 50000                  # env steps per trial
    eval_every: 2                 # test-scenario evaluation every so many iterations
    checkpoint_every: 5           # Tune checkpoints (what a retried or resumed trial restarts from)

Everything is checked before Ray starts; a bad key or value raises ``ValueError`` naming it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STUDIES_DIR = Path(__file__).parent / "studies"
# Keys the study itself owns (budget, seeds, evaluation cadence) or that belong to the launcher.
STUDY_OWNED = ("steps", "seed", "eval_every", "checkpoint_every", "address", "mlflow", "mlflow_uri",
               "mlflow_experiment", "num_env_runners", "num_learners", "num_gpus_per_learner")
STUDY_KEYS = ("name", "title", "description", "plot", "grid", "points", "vary", "fixed", "seeds", "steps",
              "eval_every", "checkpoint_every")
PLOTS = ("curves", "tradeoff")


def trial_keys() -> tuple[str, ...]:
    """What a study may sweep or fix: every ``Experiment`` field (env, algo, run) the study does not own."""
    from mahppo.algorithms.experiment import flat_keys

    return tuple(k for k in flat_keys() if k not in STUDY_OWNED)


def study_base():
    """The Experiment every trial starts from: the default one (the default cell, 60-frame training episodes)
    with the paper's per-UE actors (a study that sets ``actor: shared`` gets the agent-centric observation)."""
    from mahppo.algorithms.experiment import Experiment

    return Experiment().with_flat({"actor": "per-ue"})


def trial_experiment(config: dict[str, Any]):
    """The ``Experiment`` of a Tune trial's config (see ``Study.param_space``)."""
    cfg = flat_config(config)
    updates = {k: v for k, v in cfg.items() if k not in ("study", "vary") and not k.startswith("_")}
    return study_base().with_flat(updates, where=f"point {_label(cfg, str(cfg.get('vary')))}")


@dataclass
class Study:
    """A validated sweep: the points, the seeds and the budget of each trial."""

    name: str
    points: list[dict[str, Any]]
    vary: str
    fixed: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 50_000
    eval_every: int = 2
    checkpoint_every: int = 5
    plot: str = "curves"
    title: str = ""
    description: str = ""
    source: str = ""

    @property
    def experiment(self) -> str:
        """The MLflow experiment (and Tune experiment directory) of this study."""
        return f"tune-{self.name}"

    def trial_configs(self) -> list[dict[str, Any]]:
        """Every trial's compact config: defaults < fixed < point, plus seed and budget."""
        return [self.trial_config(p, s) for p in self.points for s in self.seeds]

    def trial_config(self, point: dict[str, Any], seed: int) -> dict[str, Any]:
        return {**self.fixed, **point, "seed": seed, "steps": self.steps, "eval_every": self.eval_every,
                "checkpoint_every": self.checkpoint_every, "study": self.name, "vary": self.vary}

    def param_space(self) -> dict[str, Any]:
        """Tune's param space: a grid over the points (``point``, a nested dict) and the seeds."""
        from ray import tune

        base = {k: v for k, v in self.trial_config({}, 0).items() if k != "seed"}
        return {**base, "point": tune.grid_search(self.points), "seed": tune.grid_search(self.seeds)}

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def with_overrides(self, samples: int | None = None, steps: int | None = None,
                       scenario: str | None = None) -> Study:
        """``--samples S`` (seeds 0..S-1), ``--steps T`` and ``--scenario dynamic`` (every trial trains on the
        dynamic cell, ``marl_env.config.DYNAMIC``), validated."""
        if scenario is not None:
            self.fixed = {**self.fixed, "scenario": scenario}
        if samples is not None:
            _check_int("--samples", samples, 1)
            self.seeds = list(range(samples))
        if steps is not None:
            _check_int("--steps", steps, 1)
            self.steps = steps
        return self.validate()

    def validate(self) -> Study:
        """Check every trial's Experiment (the checks of ``marl_env`` and ``MAHPPOParams``)."""
        _check_int("steps", self.steps, 1)
        _check_int("eval_every", self.eval_every, 1)
        _check_int("checkpoint_every", self.checkpoint_every, 1)
        if self.plot not in PLOTS:
            raise ValueError(f"plot = {self.plot!r} must be one of {PLOTS}")
        for cfg in self.trial_configs():
            try:
                trial_experiment(cfg)
            except (ValueError, TypeError) as exc:
                raise ValueError(str(exc)) from None
        return self


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A Tune trial config (``point`` nested, see ``Study.param_space``) as one flat compact dict."""
    cfg = {k: v for k, v in config.items() if k != "point"}
    cfg.update(config.get("point") or {})
    return cfg


def _label(cfg: dict[str, Any], vary: str) -> str:
    return f"{vary}={cfg.get(vary)}"


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} = {value!r} must be an integer >= {lo}")


def _check_keys(where: str, data: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")


def study_names() -> list[str]:
    """The shipped studies (file stems under ``tune_configs/studies``)."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def study_path(spec: str | Path) -> Path:
    """A shipped study name (``lr``) or a path to a study file."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise FileNotFoundError(f"study file {str(p)!r} does not exist")
        return p
    shipped = STUDIES_DIR / f"{spec}.yaml"
    if not shipped.is_file():
        raise ValueError(f"unknown study {str(spec)!r}: use one of {', '.join(study_names())} or a YAML file")
    return shipped


def load_study(spec: str | Path) -> Study:
    """Read and validate a study file (by shipped name or path)."""
    import yaml

    path = study_path(spec)
    try:
        data = yaml.load(path.read_text(), Loader=study_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    return parse_study(data, source=str(path))


def study_loader() -> type:
    """PyYAML's ``SafeLoader`` reading numbers as YAML 1.2 does: ``1e-4`` is a float (YAML 1.1, and so
    ``yaml.safe_load``, wants ``1.0e-4`` and reads ``1e-4`` as a string)."""
    import re

    import yaml

    class StudyLoader(yaml.SafeLoader):
        pass

    StudyLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return StudyLoader


def parse_study(data: Any, source: str = "<study>") -> Study:
    """A ``Study`` from the parsed YAML mapping; every error names the key."""
    where = Path(source).name
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a study file must be a mapping of {', '.join(STUDY_KEYS)}")
    _check_keys(where, data, STUDY_KEYS)
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"{where}: name = {name!r} must be letters, digits, '-' or '_'")
    grid, points = data.get("grid"), data.get("points")
    if (grid is None) == (points is None):
        raise ValueError(f"{where}: give exactly one of 'grid' (key -> values) or 'points' (a list of mappings)")
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise ValueError(f"{where}: grid must be a non-empty mapping of key -> list of values")
        _check_keys(f"{where}: grid", grid, trial_keys())
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}: grid.{key} must be a non-empty list of values")
        keys = list(grid)
        pts = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]
    else:
        if not isinstance(points, list) or not points:
            raise ValueError(f"{where}: points must be a non-empty list of mappings")
        pts = []
        for i, p in enumerate(points):
            if not isinstance(p, dict) or not p:
                raise ValueError(f"{where}: points[{i}] must be a non-empty mapping of key -> value")
            _check_keys(f"{where}: points[{i}]", p, trial_keys())
            pts.append(dict(p))
        keys = list(pts[0])
    if not isinstance(data.get("fixed") or {}, dict):
        raise ValueError(f"{where}: fixed must be a mapping of key -> value")
    fixed = dict(data.get("fixed") or {})
    _check_keys(f"{where}: fixed", fixed, trial_keys())
    vary = data.get("vary", keys[0])
    if vary not in keys:
        raise ValueError(f"{where}: vary = {vary!r} is not a swept key ({', '.join(keys)})")
    seeds = data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _check_int(f"{where}: seeds", seeds, 1)
        seeds = list(range(seeds))
    elif not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool)
                                                        for s in seeds)):
        raise ValueError(f"{where}: seeds = {seeds!r} must be a count >= 1 or a list of integer seeds")
    base = Path(source).parent
    for mapping in [fixed, *pts]:  # trials run in their own directories: make profile paths absolute
        if isinstance(mapping.get("profile_file"), str):
            prof = Path(mapping["profile_file"]).expanduser()
            if not prof.is_absolute():
                prof = base / prof if (base / prof).exists() else prof.resolve()
            mapping["profile_file"] = str(prof)
    study = Study(name=name, points=pts, vary=vary, fixed=dict(fixed), seeds=list(seeds),
                  steps=data.get("steps", 50_000), eval_every=data.get("eval_every", 2),
                  checkpoint_every=data.get("checkpoint_every", 5), plot=data.get("plot", "curves"),
                  title=str(data.get("title") or name), description=str(data.get("description") or ""),
                  source=source)
    try:
        return study.validate()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
