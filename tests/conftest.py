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


@pytest.fixture
def copy(run, tmp_path):
    """A copy of the module's ``run`` folder (a training run) that a test may damage."""
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst
