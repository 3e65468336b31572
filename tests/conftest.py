import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray (2 CPUs) for one test module, shut down after it (modules that need special worker
    environments start their own)."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


# A tiny real training run (the paper's per-UE actors, N = 2): 4 iterations of 128 env steps, a checkpoint
# and a test-scenario evaluation after each (the first checkpoint pruned: 3 kept), then the final table.
TINY_RUN = {"actor": "per-ue", "num_ues": 2, "steps": 512, "memory_size": 128, "batch_size": 64, "reuse_time": 1,
            "num_envs_per_env_runner": 2, "checkpoint_every": 1, "eval_every": 1}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """``(run folder, Experiment, summary)`` of one tiny ``mahppo train`` run for the whole session: read it
    only; a test that damages a run takes the ``copy`` fixture."""
    import ray

    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.runs.train import train

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    out = tmp_path_factory.mktemp("trained") / "run"
    experiment = Experiment().with_flat(TINY_RUN)
    try:
        summary = train(experiment, out, progress=False, final_eval=True)
    finally:
        if started:
            ray.shutdown()
    return out, experiment, summary


@pytest.fixture
def copy(trained_run, tmp_path):
    """A copy of the session's training run that a test may damage."""
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(trained_run[0], dst)
    return dst
