"""The MLflow model's requirements: mahppo and every run-time dependency pinned at the installed version."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mahppo.runtime import pinned_requirements


def test_every_dependency_of_the_project_is_pinned_at_its_installed_version():
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = dict(p.split("==") for p in pinned_requirements() if "==" in p)
    assert pins.pop("mahppo") == version("mahppo")
    names = {p.split("[")[0].lower(): v for p, v in pins.items()}
    for dep in deps:
        name = dep.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip().lower()
        try:
            installed = version(name)
        except PackageNotFoundError:  # declared but not installed in this environment: kept as declared
            assert dep in pinned_requirements(), dep
            continue
        assert names[name] == installed, dep
    assert "ray[rllib,serve,tune]" in pins  # extras kept
