"""Run the plan of ``tune_configs.paper`` (``mahppo reproduce``): pieces, resumably, then figures and table.

Output folder (``--out``, default ``docs/paper``)::

    pieces/<piece>.json      a finished piece: its spec and its results (what a rerun skips)
    profiles/jalad_<dnn>.json  JALAD on the authors' Jetson Nano (``compression.profiles.jalad_on_device``)
    fig*.png                 one PNG per panel
    paper_vs_ours.md         a table per figure: the paper's text, the authors' code, ours

Working folder (``--work``, default ``out/reproduce``): the compression runs and the Tune experiments
(``tune-paper-<piece>-<hash>``: an interrupted study is resumed, not restarted). Every trial is an MLflow run
(experiments ``tune-paper-*``); the compression pieces and the finished reproduction are runs of the
experiment ``paper-reproduce``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mahppo.tune_configs.paper import (
    BUDGETS,
    PANELS,
    PIECES,
    Budget,
    CompressPiece,
    StudyPiece,
    pieces_for,
    study_dict,
)

MLFLOW_EXPERIMENT = "paper-reproduce"
STOP_FILE = "STOP"  # created in --out while a run goes on: it starts no new piece (the rest stays for a rerun)
FINAL_KEYS = ("test_reward", "test_frame_latency_per_task_s", "test_energy_per_task_j", "test_latency_per_task_s",
              "vf_loss", "env_steps", "time_s")
CURVE_KEYS = ("test_reward", "vf_loss")


log = logging.getLogger(__name__)


def _log(msg: str) -> None:
    log.info(msg)


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:8]


def piece_file(out: Path, name: str) -> Path:
    return out / "pieces" / f"{name}.json"


def finished(out: Path, name: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded result of piece ``name`` if it finished with this very spec, else None."""
    f = piece_file(out, name)
    if not f.is_file():
        return None
    try:
        rec = json.loads(f.read_text())
    except ValueError:
        return None
    return rec if rec.get("spec") == json.loads(json.dumps(spec, default=str)) else None


def record(out: Path, name: str, spec: dict[str, Any], result: dict[str, Any], wall_s: float) -> dict[str, Any]:
    rec = {"piece": name, "spec": spec, "wall_s": round(wall_s, 1),
           "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "result": result}
    f = piece_file(out, name)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1, default=float) + "\n")
    tmp.replace(f)  # atomic: a crash leaves the piece unfinished, never half-recorded
    return json.loads(f.read_text())


def device_profile(model: str) -> list[dict[str, Any]]:
    """The authors' Jetson Nano points of ``model`` (the env's default profile file, raw entries)."""
    from mahppo.marl_env.profiles import DEFAULT_PROFILE_FILE

    ref = resources.files("mahppo.marl_env") / "data" / DEFAULT_PROFILE_FILE
    return json.loads(ref.read_text())["models"][model]


def run_compress_piece(piece: CompressPiece, spec: dict[str, Any], out: Path, work: Path, uri: str,
                       progress: bool) -> dict[str, Any]:
    """``mahppo compress`` (Ray tasks) for one DNN; writes JALAD's device profile into ``out/profiles``."""
    from mahppo.algorithms.runs.tracking import Tracker
    from mahppo.compression.pipeline import CompressJob, run_compress
    from mahppo.compression.profiles import jalad_on_device, write_profile_file
    from mahppo.compression.train import TrainConfig

    cfg = TrainConfig(ae_epochs=spec["epochs"], ft_epochs=spec["ft_epochs"], max_batches=spec["max_batches"])
    job = CompressJob(model=piece.model, rates=list(spec["rates"]), base_epochs=spec["base_epochs"], train=cfg,
                      out=str(work / "compress" / piece.model), repeats=spec["repeats"], progress=progress)
    res = run_compress(job, log=lambda m: None)
    host = json.loads(Path(res["profile"]).read_text())["models"]
    ours, jalad_host = host[piece.model], host[f"{piece.model}-jalad"]
    device = device_profile(piece.model)
    jalad = jalad_on_device(device, jalad_host, res["summary"]["profile"])
    path = write_profile_file(out / "profiles" / f"jalad_{piece.model}.json", {f"{piece.model}-jalad": jalad},
                              f"JALAD (8-bit quantization + zlib) on the authors' Jetson Nano: rates and "
                              f"entropy-coding time measured here by `mahppo compress` ({piece.model}), scaled "
                              "to the Jetson by the full model's latency ratio (compression.profiles."
                              "jalad_on_device)")
    result = {"model": piece.model, "points": [1, 2, 3, 4],
              "ours_rate": [e["compression_rate"] for e in ours[1:-1]],
              "jalad_rate": [e["compression_rate"] for e in jalad_host[1:-1]],
              "authors_rate": [e["compression_rate"] for e in device[1:-1]],
              "base_accuracy": res["summary"]["base_accuracy"], "selected": res["summary"]["selected"],
              "data": res["summary"]["data"]["kind"], "jalad_profile": str(path.resolve()),
              "jalad_device": jalad, "seconds": res["summary"]["seconds"]}
    t = Tracker.start(uri, MLFLOW_EXPERIMENT, f"compress {piece.model}", params=spec,
                      tags={"piece": piece.name})
    t.log_metrics({f"rate_ours_p{p}": r for p, r in zip(result["points"], result["ours_rate"], strict=True)}
                  | {f"rate_jalad_p{p}": r for p, r in zip(result["points"], result["jalad_rate"], strict=True)},
                  step=0)
    t.end()
    return result


def local_reference(config: dict[str, Any]) -> dict[str, float]:
    """The Local baseline on a trial config's test scenario (d = 50 m, K = 200, Sec. 6.3.1)."""
    from mahppo.algorithms.runs.run import test_scenario
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline
    from mahppo.tune_configs.study import trial_experiment

    m = evaluate(make_baseline("local"), test_scenario(trial_experiment(config).env))
    return {f"test_{k}": float(v) for k, v in m.items() if isinstance(v, int | float)}


def run_study_piece(piece: StudyPiece, spec: dict[str, Any], work: Path, uri: str,
                    verbose: int = 0) -> dict[str, Any]:
    """The piece's Tune study (resumed if an earlier invocation was interrupted); results read back from
    MLflow: per point, per seed, the final test-scenario metrics and the curves; Local per point."""
    from mahppo.algorithms.runs.tracking import client
    from mahppo.tune_configs.report import collect_runs, metric_history
    from mahppo.tune_configs.runner import experiment_dir, run_study
    from mahppo.tune_configs.study import parse_study

    study = parse_study({"name": f"paper-{piece.name}-{spec_hash(spec)}", **spec["study"]}, source=piece.name)
    storage = str(work / "tune")
    resume = (Path(experiment_dir(study.name, storage)) / "tuner.pkl").is_file()
    summary = run_study(study, storage=storage, uri=uri, resume=resume, verbose=verbose)
    if summary["unfinished"] or summary["errors"]:
        raise RuntimeError(f"piece {piece.name}: {summary['errors']} trial(s) failed, {summary['unfinished']} "
                           "unfinished; run again to resume")
    cl = client(uri)
    groups = collect_runs(study, uri, summary["sweep"])
    points = []
    for value, runs in groups.items():
        seeds = []
        for r in runs:
            curves = {k: [list(map(float, a)) for a in metric_history(cl, r.info.run_id, k)] for k in CURVE_KEYS}
            final = {k: r.data.metrics[k] for k in FINAL_KEYS if k in r.data.metrics}
            if curves["test_reward"][0]:
                final.setdefault("env_steps", curves["test_reward"][0][-1])  # the step it was logged at
            seeds.append({"seed": int(float(r.data.params.get("run.seed", 0))), "final": final,
                          "curves": curves, "mlflow_run_id": r.info.run_id})
        config = {**study.fixed, **next(p for p in study.points if _same(p.get(study.vary), value)), "seed": 0}
        points.append({"value": value, "config": config, "seeds": sorted(seeds, key=lambda s: s["seed"]),
                       "local": local_reference(config)})
    return {"study": study.name, "vary": study.vary, "sweep": summary["sweep"], "points": points}


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def piece_spec(name: str, budget: Budget, out: Path) -> dict[str, Any]:
    piece = PIECES[name]
    if isinstance(piece, CompressPiece):
        return piece.spec(budget)
    jalad = str((out / "profiles" / f"jalad_{piece.jalad}.json").resolve()) if piece.jalad else None
    return {"kind": "study", "study": study_dict(piece, budget, jalad)}


def run_plan(panels: list[str], budget: Budget, out: Path, work: Path, uri: str, *, address: str | None = None,
             overrides: dict[str, Any] | None = None, progress: bool = True, command: str = "", execute: bool = True,
             time_limit_s: float | None = None,
             log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run every piece the panels need that is not recorded as finished in ``out`` (no new piece starts after
    ``time_limit_s``, nor once ``out/STOP`` exists), then draw the panels whose pieces are recorded."""
    from mahppo.algorithms.runs.run import init_ray, set_torch_threads
    from mahppo.algorithms.runs.tracking import check_reachable

    overrides = {k: v for k, v in (overrides or {}).items() if v}
    budget = budget.with_overrides(**overrides)
    check_reachable(uri)
    names = pieces_for(panels)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = {}
    ran, skipped, failed = [], [], []
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    started = False
    for i, name in enumerate(names, 1):
        spec = piece_spec(name, budget, out)
        rec = finished(out, name, spec)
        if rec is not None:
            skipped.append(name)
            done[name] = rec
            log(f"[{i}/{len(names)}] {name}: finished earlier ({rec['finished_at']}), not rerun")
            continue
        late = time_limit_s is not None and time.perf_counter() - t_start > time_limit_s
        if not execute or late or (out / STOP_FILE).exists():
            why = "--no-run" if not execute else "--time-limit reached" if late else f"{out / STOP_FILE} exists"
            log(f"[{i}/{len(names)}] {name}: not run ({why})")
            failed.append(name)
            continue
        if any(dep not in done for dep in getattr(PIECES[name], "needs", ())):
            log(f"[{i}/{len(names)}] {name}: not run (needs {', '.join(PIECES[name].needs)})")
            failed.append(name)
            continue
        if not started:
            set_torch_threads(1)
            init_ray(address)
            started = True
        log(f"[{i}/{len(names)}] {name}: running")
        t0 = time.perf_counter()
        piece = PIECES[name]
        try:
            if isinstance(piece, CompressPiece):
                result = run_compress_piece(piece, spec, out, work, uri, progress)
            else:
                result = run_study_piece(piece, spec, work, uri, verbose=1 if progress else 0)
        except Exception as exc:  # one broken piece does not stop the others; a rerun retries it
            log(f"[{i}/{len(names)}] {name}: FAILED ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})")
            failed.append(name)
            continue
        done[name] = record(out, name, spec, result, time.perf_counter() - t0)
        ran.append(name)
        log(f"[{i}/{len(names)}] {name}: done in {time.perf_counter() - t0:.0f} s")
    from mahppo.tune_configs.paper_report import draw_panel, write_table

    drawn = [p for p in panels if PANELS[p].pieces[0] in done]  # a panel without its main piece is not drawn
    pngs = [draw_panel(p, done, out, budget) for p in drawn]
    machine = (f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: {len(ran)} piece(s) run, "
               f"{len(skipped)} recorded earlier, {len(failed)} not run "
               f"({', '.join(failed) or 'none'}); {time.perf_counter() - t_start:.0f} s of wall time on "
               f"{os.cpu_count()} CPU(s), 1-min load average {load_start:.1f} at the start and "
               f"{os.getloadavg()[0]:.1f} at the end.")
    history_file = out / "invocations.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    if ran:
        history.append(machine)
        history_file.write_text(json.dumps(history, indent=1) + "\n")
    table = write_table(panels, done, out, budget, overrides, command, history)
    from mahppo.algorithms.runs.tracking import Tracker

    t = Tracker.start(uri, MLFLOW_EXPERIMENT, f"reproduce {budget.name}",
                      params={"budget": budget.name, "panels": ",".join(panels), **overrides},
                      tags={"ran": ",".join(ran) or "-", "skipped": ",".join(skipped) or "-",
                            "failed": ",".join(failed) or "-"})
    for f in [*pngs, table]:
        t.client.log_artifact(t.run_id, str(f))
    t.end()
    return {"ran": ran, "skipped": skipped, "failed": failed, "pngs": [str(p) for p in pngs], "table": str(table)}


def budget_of(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"--budget {name!r}: must be one of {', '.join(BUDGETS)}")
    return BUDGETS[name]


__all__ = ["PANELS", "run_plan", "budget_of"]
