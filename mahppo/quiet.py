"""Known-harmless messages from Ray, RLlib and MLflow, silenced at our entry points (the ``mahppo``
command, ``mahppo demo``). Each one is listed with why it is harmless here; nothing else is hidden.

- Ray 2.60 ``ray.init``: "Token authentication is enabled for this Ray cluster" (the local Ray we
  start listens on loopback only; the message is informational).
- RLlib: "You are running MAHPPO on the new API stack!" (we build on the new stack on purpose).
- RLlib: "DeprecationWarning: `RLModule(config=[RLModuleConfig object])` has been deprecated". Our
  modules are built with the new keyword arguments (``RLModuleSpec(observation_space=...,
  model_config=...)``); RLlib 2.60 itself still builds an ``RLModuleConfig`` inside every
  ``RLModule.__init__`` for backwards compatibility ("TODO (sven): Deprecate this"), which is what
  warns. Nothing on our side uses the deprecated path.
- Tune: "Install gputil for GPU system monitoring." (GPU monitoring is not needed on CPU machines).
- Serve: its INFO start-up lines ("Started Serve", "Connecting to existing Serve app ... will not be
  applied", "Application ... is ready"); ``mahppo serve`` prints its own line when it is ready.
- MLflow: the INFO lines of SQLite store creation and migration, and SQLAlchemy's ``noload``
  deprecation raised inside MLflow's store; MLflow's artefact download progress bars.
"""

from __future__ import annotations

import logging
import os
import warnings

# logger name -> message fragments dropped from it (only these records, only from these loggers)
HARMLESS: dict[str, tuple[str, ...]] = {
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    "ray.rllib.algorithms.algorithm_config": ("on the new API stack",),
    "ray._common.deprecation": ("RLModule(config=[RLModuleConfig object])",),
    "ray.tune.utils.util": ("Install gputil",),
}
# INFO chatter: MLflow's store creation and migrations, model validation; Serve's start-up lines
QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic", "mlflow.pyfunc", "mlflow.models.model", "ray.serve")


class _WarningsAndUp(logging.Filter):
    """Drops INFO and below (for loggers such as Serve's that reset their own level when they start)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


class _DropMessages(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(f in msg for f in self.fragments)


def install() -> None:
    """Drop the messages above (idempotent). Environment defaults reach Ray workers started later."""
    for name, fragments in HARMLESS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(fragments))
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _WarningsAndUp) for f in logger.filters):
            logger.addFilter(_WarningsAndUp())
    warnings.filterwarnings("ignore", message=r".*The ``noload`` loader strategy is deprecated")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
