"""`mahppo train --seed S` repeats itself from process to process (the string-hash seed is fixed)."""

import csv
import os
import subprocess
import sys

import pytest

ARGS = ["train", "--num-ues", "4", "--steps", "600", "--memory-size", "256", "--batch-size", "64",
        "--reuse-time", "1", "--eval-every", "1", "--seed", "0"]
# every column but the wall time
COLUMNS = ("env_steps", "train_return_per_ue", "test_reward", "vf_loss", "entropy_point")


def _train(out, hash_seed: str | None) -> list[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "RAY_ADDRESS")}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    res = subprocess.run([sys.executable, "-m", "mahppo", *ARGS, "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    with (out / "curve.csv").open() as f:
        return [{k: row[k] for k in COLUMNS if k in row} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_the_same_seed_gives_the_same_run_in_two_processes(tmp_path):
    # without PYTHONHASHSEED each process would batch the 4 agents in its own set order (24 orders)
    first = _train(tmp_path / "a", None)
    second = _train(tmp_path / "b", None)
    assert len(first) >= 2 and "test_reward" in first[0]
    assert first == second
