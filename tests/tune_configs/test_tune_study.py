"""Study files and `mahppo tune` arguments: validated before anything starts (no Ray here)."""

from __future__ import annotations

import pytest
import yaml

from mahppo.cli import main
from mahppo.tune_configs.study import load_study, parse_study, study_names

TINY = {"name": "tiny", "grid": {"lr": [1.0e-4, 1.0e-3]},
        "fixed": {"num_ues": 3, "memory_size": 256, "batch_size": 64, "reuse_time": 1}, "seeds": 1, "steps": 500}


def test_shipped_studies_have_the_papers_grids():
    assert set(study_names()) >= {"lr", "reuse", "memory", "ues", "beta"}
    lr = load_study("lr")
    assert [p["lr"] for p in lr.points] == [1e-5, 1e-4, 1e-3]
    assert [p["reuse_time"] for p in load_study("reuse").points] == [5, 10, 20, 40, 80]
    mem = load_study("memory")
    assert [p["memory_size"] for p in mem.points] == [256, 512, 1024, 2048, 4096]
    assert all(p["batch_size"] * 4 == p["memory_size"] for p in mem.points)
    assert [p["num_ues"] for p in load_study("ues").points] == list(range(3, 11))
    beta = load_study("beta")
    assert [p["beta"] for p in beta.points] == [0.01, 0.1, 1, 10, 100, 1000]
    assert beta.plot == "tradeoff" and beta.fixed["num_ues"] == 5
    for name in ("lr", "reuse", "memory", "ues", "beta"):
        s = load_study(name)
        assert len(s.seeds) == 5 and s.steps == 50_000


def test_trial_configs_and_overrides():
    s = parse_study(TINY).with_overrides(samples=3, steps=700)
    cfgs = s.trial_configs()
    assert len(cfgs) == 2 * 3
    assert {(c["lr"], c["seed"]) for c in cfgs} == {(lr, sd) for lr in (1e-4, 1e-3) for sd in range(3)}
    assert all(c["steps"] == 700 and c["num_ues"] == 3 and c["memory_size"] == 256 for c in cfgs)
    with pytest.raises(ValueError, match="--samples"):
        parse_study(TINY).with_overrides(samples=0)


@pytest.mark.parametrize("change, match", [
    ({"lerning_rate": 1}, "unknown key 'lerning_rate'"),
    ({"grid": {"lrr": [1e-4]}}, "grid: unknown key 'lrr'"),
    ({"fixed": {"num_uess": 3}}, "fixed: unknown key 'num_uess'"),
    ({"grid": {"lr": ["1e-5"]}}, "lr = '1e-5'"),  # YAML reads 1e-5 (no dot) as a string
    ({"grid": {"batch_size": [512]}}, "batch_size = 512"),
    ({"grid": {"beta": [-1.0]}}, "beta = -1.0"),
    ({"grid": {"grad_clip": [-1.0]}}, "grad_clip = -1.0 must be a finite number > 0"),  # would flip the sign
    ({"fixed": {"normalize_advantages": "no"}}, "normalize_advantages = 'no' must be true or false"),
    ({"fixed": {"normalize_advantages": 1}}, "normalize_advantages = 1 must be true or false"),
    ({"grid": {"lr": []}}, "grid.lr must be a non-empty list"),
    ({"seeds": 0}, "seeds"),
    ({"steps": "many"}, "steps = 'many'"),
    ({"plot": "pie"}, "plot = 'pie'"),
    ({"vary": "beta"}, "vary = 'beta'"),
    ({"points": [{"lr": 1e-4}]}, "exactly one of 'grid'"),
])
def test_bad_study_names_the_key(change, match):
    with pytest.raises(ValueError, match=match):
        parse_study({**TINY, **change})


def test_bad_points_entry_names_the_key():
    data = {k: v for k, v in TINY.items() if k != "grid"}
    data["points"] = [{"memory_size": 256, "batch_size": 64}, {"memory_size": 512, "bach_size": 128}]
    with pytest.raises(ValueError, match=r"points\[1\]: unknown key 'bach_size'"):
        parse_study(data)


def test_cli_rejects_bad_study_file_before_starting(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "fixed": {"num_uess": 3}}))
    assert main(["tune", "--study", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'num_uess'" in err[0]
    assert main(["tune", "--study", "nosuchstudy"]) == 2
    assert "unknown study 'nosuchstudy'" in capsys.readouterr().err
    assert main(["tune", "--study", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["tune"]) == 2
    assert "give a study" in capsys.readouterr().err


def test_cli_rejects_bad_arguments(tmp_path, monkeypatch, capsys):
    for argv in (["tune", "--study", "lr", "--samples", "0"], ["tune", "--study", "lr", "--steps", "x"],
                 ["tune", "--study", "lr", "--scheduler", "hyperband"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--study", "lr", "--resume", "--storage", str(tmp_path / "runs")]) == 2
    assert "no interrupted study" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["tune", "report", "lr", "--out", str(tmp_path / "x.png")]) == 2
    assert "no MLflow experiment 'tune-lr'" in capsys.readouterr().err


def test_profile_file_is_made_absolute_relative_to_the_study(tmp_path):
    from mahppo.tune_configs.study import STUDIES_DIR

    shipped = STUDIES_DIR.parent.parent / "marl_env" / "data" / "jetson_nano_profiles.json"
    (tmp_path / "profiles.json").write_text(shipped.read_text())
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({**TINY, "fixed": {**TINY["fixed"], "profile_file": "profiles.json"}}))
    s = load_study(f)
    assert s.fixed["profile_file"] == str(tmp_path / "profiles.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        parse_study({**TINY, "fixed": {"profile_file": "nope.json"}}, source=str(f))
    with pytest.raises(ValueError, match="fixed must be a mapping"):
        parse_study({**TINY, "fixed": [1, 2]})


def test_tuner_options_without_running(tmp_path):
    from ray.tune.schedulers import ASHAScheduler

    from mahppo.tune_configs.runner import build_tuner

    study = parse_study(TINY)
    tuner = build_tuner(study, storage=str(tmp_path), uri=f"sqlite:///{tmp_path / 'm.db'}", scheduler="asha",
                        max_concurrent=1)
    cfg = tuner._local_tuner.get_run_config()
    assert cfg.failure_config.max_failures == 2 and cfg.stop == {"env_steps": 500}
    assert isinstance(tuner._local_tuner._tune_config.scheduler, ASHAScheduler)
    space = study.param_space()
    assert space["point"]["grid_search"] == [{"lr": 1e-4}, {"lr": 1e-3}] and space["seed"]["grid_search"] == [0]
