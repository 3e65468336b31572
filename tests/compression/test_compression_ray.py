"""Tiny end-to-end run: `mahppo compress train-base`, then `mahppo compress` as Ray tasks on a local Ray;
the table, plot and profile come out and the profile drives the marl_env environment."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import ray

from mahppo.marl_env import parallel_env, profiles
from mahppo.marl_env.config import EnvConfig
from mahppo.marl_env.evaluation import evaluate
from mahppo.marl_env.policies import make_baseline


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("crash")


def crash_once_then(task, where):
    """``task`` whose first attempt per (point, rate) kills its worker process, as a lost node would."""
    def crashing(*args):
        import os
        from pathlib import Path

        point, rate = args[3], args[4]
        marker = Path(where) / f"crashed_p{point}_r{rate:g}"
        if not marker.exists():
            marker.write_text("crashed once\n")
            os._exit(1)
        return task(*args)
    return crashing


@pytest.fixture(scope="module")
def local_ray(crash_dir):
    import sys

    import mahppo.compression.runner as runner

    # fault injection by monkeypatching: every task's first attempt kills its worker; the wrapper is
    # pickled by value so the workers need not import this test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "compress_task", crash_once_then(runner.compress_task, str(crash_dir)))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    mp.undo()
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def run_dir(local_ray, tmp_path_factory):
    from mahppo.cli import main

    out = tmp_path_factory.mktemp("compress")
    common = ["--image-size", "32", "--out", str(out)]
    assert main(["compress", "train-base", "--epochs", "1", "--max-batches", "3", *common]) == 0
    assert (out / "base_resnet18.pt").is_file()
    rc = main(["compress", "--points", "1,4", "--rates", "32", "--epochs", "1", "--ft-epochs", "1",
               "--max-batches", "2", "--repeats", "1", "--base", str(out / "base_resnet18.pt"),
               "--no-progress", "--max-loss", "0.99", *common])
    assert rc == 0
    return out


@pytest.mark.slow
def test_table_has_one_row_per_task(run_dir):
    with (run_dir / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["point"]), float(r["rate"])) for r in rows] == [(1, 32.0), (4, 32.0)]
    for r in rows:
        assert int(r["bits_sent"]) == round(int(r["raw_bits"]) / 32)
        assert 0 <= float(r["accuracy"]) <= 1
        assert float(r["accuracy_loss"]) == pytest.approx(float(r["base_accuracy"]) - float(r["accuracy"]),
                                                          abs=1e-5)
    assert [r["feature_shape_224"] for r in rows] == ["64x56x56", "512x7x7"]
    md = (run_dir / "results.md").read_text()
    assert md.count("\n") == 4 and "| 1 | 32 |" in md
    png = (run_dir / "rates_resnet18.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


@pytest.mark.slow
def test_profile_schema_and_numbers(run_dir):
    doc = json.loads((run_dir / "profile_resnet18.json").read_text())
    assert set(doc) == {"source", "models"} and isinstance(doc["source"], str)
    assert set(doc["models"]) == {"resnet18", "resnet18-jalad"}
    summary = json.loads((run_dir / "summary.json").read_text())
    for key, entries in doc["models"].items():
        assert len(entries) == 6
        assert entries[0] == {"raw_bits": 3 * 224 * 224 * 8, "compression_rate": 1.0, "front_latency_s": 0.0,
                              "front_power_w": 0.0, "front_energy_j": 0.0}
        assert entries[5]["raw_bits"] == 0 and entries[5]["front_latency_s"] > 0
        assert [e["raw_bits"] for e in entries[1:5]] == [64 * 56 * 56 * 32, 128 * 28 * 28 * 32,
                                                         256 * 14 * 14 * 32, 512 * 7 * 7 * 32]
        for e in entries[1:]:
            assert e["front_latency_s"] > 0 and e["front_power_w"] > 0
            assert e["front_energy_j"] == pytest.approx(e["front_latency_s"] * e["front_power_w"], rel=1e-3)
        if key == "resnet18":
            # --max-loss 0.99: both trained points are selected at 32; points 2 and 3 were not trained
            assert [e["compression_rate"] for e in entries[1:5]] == [32.0, 1.0, 1.0, 32.0]
        else:
            assert all(e["compression_rate"] > 1 for e in entries[1:5])
    assert summary["selected"] == {"1": 32.0, "4": 32.0}


@pytest.mark.slow
def test_written_profile_drives_the_env(run_dir):
    path = run_dir / "profile_resnet18.json"
    table = profiles.load_profile_file(path)
    assert set(table) == {"resnet18", "resnet18-jalad"}
    assert list(table["resnet18"].bits) == [1204224, 200704, 3211264, 1605632, 25088, 0]
    for dnn in ("resnet18", "resnet18-jalad"):
        env = parallel_env(dnn=dnn, profile_file=str(path), num_ues=2, scenario="test")
        env.reset(seed=0)
        np.testing.assert_array_equal(env.view().bits[0], table[dnn].bits)  # the env runs on this profile
        np.testing.assert_array_equal(env.view().front_latency_s[1], table[dnn].front_latency_s)
        # Local runs every task on the UE: exactly the profile's local energy per task (Eq. 8)
        m = evaluate(make_baseline("local"), EnvConfig(dnn=dnn, profile_file=str(path), num_ues=2,
                                                      scenario="test").validated())
        assert m["tasks_completed"] == 400
        assert m["energy_per_task_j"] == pytest.approx(table[dnn].local_energy_j, rel=1e-9)


@pytest.mark.slow
def test_tasks_survive_a_worker_crash(run_dir, crash_dir):
    """Each task's first worker died (os._exit); max_retries re-ran it and the table is complete."""
    assert sorted(p.name for p in crash_dir.iterdir()) == ["crashed_p1_r32", "crashed_p4_r32"]
    assert (run_dir / "results.csv").read_text().count("\n") == 3
