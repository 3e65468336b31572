"""Logging for the library and the ``mahppo`` command: one ``configure()`` that every entry point calls
(``train``, Tune studies, the Serve app, the CLI), so Python users get the CLI's quiet output.

- Our messages go to the ``mahppo`` logger (``logging.getLogger(__name__)`` in each module), at the level of
  ``configure(level)``, else ``$MAHPPO_LOG_LEVEL``, else ``INFO``. ``configure(handler=True)`` (the CLI) also
  prints them on stderr as plain lines; a library caller keeps its own handlers (without any, Python shows
  warnings and errors).
- Ray, RLlib, Tune, Serve and MLflow are set through their own options where they have one: ``ray.init``'s
  ``logging_level`` and ``log_to_driver`` (``ray_init_kwargs``), Serve's ``logging_config``
  (``serve_logging_config``), ``$MLFLOW_LOGGING_LEVEL`` and the ``mlflow`` / ``ray`` loggers' levels. At
  ``DEBUG`` nothing of theirs is hidden.
- Known-harmless messages with no option of their own are dropped by message (``HARMLESS``), each with why:

  - Ray 2.60 ``ray.init``: "Token authentication is enabled for this Ray cluster" (the local Ray we start
    listens on loopback only; the message is informational).
  - RLlib: "You are running MAHPPO on the new API stack!" (we build on the new stack on purpose).
  - RLlib: "`RLModule(config=[RLModuleConfig object])` has been deprecated": RLlib 2.60 builds an
    ``RLModuleConfig`` inside every ``RLModule.__init__`` itself; nothing on our side uses the deprecated path.
  - Tune: "Install gputil for GPU system monitoring." (not needed on CPU machines).
  - SQLAlchemy's ``noload`` deprecation raised inside MLflow's SQLite store.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

LEVEL_ENV = "MAHPPO_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "INFO"

# logger name -> message fragments dropped from it (only these records, only from these loggers)
HARMLESS: dict[str, tuple[str, ...]] = {
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    "ray.rllib.algorithms.algorithm_config": ("on the new API stack",),
    "ray._common.deprecation": ("RLModule(config=[RLModuleConfig object])",),
    "ray.tune.utils.util": ("Install gputil",),
}
# INFO chatter of other libraries (MLflow's store creation and migrations, model validation; Serve's start-up
# lines): shown only at DEBUG
CHATTY = ("mlflow", "alembic", "ray.serve", "ray.tune", "ray.rllib", "ray.data")


def resolve_level(level: str | int | None = None) -> int:
    """``level`` (a name or a number), else ``$MAHPPO_LOG_LEVEL``, else ``INFO``; a bad name raises naming it."""
    where = "log level"
    if level is None:
        level, where = os.environ.get(LEVEL_ENV) or DEFAULT_LEVEL, f"${LEVEL_ENV}"
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    name = str(level).strip().upper()
    if name not in LEVELS:
        raise ValueError(f"{where} = {level!r} must be one of {', '.join(LEVELS)}")
    return logging.getLevelName(name)


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(f in msg for f in self.fragments)


class _AtLeast(logging.Filter):
    """Drops records below a level (for loggers such as Serve's that reset their own level when they start)."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


_HANDLER_NAME = "mahppo-stderr"


def configure(level: str | int | None = None, *, handler: bool = False) -> int:
    """Set our level and the other libraries' (idempotent; returns the level in effect). Call it before
    importing MLflow for ``$MLFLOW_LOGGING_LEVEL`` to apply; the logger levels apply at any time."""
    global _configured
    lvl = resolve_level(level)
    _configured = True
    ours = logging.getLogger("mahppo")
    ours.setLevel(lvl)
    if handler and not any(h.get_name() == _HANDLER_NAME for h in ours.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.set_name(_HANDLER_NAME)
        h.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(h)
    for h in ours.handlers:
        if h.get_name() == _HANDLER_NAME:
            h.setLevel(lvl)
    others = max(lvl, logging.WARNING) if lvl > logging.DEBUG else logging.DEBUG
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", logging.getLevelName(others))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false" if lvl > logging.DEBUG else "true")
    for name in CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(others)
        for f in [f for f in logger.filters if isinstance(f, _AtLeast)]:
            logger.removeFilter(f)
        logger.addFilter(_AtLeast(others))
    for name, fragments in HARMLESS.items():
        logger = logging.getLogger(name)
        for f in [f for f in logger.filters if isinstance(f, _DropMessages)]:
            logger.removeFilter(f)
        if lvl > logging.DEBUG:
            logger.addFilter(_DropMessages(fragments))
    if lvl > logging.DEBUG:
        warnings.filterwarnings("ignore", message=r".*The ``noload`` loader strategy is deprecated")
    return lvl


_configured = False


def ensure_configured() -> None:
    """``configure()`` once per process, unless the CLI or the user did already (library entry points call this)."""
    if not _configured:
        configure()


def ray_init_kwargs(level: str | int | None = None) -> dict[str, Any]:
    """``ray.init`` options for the level: Ray's own ``logging_level``; the workers' output reaches the driver
    only at DEBUG."""
    lvl = resolve_level(level) if level is not None else logging.getLogger("mahppo").getEffectiveLevel()
    return {"logging_level": max(lvl, logging.WARNING) if lvl > logging.DEBUG else lvl,
            "log_to_driver": lvl <= logging.DEBUG}


def serve_logging_config(access_log: bool = False) -> dict[str, Any]:
    """Serve's ``logging_config`` for the level (per-request access logs halve the throughput on 2 cores)."""
    lvl = logging.getLogger("mahppo").getEffectiveLevel()
    return {"enable_access_log": access_log, "log_level": "DEBUG" if lvl <= logging.DEBUG else "WARNING"}
