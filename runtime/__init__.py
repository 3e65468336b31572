"""Runtime utilities every package may use: connecting to a Ray cluster (``cluster``) and the fixed
``PYTHONHASHSEED`` restart (``hashseed``), key files (``keys``). Imports nothing of ours."""

import re
from importlib.metadata import PackageNotFoundError, requires, version


def package_version() -> str:
    """The installed mahppo's version (``0+unknown`` in a source tree that is not installed)."""
    try:
        return version("mahppo")
    except PackageNotFoundError:
        return "0+unknown"


def pinned_requirements() -> list[str]:
    """``mahppo==V`` and every run-time dependency of the installed mahppo pinned at its installed version
    (extras kept: ``ray[rllib,serve,tune]==2.60.0``): what another environment needs to rebuild this one."""
    out = [f"mahppo=={package_version()}"]
    try:
        deps = requires("mahppo") or []
    except PackageNotFoundError:
        return out
    for dep in deps:
        if "extra ==" in dep:  # the dev extra
            continue
        m = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?", dep)
        if m is None:
            continue
        try:
            out.append(f"{m.group(1)}{m.group(2) or ''}=={version(m.group(1))}")
        except PackageNotFoundError:
            out.append(dep.split(";")[0].strip())
    return out
