"""Weights-only export of RL modules: checkpoints as data for acting, never as code.

RLlib's own checkpoints are pickles (class references, constructor arguments, state), and
unpickling runs whatever a crafted file asks for. Evaluation, Serve and the MLflow registry
therefore load this export instead:

    policy/arch.json              {"format": 1, "modules": {id: {"kind", "observation_space",
                                   "action_space", "model_config", "inference_only"}}}
    policy/<module_id>.safetensors   the module's ``state_dict`` (tensors only)

``kind`` is looked up in ``MODULE_KINDS`` (an allow-list: registering a new module class is one
line there); spaces are plain JSON (``space_to_json``); tensors are read with ``safetensors``,
which parses a JSON header and raw buffers and never unpickles. ``write_export`` returns the
SHA-256 of every file it wrote; the caller keeps them in the checkpoint's sidecar and
``read_export`` refuses any file whose digest differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from mahppo.algorithms.rllib.modules import CentralCriticModule, HybridActorModule, SetCriticModule, SharedActorModule

EXPORT_FORMAT = 1
ARCH_FILE = "arch.json"
WEIGHTS_SUFFIX = ".safetensors"

# The allow-list: the only classes an export can instantiate. Add a module class with one line.
MODULE_KINDS: dict[str, type[TorchRLModule]] = {
    "hybrid_actor": HybridActorModule,
    "central_critic": CentralCriticModule,
    "shared_actor": SharedActorModule,  # --actor shared
    "set_critic": SetCriticModule,
    "ppo_default": DefaultPPOTorchRLModule,  # the IPPO ablation's stock RLlib module
}

_MODULE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ExportError(ValueError):
    """An export that cannot be written or read; the message names the file and the field."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def module_kind(module: TorchRLModule) -> str:
    """The allow-list name of ``module``'s class (exact class, not a subclass)."""
    for kind, cls in MODULE_KINDS.items():
        if type(module) is cls:
            return kind
    raise ExportError(f"module class {type(module).__qualname__} is not in MODULE_KINDS "
                      f"({', '.join(MODULE_KINDS)}); add it there to export it")


# -- spaces as JSON ----------------------------------------------------------------------------

def _num(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """Box, Discrete, MultiDiscrete, Tuple and Dict spaces as plain JSON."""
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": [_num(float(v)) for v in space.low.reshape(-1)],
                "high": [_num(float(v)) for v in space.high.reshape(-1)]}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise ExportError(f"space {space} cannot be exported (Box, Discrete, MultiDiscrete, Tuple, Dict)")


def space_from_json(data: Any, where: str = "space") -> gym.Space:
    """Inverse of ``space_to_json``; a malformed entry raises ``ExportError`` naming ``where``."""
    try:
        kind = data["type"]
        if kind == "Box":
            shape = tuple(int(s) for s in data["shape"])
            if any(s < 0 for s in shape) or int(np.prod(shape)) > 1 << 20:
                raise ValueError(f"shape {shape} out of range")
            low = np.array([float(v) for v in data["low"]], dtype=np.float64).reshape(shape)
            high = np.array([float(v) for v in data["high"]], dtype=np.float64).reshape(shape)
            dtype = np.dtype(data["dtype"])
            if dtype.kind not in "fiu":
                raise ValueError(f"dtype {dtype} is not numeric")
            return gym.spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype)
        if kind == "Discrete":
            return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "MultiDiscrete":
            return gym.spaces.MultiDiscrete([int(n) for n in data["nvec"]])
        if kind == "Tuple":
            return gym.spaces.Tuple([space_from_json(s, f"{where}[{i}]") for i, s in enumerate(data["spaces"])])
        if kind == "Dict":
            return gym.spaces.Dict({str(k): space_from_json(s, f"{where}.{k}") for k, s in data["spaces"].items()})
    except ExportError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ExportError(f"{where}: malformed space ({exc})") from None
    raise ExportError(f"{where}: unknown space type {kind!r}")


def _jsonable(config: Any, where: str) -> Any:
    if config is None:
        return None
    if is_dataclass(config) and not isinstance(config, type):
        config = asdict(config)
    try:
        return json.loads(json.dumps(config, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{where}: model_config is not plain JSON ({exc})") from None


# -- write / read ------------------------------------------------------------------------------

def write_export(modules: dict[str, TorchRLModule], dest: str | Path) -> dict[str, str]:
    """Write each module's architecture (JSON) and weights (safetensors) under ``dest``.

    Returns ``{file name: sha256}`` for every file written (``arch.json`` last), which the caller
    records in the checkpoint's sidecar.
    """
    from safetensors.torch import save_file

    dest = Path(dest)
    if not modules:
        raise ExportError("nothing to export: no modules given")
    dest.mkdir(parents=True, exist_ok=True)
    arch: dict[str, Any] = {"format": EXPORT_FORMAT, "modules": {}}
    digests: dict[str, str] = {}
    for mid, module in modules.items():
        if not _MODULE_ID.match(mid):
            raise ExportError(f"module id {mid!r} cannot be a file name (letters, digits, _ . -)")
        arch["modules"][mid] = {
            "kind": module_kind(module),
            "observation_space": space_to_json(module.observation_space),
            "action_space": space_to_json(module.action_space),
            "model_config": _jsonable(module.model_config, f"module {mid}"),
            "inference_only": bool(module.inference_only),
        }
        tensors = {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, str(dest / f"{mid}{WEIGHTS_SUFFIX}"), metadata={"module_id": mid})
        digests[f"{mid}{WEIGHTS_SUFFIX}"] = sha256_file(dest / f"{mid}{WEIGHTS_SUFFIX}")
    (dest / ARCH_FILE).write_text(json.dumps(arch, indent=2))
    digests[ARCH_FILE] = sha256_file(dest / ARCH_FILE)
    return digests


def verify_export(src: str | Path, digests: dict[str, str]) -> None:
    """Every file listed in ``digests`` exists under ``src`` with that SHA-256."""
    src = Path(src)
    if not isinstance(digests, dict) or ARCH_FILE not in digests:
        raise ExportError(f"{src}: the sidecar lists no {ARCH_FILE} digest (not a weights-only export)")
    for name, want in digests.items():
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise ExportError(f"{src}: bad file name {name!r} in the sidecar's export digests")
        path = src / name
        if not path.is_file():
            raise ExportError(f"{path}: missing")
        if sha256_file(path) != want:
            raise ExportError(f"{path}: SHA-256 differs from the checkpoint's sidecar (modified or truncated)")


def read_export(src: str | Path, digests: dict[str, str]) -> dict[str, TorchRLModule]:
    """Rebuild the modules of an export after checking every file against ``digests``.

    Reads only JSON and safetensors; classes come from ``MODULE_KINDS`` only. The weights must
    match the architecture exactly (no missing or unexpected tensors, same shapes).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    src = Path(src)
    verify_export(src, digests)
    try:
        arch = json.loads((src / ARCH_FILE).read_text())
        specs = arch["modules"]
        if arch.get("format") != EXPORT_FORMAT:
            raise ExportError(f"{src / ARCH_FILE}: format {arch.get('format')!r}, expected {EXPORT_FORMAT}")
        if not isinstance(specs, dict) or not specs:
            raise ExportError(f"{src / ARCH_FILE}: no modules")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"{src / ARCH_FILE}: not a valid architecture file ({exc})") from None
    modules: dict[str, TorchRLModule] = {}
    for mid, spec in specs.items():
        where = f"{src / ARCH_FILE}: modules.{mid}"
        if not _MODULE_ID.match(str(mid)):
            raise ExportError(f"{where}: bad module id")
        weights = f"{mid}{WEIGHTS_SUFFIX}"
        if weights not in digests:
            raise ExportError(f"{where}: its weights file {weights} has no digest in the sidecar")
        try:
            cls = MODULE_KINDS[spec["kind"]]
        except (KeyError, TypeError):
            kind = spec.get("kind") if isinstance(spec, dict) else spec
            raise ExportError(f"{where}.kind = {kind!r} is not an allowed module kind "
                              f"({', '.join(MODULE_KINDS)})") from None
        kwargs = {"observation_space": space_from_json(spec["observation_space"], f"{where}.observation_space"),
                  "action_space": space_from_json(spec["action_space"], f"{where}.action_space"),
                  "inference_only": bool(spec.get("inference_only", False)), "model_config": spec.get("model_config")}
        try:
            with torch.device("meta"):  # shapes only: nothing is allocated before they match the file
                shapes = {k: tuple(v.shape) for k, v in cls(**kwargs).state_dict().items()}
        except Exception as exc:  # a constructor rejecting the recorded spaces / config
            raise ExportError(f"{where}: cannot build {spec['kind']} ({type(exc).__name__}: {exc})") from None
        try:
            with safe_open(str(src / weights), framework="pt") as f:
                _check_shapes(shapes, {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, src / weights)
            tensors = load_file(str(src / weights))
        except (SafetensorError, OSError) as exc:
            raise ExportError(f"{src / weights}: not a safetensors file ({exc})") from None
        module = cls(**kwargs)
        module.load_state_dict(tensors, strict=True)
        module.eval()
        modules[str(mid)] = module
    return modules


def _check_shapes(want: dict[str, tuple[int, ...]], have: dict[str, tuple[int, ...]], path: Path) -> None:
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or extra:
        raise ExportError(f"{path}: weights do not match the architecture "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for k, shape in have.items():
        if shape != want[k]:
            raise ExportError(f"{path}: tensor {k} has shape {shape}, the architecture {want[k]}")
