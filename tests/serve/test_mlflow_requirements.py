"""The MLflow model's requirements: mahppo and every run-time dependency pinned at the installed version."""

import re
from importlib.metadata import PackageNotFoundError, requires, version

from mahppo.runtime import pinned_requirements


def test_every_dependency_of_the_installed_project_is_pinned_at_its_installed_version():
    pins = pinned_requirements()
    assert pins[0] == f"mahppo=={version('mahppo')}"
    for dep in requires("mahppo"):
        if "extra ==" in dep:
            continue
        name, extras = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?", dep).groups()
        try:
            assert f"{name}{extras or ''}=={version(name)}" in pins, dep
        except PackageNotFoundError:  # declared but not installed in this environment: kept as declared
            assert dep.split(";")[0].strip() in pins, dep
    assert any(p.startswith("ray[rllib,serve,tune]==") for p in pins)  # extras kept
