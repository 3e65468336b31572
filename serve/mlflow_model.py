"""A trained policy as an MLflow pyfunc model whose ``predict`` is ``POST /v1/decide``.

``predict({"ues": [...], "deterministic": true})`` returns ``{"decisions": [...], "policy_id": ...}``,
the very reply of the Serve app for the same body: the same schema (``serve.schema.DecideRequest``),
the same normalisation (``StateNormalizer``) and the same reply builder (``decision_body``). A list of
bodies (or a DataFrame of several rows with a ``ues`` column) gives a list of replies; a DataFrame of UE rows
(``pd.DataFrame(ues)``: columns ``ue_id``, ``tasks_left``, ...) is one state pool.

The model's ``requirements.txt`` pins mahppo and every run-time dependency at the versions installed when it
was saved (``runtime.pinned_requirements``), so ``mlflow models serve`` with the default (virtualenv) env manager
can rebuild the environment wherever ``pip install mahppo==V`` resolves (a package index holding the project);
``wheel=True`` puts a wheel of the project in the model (``wheels/``) and names it there instead, so no index
needs the project (built from the source tree; the build needs setuptools >= 77, from the index if older here).

The model directory holds the policy's acting checkpoint (weights-only export and sidecar, no pickles)
under ``artifacts/checkpoint`` (so ``load_policy`` and ``mahppo serve --model-uri`` read it too), an output
signature and the input schema (in the metadata, not enforced by MLflow: ``model_signature``) derived from
the pydantic schema, and an input example (the test scenario's first state pool). ``predict`` checks each
body exactly as the server does (unknown keys, NaN, nesting) and never changes the caller's dict.
``register_champion`` logs it into a run, registers it and points the alias ``champion`` at it, once per
run (registering the same run again adds no version).
"""

from __future__ import annotations

import math
import tempfile
import typing
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

from mahppo.serve.planner import decide
from mahppo.serve.schema import DecideRequest, Decision, RequestError, normalizer_for, parse_request

MODEL_ARTIFACT_PATH = "model"  # where the pyfunc model goes in the run's artefacts
CHECKPOINT_ARTIFACT = "checkpoint"  # the key of the checkpoint in the pyfunc model's artifacts
CHAMPION_ALIAS = "champion"


# The model's code, saved with it (MLflow's "models from code": no pickled object in the model).
MODEL_CODE = """import mlflow
from mahppo.serve.mlflow_model import DecisionModel

mlflow.models.set_model(DecisionModel())
"""


class DecisionModel(mlflow.pyfunc.PythonModel):
    """The edge decision-maker in process: the policy's actors and its env's state scales."""

    # The signature is given explicitly (from the pydantic schema); ``predict`` has no type hints for
    # MLflow to validate against (it would otherwise wrap ``predict`` and warn about the missing hints).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        from mahppo.algorithms.acting.policy import load_policy

        self.policy = load_policy(context.artifacts[CHECKPOINT_ARTIFACT])
        self.normalizer = normalizer_for(self.policy)
        self.p_max_w = self.policy.env.p_max_w

    def predict(self, context, model_input, params=None):
        """One ``/v1/decide`` body -> its reply; several bodies -> a list of replies. A bad body raises
        ``RequestError`` (a ``ValueError``) naming the field, as the server's 4xx does."""
        bodies, many = _bodies(model_input)
        replies = [decide(self.policy, self.normalizer, _request(body), self.p_max_w) for body in bodies]
        return replies if many else replies[0]


def _request(body: Any) -> DecideRequest:
    """The server's own check of a body (``serve.schema.parse_request``: unknown keys, NaN, strings for
    booleans, nesting all refused as the server refuses them, with its message); the caller's dict is
    serialised, never changed."""
    return parse_request(body)


def _plain(value: Any, depth: int = 0) -> Any:
    """numpy / pandas values (a DataFrame's rows) as plain JSON values, in new containers (the caller's
    are never changed); nesting beyond ``MAX_DEPTH`` is refused, not a RecursionError."""
    if depth > MAX_DEPTH:
        raise RequestError("body", f"nested deeper than {MAX_DEPTH} levels", status=400)
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


MAX_DEPTH = 32  # a body is 4 levels deep ({"ues": [{"ue_id": ...}]}); anything deeper is not a request


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """A DataFrame row as a body: the columns the row does not have (pandas fills them with NaN / None)
    left out."""
    return {k: v for k, v in row.items() if not (v is None or isinstance(v, float) and math.isnan(v))}


def _bodies(model_input: Any) -> tuple[list[Any], bool]:
    """The request bodies in ``model_input`` and whether it held several."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        rows = [_row(_plain(r)) for r in model_input.to_dict(orient="records")]
        if "ues" not in model_input.columns:  # pd.DataFrame(ues): one state pool, one UE per row
            return [{"ues": rows}], False
        return rows, len(rows) != 1
    if isinstance(model_input, list):
        return [_plain(b) for b in model_input], True
    return [_plain(model_input)], False


_SCALARS = {int: "long", str: "string", bool: "boolean"}


def _object_type(model: type) -> Any:
    """An MLflow ``Object`` type from a pydantic model's fields (required ones stay required). A float
    field is ``Any`` to MLflow, because its ``double`` refuses integers (``"bits_left": 50176``), which the
    server accepts; the pydantic schema checks it in ``predict``, as the server does."""
    from mlflow.types.schema import AnyType, DataType, Object, Property

    props = []
    for name, f in model.model_fields.items():
        args = [a for a in typing.get_args(f.annotation) if a is not type(None)]  # X | None -> X
        kind = _SCALARS.get(args[0] if len(args) == 1 else f.annotation)  # type: ignore[arg-type]
        props.append(Property(name, DataType[kind] if kind else AnyType(), required=f.is_required()))
    return Object(props)


def input_schema() -> Any:
    """``DecideRequest`` as an MLflow schema (documentation: ``MLmodel``'s metadata ``decide_request``)."""
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    from mahppo.serve.schema import UEState

    return Schema([ColSpec(Array(_object_type(UEState)), "ues"),
                   ColSpec(DataType.boolean, "deterministic", required=False),
                   ColSpec(DataType.boolean, "lookahead", required=False),
                   ColSpec(DataType.long, "frame", required=False)])


def model_signature() -> Any:
    """Output: ``DecideResponse`` (derived from the pydantic schema). No input schema on purpose: MLflow's
    enforcement of one drops unknown keys, turns NaN into "missing" and rewrites the caller's dict in place
    before ``predict`` sees it; ``predict`` checks the body with the server's own schema instead, and the
    input schema is in the model's metadata (``decide_request``, ``decide_request_json_schema``)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    outputs = Schema([ColSpec(Array(_object_type(Decision)), "decisions"), ColSpec(DataType.string, "policy_id"),
                      ColSpec(DataType.boolean, "lookahead", required=False),
                      ColSpec(DataType.string, "lookahead_fallback", required=False)])
    return ModelSignature(inputs=None, outputs=outputs)


def input_example(checkpoint: str | Path) -> dict[str, Any]:
    """The test scenario's first state pool for the policy's cell (what ``mahppo query`` sends)."""
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.serve.client import example_pool

    policy = load_policy(checkpoint)
    n = policy.env.num_ues
    agents = [f"ue_{i}" for i in range(n)] if getattr(policy, "shared", False) else policy.agents
    return {"ues": example_pool({"agents": agents}), "deterministic": True}


def project_wheel(dest: Path) -> Path:
    """Build a wheel of this project (its source tree: an editable install) into ``dest``."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{root}: no pyproject.toml (mahppo is not installed from a source tree)")
    for isolation in (["--no-build-isolation"], []):  # the local setuptools if new enough, else the index's
        r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(dest),
                            str(root)], capture_output=True, text=True)
        found = sorted(dest.glob("mahppo-*.whl"))
        if r.returncode == 0 and found:
            return found[-1]
    raise RuntimeError(f"pip wheel {root} failed: {r.stderr.strip().splitlines()[-1:]}")


def save_decision_model(checkpoint: str | Path, path: str | Path, *, wheel: bool = False) -> Path:
    """Write the pyfunc model of ``checkpoint`` (a checkpoint or ``mahppo train --out`` dir) to ``path``;
    ``wheel=True``: with a wheel of the project that ``requirements.txt`` names (see the module's doc)."""
    from mahppo.algorithms.acting.policy import find_checkpoint
    from mahppo.algorithms.runs.checkpoints import copy_for_acting
    from mahppo.runtime import pinned_requirements

    ckpt = find_checkpoint(Path(checkpoint).expanduser().resolve())
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "decision_model.py"
        code.write_text(MODEL_CODE)
        acting = copy_for_acting(ckpt, Path(tmp) / CHECKPOINT_ARTIFACT)  # weights and sidecar, no pickles
        mlflow.pyfunc.save_model(
            path=str(path), python_model=str(code), artifacts={CHECKPOINT_ARTIFACT: str(acting)},
            signature=model_signature(), input_example=input_example(ckpt),
            metadata={"decide_request": input_schema().to_dict(),
                      "decide_request_json_schema": DecideRequest.model_json_schema()},
            pip_requirements=pinned_requirements())
    if wheel:
        built = project_wheel(Path(path) / "wheels")
        req = Path(path) / "requirements.txt"
        lines = [f"wheels/{built.name}" if ln.startswith("mahppo==") else ln for ln in req.read_text().splitlines()]
        req.write_text("\n".join(lines) + "\n")
    return Path(path)


def register_champion(uri: str, model_name: str, run_id: str, checkpoint: str | Path, *,
                      tags: dict[str, str] | None = None, description: str = "") -> dict[str, Any]:
    """Log ``checkpoint`` as a pyfunc model into run ``run_id`` (artefact ``model``), register it as a
    version of ``model_name`` and set the alias ``champion`` on it. Idempotent: if the run already has a
    version, that version becomes the champion and nothing new is logged or registered.

    Returns ``{"model_uri": "models:/NAME@champion", "version_uri": "models:/NAME/V", "version": V}``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    cl = MlflowClient(tracking_uri=uri)
    try:
        cl.create_registered_model(model_name, description="MAHPPO policies picked by `mahppo tune`")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc).lower():
            raise
    versions = cl.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    if versions:
        mv = max(versions, key=lambda v: int(v.version))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            save_decision_model(checkpoint, Path(tmp) / MODEL_ARTIFACT_PATH)
            cl.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT_PATH), artifact_path=MODEL_ARTIFACT_PATH)
        source = f"{cl.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_ARTIFACT_PATH}"
        mv = cl.create_model_version(model_name, source=source, run_id=run_id, tags=tags or {},
                                     description=description)
    cl.set_registered_model_alias(model_name, CHAMPION_ALIAS, mv.version)
    return {"model_uri": f"models:/{model_name}@{CHAMPION_ALIAS}", "version_uri": f"models:/{model_name}/{mv.version}",
            "version": int(mv.version)}
