"""No silent wrong numbers: per-task metrics over zero completed tasks are null / n/a, not 0, and N
has an upper bound whose message gives the memory it would take."""

import json

import numpy as np
import pytest

from mahppo.cli import main
from mahppo.marl_env.config import MAX_UES, EnvConfig, training_memory_gib
from mahppo.marl_env.metrics import PER_TASK_NAMES, EpisodeMetrics, format_table, mean_metrics


def zero_task_episode() -> dict:
    m = EpisodeMetrics(num_ues=2, frame_s=0.5)
    m.add_frame(np.zeros(2), np.zeros(2), np.array([0.1, 0.2]), -3.0)
    return m.finish()


def test_per_task_metrics_of_an_episode_without_a_completed_task_are_none():
    out = zero_task_episode()
    assert all(out[k] is None for k in PER_TASK_NAMES)
    assert out["tasks_completed"] == 0 and out["reward"] == -3.0 and out["makespan_s"] == 0.5


def test_means_skip_undefined_episodes_and_stay_none_when_all_are():
    done = EpisodeMetrics(num_ues=1, frame_s=0.5)
    done.add_frame(np.array([2]), np.array([0.3]), np.array([0.4]), -1.0)
    mixed = mean_metrics([zero_task_episode(), done.finish()])
    assert mixed["latency_per_task_s"] == pytest.approx(0.15) and mixed["energy_per_task_j"] == pytest.approx(0.2)
    none = mean_metrics([zero_task_episode()])
    assert none["latency_per_task_s"] is None and none["latency_per_task_s_std"] is None


def test_tables_say_n_a():
    table = format_table({"stuck": mean_metrics([zero_task_episode()])})
    assert table.splitlines()[2].startswith("| stuck | n/a | n/a | n/a | 0.5 | -3 | 0 |")


def test_evaluate_reports_null_latency_for_a_policy_that_completes_nothing(capsys):
    assert main(["evaluate", "--policy", "fixed:0,0,1e-9", "--num-ues", "3", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["tasks_completed"] == 0 and m["truncated_episodes"] == 1
    assert m["latency_per_task_s"] is None and m["energy_per_task_j"] is None


def test_num_ues_above_the_bound_names_the_memory_it_would_need(capsys):
    with pytest.raises(ValueError, match=r"num_ues = 10000 is above the maximum of 256: .* about 3,071 GiB"):
        EnvConfig.from_kwargs(num_ues=10000)
    assert main(["evaluate", "--policy", "local", "--num-ues", "10000"]) == 2
    assert "num_ues = 10000" in capsys.readouterr().err
    assert EnvConfig.from_kwargs(num_ues=64).num_ues == 64
    assert training_memory_gib(MAX_UES) < 8 and training_memory_gib(10) == pytest.approx(1.82, abs=0.01)


def test_the_padded_set_size_has_the_same_bound():
    with pytest.raises(ValueError, match="max_ues = 300 is above the maximum of 256"):
        EnvConfig.from_kwargs(num_ues=3, max_ues=300, obs_mode="agent")
