"""The command line as a user meets it: --version, help for every flag, one JSON document with --json,
hints that work as printed, natural YAML numbers and per-UE DNNs in study files."""

from __future__ import annotations

import argparse
import json
import shlex

import pytest

from mahppo.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                out.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return out


def test_version_prints_the_package_version(capsys):
    import mahppo

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"mahppo {mahppo.__version__}"
    assert mahppo.__version__ == "0.1.0"


def test_every_flag_of_every_command_has_help():
    parser = build_parser()
    missing = []
    for name, sub in {"mahppo": parser, **_subparsers(parser)}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_evaluate_json_writes_exactly_one_json_document(capsys):
    assert main(["evaluate", "--policy", "local", "--num-ues", "2", "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)  # the whole of stdout is one document
    assert doc["policy"] == "local" and doc["tasks_completed"] == 400
    assert out.count("\n") == 1


def test_study_file_accepts_yaml_1_1_exponents(tmp_path):
    from mahppo.tune_configs.study import load_study

    path = tmp_path / "natural.yaml"
    path.write_text("grid: {lr: [1e-4, 3e-4]}\nfixed: {num_ues: 3, zeta: 1e-3}\nsteps: 2000\n")
    study = load_study(path)
    assert [p["lr"] for p in study.points] == [1e-4, 3e-4]
    assert study.fixed["zeta"] == 1e-3


def test_study_file_sets_heterogeneous_cells(tmp_path):
    from mahppo.tune_configs.study import load_study, trial_experiment

    path = tmp_path / "mixed.yaml"
    path.write_text("grid: {beta: [0.47]}\nfixed: {ue_specs: [resnet18, vgg11, {dnn: mobilenetv2, distance_m: 20}]}\n"
                    "steps: 1000\n")
    exp = trial_experiment(load_study(path).trial_configs()[0])
    assert [s.dnn for s in exp.env.specs] == ["resnet18", "vgg11", "mobilenetv2"] and exp.env.num_ues == 3


def test_study_file_rejects_num_ues_contradicting_ue_specs(tmp_path):
    from mahppo.tune_configs.study import load_study

    path = tmp_path / "bad.yaml"
    path.write_text("grid: {num_ues: [4]}\nfixed: {ue_specs: [resnet18, vgg11]}\nsteps: 1000\n")
    with pytest.raises(ValueError, match="num_ues = 4 conflicts with ue_specs"):
        load_study(path)


@pytest.mark.slow
def test_tune_json_is_one_document_and_its_hints_work_as_printed(tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        "grid: {lr: [1e-3]}\nfixed: {num_ues: 3, memory_size: 256, batch_size: 64, reuse_time: 1}\n"
        "seeds: 1\nsteps: 250\neval_every: 1\ncheckpoint_every: 1\n")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code = main(["tune", "--study", "tiny.yaml", "--mlflow-uri", uri, "--json"])
        out = capsys.readouterr().out
    finally:
        ray.shutdown()
    assert code == 0
    summary = json.loads(out)  # stdout is exactly one JSON document; the logs went to stderr
    assert summary["winner"]["model_uri"] == "models:/mahppo-tiny@champion"
    report = shlex.split(summary["next"]["report"])
    assert report[:4] == ["mahppo", "tune", "report", "tiny.yaml"]
    assert main(report[1:] + ["--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert fig["runs"] == 1 and fig["sweep"] == summary["sweep"] and (tmp_path / "tune_tiny.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "tiny.yaml", "tune_runs", "tune_tiny.png"]
    (tmp_path / "tiny.yaml").unlink()  # `report NAME` also works from the store (the study as it ran)
    assert main(["tune", "report", "tiny", "--mlflow-uri", uri, "--out", "again.png", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sweep"] == summary["sweep"]
    assert (tmp_path / "store" / "mlruns").is_dir()  # the artefacts next to the store, no ./mlruns


@pytest.mark.slow
def test_fresh_demo_prints_no_warning_and_writes_only_under_demo_out(tmp_path):
    """A new user's first command, in an empty directory (1024 env steps instead of 20 000)."""
    import os
    import re
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    done = subprocess.run([sys.executable, "-m", "mahppo", "demo", "--steps", "1024", "--port", str(port)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).replace(str(tmp_path), "TMP").replace("\r", "\n").splitlines()
    noisy = [ln for ln in lines if re.search(r"warn|deprecat|error|raylet", ln, re.I)]
    assert noisy == []
    assert [p.name for p in tmp_path.iterdir()] == ["demo_out"]
    out = tmp_path / "demo_out"
    assert {"mlflow.db", "mlruns", "train", "decisions.json"} <= {p.name for p in out.iterdir()}
    assert any((out / "mlruns").rglob("MLmodel")) or any((out / "mlruns").rglob("mahppo_policy.json"))
    # the default (shared) policy also decides the cell after a UE joins, no retraining
    reply = json.loads((out / "decisions.json").read_text())
    assert [d["ue_id"] for d in reply["joined_decisions"]] == ["ue_0", "ue_1", "ue_2", "joined-phone"]
    assert [d["ue_id"] for d in reply["lookahead_decisions"]] == ["ue_0", "ue_1", "ue_2"]  # "lookahead": true
    train_eval = json.loads((out / "train" / "evaluation.json").read_text())
    if not train_eval["trained"]["truncated_episodes"]:  # the lookahead row, never worse than the policy
        assert train_eval["trained+lookahead"]["reward"] >= train_eval["trained"]["reward"] - 1e-9
