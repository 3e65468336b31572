"""Runs never overwrite each other, resume is never silently wrong, and acting from a run (evaluate,
the Serve app's loader) never unpickles: the CLI on copies of the session's tiny training run."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from test_export import crafted_pickle

from mahppo.algorithms.runs import checkpoints as ck
from mahppo.algorithms.runs.train import read_experiment, train
from mahppo.cli import main

pytestmark = pytest.mark.slow


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_train_refuses_a_non_empty_out_naming_resume_and_overwrite(copy, capsys):
    before = sorted(p.name for p in copy.iterdir())
    code, err = cli(capsys, "train", "--steps", "128", "--out", str(copy))
    assert code == 2 and "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in copy.iterdir()) == before


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, err = cli(capsys, "train", "--steps", "128", "--out", str(tmp_path), "--overwrite")
    assert code == 2 and "not a run's (no run.json)" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_falls_back_from_a_truncated_newest_checkpoint_and_says_so(ray_session, copy, caplog):
    assert [e["iteration"] for e in ck.read_record(copy)] == [2, 3, 4]
    state = copy / "checkpoints" / "iter_000004" / "learner_group" / "learner" / "state.pkl"
    state.write_bytes(state.read_bytes()[:64])
    experiment = read_experiment(copy)
    steps = ck.read_record(copy)[-2]["env_steps"] + 1  # one more iteration than iteration 3 had
    experiment = experiment.replace(run=replace(experiment.run, steps=steps))
    summary = train(experiment, copy, resume=True, progress=False, final_eval=False)
    err = caplog.text  # a warning of the mahppo logger
    assert "state.pkl: 64 bytes" in err and "iter_000003" in err
    assert summary["iterations"] == 4  # iteration 3 + one
    assert ck.latest(copy, for_resume=True)[1]["iteration"] == 4  # the broken one replaced, verified


def test_resume_with_a_deleted_module_folder_does_not_reinitialise_it(copy, capsys):
    for d in (copy / "checkpoints").iterdir():
        shutil.rmtree(d / ck.MODULES_SUBDIR / "ue_1")
    curve = (copy / "curve.csv").read_text()
    code, err = cli(capsys, "train", "--resume", str(copy))
    assert code == 2 and "rl_module/ue_1/" in err and len(err.strip().splitlines()) == 1
    assert (copy / "curve.csv").read_text() == curve


def test_resume_without_sidecars_refuses_instead_of_restarting(copy, capsys):
    for p in (copy / "checkpoints").glob("*/mahppo_policy.json"):
        p.unlink()
    curve, run_json = (copy / "curve.csv").read_text(), (copy / "run.json").read_text()
    code, err = cli(capsys, "train", "--resume", str(copy), "--steps", "5000")
    assert code == 2 and "mahppo_policy.json: missing" in err
    assert (copy / "curve.csv").read_text() == curve  # nothing restarted at iteration 1
    assert (copy / "run.json").read_text() == run_json


@pytest.mark.parametrize("text, expected", [
    ("{\"env\": {\"num_ues\": 3}", "run.json: not valid JSON"),
    (json.dumps({"env": {"num_ues": "three"}}), "num_ues = 'three'"),
    (json.dumps({"algo": 5}), "algo = 5 must be a mapping"),
    (json.dumps({"algo": {"lr": "fast"}}), "lr = 'fast'"),
    (json.dumps({"params": {}}), "unknown section 'params'"),
])
def test_an_edited_run_json_is_one_line(copy, capsys, text, expected):
    (copy / "run.json").write_text(text)
    code, err = cli(capsys, "train", "--resume", str(copy))
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_a_garbage_curve_is_one_line(copy, capsys):
    (copy / "curve.csv").write_bytes(b"iteration,env_steps\n1,128\n\xff\xfe garbage,,,\n")
    code, err = cli(capsys, "train", "--resume", str(copy))
    assert code == 2 and "curve.csv: not a curve file" in err and len(err.strip().splitlines()) == 1


def test_evaluate_cli_never_unpickles_a_crafted_module_state(copy, tmp_path):
    marker = tmp_path / "PWNED"
    for p in copy.rglob("*.pkl"):
        p.write_bytes(crafted_pickle(marker))
    res = subprocess.run([sys.executable, "-m", "mahppo", "evaluate", "--policy", str(copy), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tasks_completed"] == 2 * 200
    assert not marker.exists()


def test_the_serve_apps_loader_never_unpickles(copy, tmp_path):
    from mahppo.serve.app import AppArgs, DecisionMaker, resolve_source

    marker = tmp_path / "PWNED"
    for p in copy.rglob("*.pkl"):
        p.write_bytes(crafted_pickle(marker))
    source, _ = resolve_source(AppArgs(checkpoint=str(copy)))
    user_class = DecisionMaker.func_or_class.__mro__[1]  # under Serve's ingress wrapper
    assert user_class.__name__ == "DecisionMaker"
    replica = user_class(source)  # what each replica runs in __init__
    assert replica.model_info["num_ues"] == 2 and not marker.exists()
