"""``mahppo train``: train MAHPPO (or the IPPO ablation) on a local or remote Ray, with checkpoints,
a progress bar, a final comparison against every baseline, a training-curve PNG and MLflow tracking.

Output directory::

    run.json                 the settings (what --resume reads)
    curve.csv                one row per iteration: env steps, training return, test-scenario metrics
    checkpoints/iter_NNNNNN  RLlib checkpoints; a checkpoint is complete once mahppo_policy.json exists
    evaluation.json / .md    the trained policy against every baseline on the test scenario
    training_curve.png       Fig. 8 style: test-scenario episode reward vs env steps, Local as a line
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mahppo.algorithms.mahppo import MAHPPOParams
from mahppo.algorithms.policy import POLICY_META

CURVE_FIELDS = ("iteration", "env_steps", "time_s", "train_return_per_ue", "reward",
                "frame_latency_per_task_s", "energy_per_task_j", "latency_per_task_s", "vf_loss")
KEEP_CHECKPOINTS = 3


@dataclass
class TrainSettings:
    """Everything one training run needs; saved as ``run.json`` so a run can resume."""

    num_ues: int = 3
    num_channels: int = 2
    dnn: str = "resnet18"
    profile_file: str | None = None
    beta: float = 0.47
    steps: int = 50_000
    seed: int = 0
    algo: str = "mahppo"
    max_frames: int = 60  # training episodes are cut after 60 frames, as the authors do
    params: MAHPPOParams = field(default_factory=MAHPPOParams)
    num_env_runners: int = 0
    num_envs_per_env_runner: int = 8
    num_learners: int = 0
    checkpoint_every: int = 5
    eval_every: int = 2
    address: str | None = None
    mlflow: bool = False
    mlflow_uri: str | None = None
    mlflow_experiment: str = "mahppo-train"

    def env_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"num_ues": self.num_ues, "num_channels": self.num_channels, "dnn": self.dnn,
                               "beta": self.beta, "max_frames": self.max_frames}
        if self.profile_file:
            cfg["profile_file"] = str(Path(self.profile_file).resolve())
        return cfg

    def validate(self) -> TrainSettings:
        from mahppo.marl_env.config import EnvConfig

        EnvConfig.from_kwargs(**self.env_config())  # names the bad env field
        self.params.validate()
        for name in ("steps", "checkpoint_every", "eval_every", "num_envs_per_env_runner", "max_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} = {v!r} must be an integer >= 1")
        if self.algo not in ("mahppo", "ippo"):
            raise ValueError(f"algo = {self.algo!r} must be 'mahppo' or 'ippo'")
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSettings:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"run.json: unknown setting {key!r}")
        params = data.get("params", {})
        param_names = {f.name for f in fields(MAHPPOParams)}
        for key in params:
            if key not in param_names:
                raise ValueError(f"run.json: unknown hyperparameter params.{key}")
        data["params"] = MAHPPOParams(**params)
        return cls(**data)


def init_ray(address: str | None = None) -> None:
    """Connect to ``address`` (or ``$RAY_ADDRESS``), else start a local Ray sized to this machine."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)


def set_torch_threads(n: int = 1) -> None:
    """Small MLPs: one thread each for sampler and learner, so they do not fight over 2 cores."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    torch.set_num_threads(n)


def _checkpoints(out: Path) -> list[Path]:
    return sorted(p.parent for p in (out / "checkpoints").glob(f"*/{POLICY_META}"))


def save_checkpoint(algo: Any, out: Path, settings: TrainSettings, iteration: int, env_steps: int) -> Path:
    """RLlib checkpoint + our metadata; the metadata file is written last (marks it complete)."""
    ckpt = out / "checkpoints" / f"iter_{iteration:06d}"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    algo.save_to_path(str(ckpt))
    meta = {
        "policy_id": f"{settings.algo}-n{settings.num_ues}-{settings.dnn}-it{iteration}-{uuid.uuid4().hex[:8]}",
        "algo": settings.algo,
        "iteration": iteration,
        "env_steps": env_steps,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "env_config": settings.env_config(),
        "params": asdict(settings.params),
        "seed": settings.seed,
    }
    tmp = ckpt / (POLICY_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(ckpt / POLICY_META)
    for old in _checkpoints(out)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return ckpt


def _read_curve(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)
                if int(float(row["iteration"])) <= upto]


def _write_curve(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def curve_row(result: dict[str, Any], num_ues: int, t0: float) -> dict[str, float]:
    ts = result.get("test_scenario", {})
    ret = result.get("env_runners", {}).get("episode_return_mean")
    vf = result.get("learners", {}).get("critic", {}).get("vf_loss")
    if vf is None:  # IPPO: mean over the per-UE value functions
        vals = [v.get("vf_loss") for k, v in result.get("learners", {}).items() if k.startswith("ue_")]
        vals = [float(x) for x in vals if x is not None]
        vf = sum(vals) / len(vals) if vals else None
    row = {
        "iteration": float(result["training_iteration"]),
        "env_steps": float(result.get("num_env_steps_sampled_lifetime", 0)),
        "time_s": time.perf_counter() - t0,
    }
    if ret is not None and ret == ret:
        row["train_return_per_ue"] = float(ret) / num_ues  # RLlib sums the team reward over agents
    for k in ("reward", "frame_latency_per_task_s", "energy_per_task_j", "latency_per_task_s"):
        if k in ts:
            row[k] = float(ts[k])
    if vf is not None:
        row["vf_loss"] = float(vf)
    return row


def train(settings: TrainSettings, out: str | Path, *, resume: bool = False, progress: bool = True,
          final_eval: bool = True) -> dict[str, Any]:
    """Train until ``settings.steps`` env steps; returns a summary (and writes everything to ``out``)."""
    from mahppo.algorithms.evaluation import TestScenarioEvaluation
    from mahppo.algorithms.mahppo import build_config
    from tqdm import tqdm

    settings.validate()
    out = Path(out).expanduser().resolve()  # RLlib checkpoints need absolute paths
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(settings.to_json(), indent=2))
    set_torch_threads(1)
    init_ray(settings.address)

    config = build_config(settings.env_config(), settings.params, algo=settings.algo,
                          num_env_runners=settings.num_env_runners,
                          num_envs_per_env_runner=settings.num_envs_per_env_runner,
                          num_learners=settings.num_learners, seed=settings.seed)
    config.callbacks(on_train_result=TestScenarioEvaluation(interval=settings.eval_every))
    algo = config.build_algo()
    rows: list[dict[str, float]] = []
    start_iter = 0
    tracker = None
    run_id_file = out / "mlflow_run_id"
    try:
        if resume:
            ckpts = _checkpoints(out)
            if ckpts:
                algo.restore_from_path(str(ckpts[-1]))
                meta = json.loads((ckpts[-1] / POLICY_META).read_text())
                start_iter = int(meta["iteration"])
                rows = _read_curve(out / "curve.csv", start_iter)
        if settings.mlflow:
            from mahppo.algorithms.tracking import MlflowRun

            prev = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
            tracker = MlflowRun(settings.mlflow_experiment, out.name, settings.to_json(), settings.mlflow_uri,
                                run_id=prev)
            run_id_file.write_text(tracker.run_id)
        t0 = time.perf_counter() - (rows[-1]["time_s"] if rows else 0.0)
        steps = int(rows[-1]["env_steps"]) if rows else 0
        bar = tqdm(total=settings.steps, initial=min(steps, settings.steps), unit="step", disable=not progress,
                   desc=f"{settings.algo} N={settings.num_ues}", dynamic_ncols=True)
        iteration = start_iter
        last_ckpt_iter = start_iter
        while steps < settings.steps:
            try:
                result = algo.train()
            except KeyboardInterrupt:  # Ctrl-C: keep everything up to the last finished iteration
                bar.close()
                if iteration > last_ckpt_iter:
                    _write_curve(out / "curve.csv", rows)
                    save_checkpoint(algo, out, settings, iteration, steps)
                print(f"interrupted: checkpoint of iteration {iteration} kept; continue with "
                      f"`mahppo train --resume {out}`")
                raise
            iteration = int(result["training_iteration"])
            row = curve_row(result, settings.num_ues, t0)
            rows.append(row)
            bar.update(min(int(row["env_steps"]), settings.steps) - min(steps, settings.steps))
            steps = int(row["env_steps"])
            bar.set_postfix(reward=f"{row.get('reward', float('nan')):.3f}",
                            lat=f"{row.get('frame_latency_per_task_s', float('nan')):.4f}",
                            energy=f"{row.get('energy_per_task_j', float('nan')):.4f}")
            if tracker is not None:
                tracker.log_metrics({k: v for k, v in row.items() if k not in ("iteration",)}, step=steps)
            if iteration % settings.checkpoint_every == 0:
                _write_curve(out / "curve.csv", rows)
                save_checkpoint(algo, out, settings, iteration, steps)
                last_ckpt_iter = iteration
        bar.close()
        _write_curve(out / "curve.csv", rows)
        if last_ckpt_iter != iteration or not _checkpoints(out):
            save_checkpoint(algo, out, settings, iteration, steps)
        wall = rows[-1]["time_s"] if rows else 0.0
        summary: dict[str, Any] = {"out": str(out), "algo": settings.algo, "env_steps": steps,
                                   "iterations": iteration, "wall_time_s": wall,
                                   "env_steps_per_s": steps / wall if wall > 0 else None,
                                   "checkpoint": str(_checkpoints(out)[-1])}
        if final_eval:
            from mahppo.algorithms.report import compare_with_baselines, plot_training_curve

            table = compare_with_baselines(out, settings)
            summary["evaluation"] = table
            plot_training_curve(out, rows, table, settings)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        if tracker is not None:
            if "evaluation" in summary:
                tracker.log_metrics({f"final.{k}": v for k, v in summary["evaluation"]["trained"].items()
                                     if isinstance(v, int | float)}, step=steps)
            for name in ("evaluation.json", "evaluation.md", "training_curve.png", "curve.csv", "summary.json"):
                tracker.log_artifacts(out / name)
            tracker.log_artifacts(summary["checkpoint"], artifact_path="checkpoint")
            tracker.end()
            tracker = None
        return summary
    except BaseException:
        if tracker is not None:
            tracker.end(status="KILLED")
        raise
    finally:
        algo.stop()
