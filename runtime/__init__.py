"""Runtime utilities every package may use: connecting to a Ray cluster (``cluster``) and the fixed
``PYTHONHASHSEED`` restart (``hashseed``), key files (``keys``). Imports nothing of ours."""

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed mahppo's version (``0+unknown`` in a source tree that is not installed)."""
    try:
        return version("mahppo")
    except PackageNotFoundError:
        return "0+unknown"
