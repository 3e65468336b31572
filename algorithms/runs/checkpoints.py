"""A run's checkpoints: saved, verified, recorded, pruned and found again safely.

Layout of a run directory (``mahppo train --out DIR``; a Tune trial's checkpoint dir is one
checkpoint folder, written by ``write_checkpoint``)::

    checkpoints.json               the run's record: its verified checkpoints, oldest first
    checkpoints/iter_NNNNNN/       RLlib's checkpoint (pickles: read only by ``--resume``)
        policy/                    the weights-only export (``algorithms.export``): what acts
        mahppo_policy.json         the sidecar, written last: run metadata, the module ids, the
                                   export's SHA-256 digests and a manifest (size + SHA-256) of
                                   every other file of the checkpoint

A checkpoint is *complete* when its sidecar parses and every file of its manifest is there with
its size and digest, including each module's state and the learner state. Saving verifies the new
checkpoint before recording it, and prunes older ones only after that. Finding "the newest"
reads the record, never directory names; an incomplete newest checkpoint is skipped with a note,
and no complete one at all is an error naming the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mahppo.algorithms.runs.export import ExportError, read_export, sha256_file, verify_export, write_export
from mahppo.runtime.keys import SIGNING_KEY_ENV, signing_key

log = logging.getLogger(__name__)

POLICY_META = "mahppo_policy.json"
RECORD_FILE = "checkpoints.json"
CHECKPOINTS_DIR = "checkpoints"
EXPORT_DIR = "policy"
KEEP_CHECKPOINTS = 3
MODULES_SUBDIR = "learner_group/learner/rl_module"
# RLlib's files without which a restore is not the saved state (algorithm, learner incl. optimizers)
REQUIRED_FILES = ("rllib_checkpoint.json", "algorithm_state.pkl", "learner_group/learner/state.pkl")
RECORD_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

Report = Callable[[str], None]


class CheckpointError(ValueError):
    """A checkpoint or record that cannot be used; one line naming the file."""


def _stderr(msg: str) -> None:
    log.warning(msg)


def checkpoint_name(iteration: int) -> str:
    return f"iter_{int(iteration):06d}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so that a reader sees the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2, default=str))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # not every file system syncs directories
        pass


# -- the record --------------------------------------------------------------------------------

def read_record(run_dir: str | Path) -> list[dict[str, Any]] | None:
    """The run's recorded checkpoints, oldest first (``None`` when the run has no record)."""
    path = Path(run_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        entries = data["checkpoints"]
        if not isinstance(entries, list):
            raise TypeError("'checkpoints' is not a list")
        out = []
        for i, e in enumerate(entries):
            name, it = e["name"], e["iteration"]
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"checkpoints[{i}].name = {name!r} is not a checkpoint name")
            if isinstance(it, bool) or not isinstance(it, int) or it < 0:
                raise ValueError(f"checkpoints[{i}].iteration = {it!r} is not an integer >= 0")
            out.append(dict(e))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a valid checkpoint record ({exc})") from None
    return sorted(out, key=lambda e: e["iteration"])


def write_record(run_dir: str | Path, entries: list[dict[str, Any]]) -> None:
    write_json_atomic(Path(run_dir) / RECORD_FILE,
                      {"format": RECORD_FORMAT, "checkpoints": sorted(entries, key=lambda e: e["iteration"])})


def checkpoint_path(run_dir: str | Path, entry: dict[str, Any]) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / entry["name"]


# -- verification ------------------------------------------------------------------------------

def read_meta(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's sidecar, with errors that name the file."""
    f = Path(checkpoint) / POLICY_META
    try:
        meta = json.loads(f.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{f}: missing (not a complete mahppo checkpoint)") from None
    except ValueError as exc:
        raise ValueError(f"{f}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "experiment" not in meta:
        raise ValueError(f"{f}: not a mahppo checkpoint sidecar (no 'experiment')")
    check_sidecar(meta, f)
    return meta


# -- the sidecar as a trust boundary ------------------------------------------------------------

SIGNATURE = "signature"  # {"alg": "hmac-sha256", "value": hex}: over the rest of the sidecar (digests included)
_COUNTS = ("iteration", "env_steps", "teacher_steps")


def check_sidecar(meta: dict[str, Any], path: Path) -> None:
    """Every field a command reads from a sidecar, by type and range (``CheckpointError`` naming the file and
    the field): the experiment (``Experiment.from_dict``: the cell's N, C, distances, beta ... within the
    env's bounds), the counters, the policy id."""
    from mahppo.algorithms.experiment import Experiment

    for name in _COUNTS:
        v = meta.get(name, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise CheckpointError(f"{path}: {name} = {v!r} must be an integer >= 0")
    t = meta.get("time_s", 0.0)
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < float("inf"):
        raise CheckpointError(f"{path}: time_s = {t!r} must be a finite number >= 0")
    for name in ("policy_id", "trained_at"):
        v = meta.get(name)
        if v is not None and (not isinstance(v, str) or len(v) > 256):
            raise CheckpointError(f"{path}: {name} = {str(v)[:80]!r} must be a string of at most 256 characters")
    if "experiment" in meta:
        try:
            Experiment.from_dict(meta["experiment"], where="experiment", consistent=False)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: {exc}") from None


def _signed_bytes(sidecar: dict[str, Any]) -> bytes:
    """The canonical bytes a signature covers: the sidecar as read back from its JSON, without the signature."""
    data = json.loads(json.dumps(sidecar, default=str))
    data.pop(SIGNATURE, None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_sidecar(sidecar: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """``sidecar`` with an HMAC-SHA256 signature by ``key`` (unchanged without a key)."""
    if key is None:
        return sidecar
    return {**sidecar, SIGNATURE: {"alg": "hmac-sha256",
                                   "value": hmac.new(key, _signed_bytes(sidecar), hashlib.sha256).hexdigest()}}


def check_signature(sidecar: dict[str, Any], path: Path, key: bytes | None) -> None:
    """With a signing key configured: the sidecar must carry a valid signature by it (the digests of every
    weight file are in the sidecar, so a swapped weight file or an edited field is refused)."""
    if key is None:
        return
    sig = sidecar.get(SIGNATURE)
    if not isinstance(sig, dict) or sig.get("alg") != "hmac-sha256" or not isinstance(sig.get("value"), str):
        raise CheckpointError(f"{path}: not signed, and a signing key is configured (${SIGNING_KEY_ENV}); "
                              "refusing an unsigned checkpoint")
    want = hmac.new(key, _signed_bytes(sidecar), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig["value"]):
        raise CheckpointError(f"{path}: the signature does not match (the sidecar was edited, or signed with "
                              "another key): refusing it")


def write_sidecar(ckpt: Path, sidecar: dict[str, Any]) -> None:
    """The sidecar, signed when ``$MAHPPO_SIGNING_KEY_FILE`` is set, written atomically."""
    write_json_atomic(Path(ckpt) / POLICY_META, sign_sidecar(sidecar, signing_key()))


def read_sidecar(ckpt: str | Path) -> dict[str, Any]:
    path = Path(ckpt) / POLICY_META
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the checkpoint is incomplete)")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    check_signature(meta, path, signing_key())
    check_sidecar(meta, path)
    return meta


def _manifest(ckpt: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for p in sorted(ckpt.rglob("*")):
        rel = p.relative_to(ckpt).as_posix()
        if p.is_file() and rel != POLICY_META and not p.name.endswith(".tmp"):
            files[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return files


def verify(ckpt: str | Path, *, for_resume: bool) -> dict[str, Any]:
    """Check a checkpoint; return its sidecar. ``for_resume``: every file of RLlib's state;
    otherwise (acting) the weights-only export only. Raises ``CheckpointError`` naming the file."""
    ckpt = Path(ckpt)
    meta = read_sidecar(ckpt)
    side = ckpt / POLICY_META
    export = meta.get("export")
    if not isinstance(export, dict) or not isinstance(export.get("sha256"), dict):
        raise CheckpointError(f"{side}: no weights-only export recorded (written by an older mahppo: "
                              "re-train, or resume it with an earlier version)")
    try:
        verify_export(ckpt / EXPORT_DIR, export["sha256"])
    except ExportError as exc:
        raise CheckpointError(str(exc)) from None
    if not for_resume:
        return meta
    files, modules = meta.get("files"), meta.get("modules")
    if not isinstance(files, dict) or not isinstance(modules, list) or not modules:
        raise CheckpointError(f"{side}: no file manifest or module list (cannot verify the checkpoint)")
    required = [*REQUIRED_FILES, *(f"{MODULES_SUBDIR}/{m}/module_state.pkl" for m in modules)]
    for rel in required:
        if rel not in files:
            raise CheckpointError(f"{ckpt / rel}: not in the checkpoint's manifest (incomplete save)")
    for rel, info in files.items():
        path = ckpt / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise CheckpointError(f"{side}: bad path {rel!r} in the manifest")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing")
        size = path.stat().st_size
        if size != info.get("size"):
            raise CheckpointError(f"{path}: {size} bytes, the manifest says {info.get('size')} (truncated?)")
        if sha256_file(path) != info.get("sha256"):
            raise CheckpointError(f"{path}: SHA-256 differs from the manifest (modified)")
    return meta


# -- saving and pruning ------------------------------------------------------------------------

def module_ids(algo: Any) -> list[str]:
    """Every module of the algorithm (actors and learner-only ones such as a critic)."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

    spec = algo.config.rl_module_spec
    if isinstance(spec, MultiRLModuleSpec):
        return sorted(spec.rl_module_specs)
    return sorted(algo.learner_group.get_state(components="learner/rl_module")["learner"]["rl_module"])


def acting_modules(algo: Any) -> dict[str, Any]:
    """The modules that act (not learner-only), as the samplers hold them."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

    spec = algo.config.rl_module_spec
    ids = [m for m in module_ids(algo)
           if not (isinstance(spec, MultiRLModuleSpec) and spec.rl_module_specs[m].learner_only)]
    return {m: algo.get_module(m) for m in ids}


def write_checkpoint(algo: Any, ckpt: str | Path, meta: dict[str, Any], *,
                     acting: dict[str, Any] | None = None) -> Path:
    """Save ``algo`` to the folder ``ckpt`` (replaced if it exists): RLlib's state, the weights-only
    export of ``acting`` (default: every module that is not learner-only) and the sidecar (``meta`` +
    module ids + export digests + file manifest), written last; then verify it."""
    ckpt = Path(ckpt).expanduser().resolve()  # RLlib needs absolute paths
    if ckpt.exists():
        shutil.rmtree(ckpt)
    algo.save_to_path(str(ckpt))
    digests = write_export(acting if acting is not None else acting_modules(algo), ckpt / EXPORT_DIR)
    sidecar = {**meta, "modules": module_ids(algo), "export": {"dir": EXPORT_DIR, "sha256": digests},
               "files": _manifest(ckpt)}
    write_sidecar(ckpt, sidecar)
    verify(ckpt, for_resume=True)
    return ckpt


def save_into_run(run_dir: str | Path, iteration: int, write: Callable[[Path], Any], *,
                  env_steps: int | None = None, keep: int = KEEP_CHECKPOINTS) -> Path:
    """Checkpoint ``iter_N`` of a run: ``write(path)`` saves it (e.g. ``Run.save``), then it is
    verified, recorded in ``checkpoints.json``, and only then are older ones pruned to ``keep``.
    A checkpoint that does not verify raises ``CheckpointError``: not recorded, nothing pruned."""
    run_dir = Path(run_dir).expanduser().resolve()
    name = checkpoint_name(iteration)
    ckpt = run_dir / CHECKPOINTS_DIR / name
    record = read_record(run_dir) or []
    if any(e["name"] == name for e in record):  # the same iteration again (after a fallback)
        record = [e for e in record if e["name"] != name]
        write_record(run_dir, record)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    write(ckpt)
    verify(ckpt, for_resume=True)
    record.append({"name": name, "iteration": int(iteration), "env_steps": env_steps,
                   "saved_at": datetime.now(UTC).isoformat(timespec="seconds")})
    write_record(run_dir, record)
    prune(run_dir, keep)
    return ckpt


def save(algo: Any, run_dir: str | Path, meta: dict[str, Any], *, keep: int = KEEP_CHECKPOINTS,
         acting: dict[str, Any] | None = None) -> Path:
    """``write_checkpoint`` as ``iter_N`` of ``run_dir`` (N = ``meta["iteration"]``) via ``save_into_run``."""
    return save_into_run(run_dir, int(meta["iteration"]), lambda p: write_checkpoint(algo, p, meta, acting=acting),
                         env_steps=meta.get("env_steps"), keep=keep)


def prune(run_dir: str | Path, keep: int = KEEP_CHECKPOINTS) -> list[str]:
    """Delete all but the newest ``keep`` recorded checkpoints (record first, then the folders)."""
    if keep < 1:
        raise ValueError(f"keep = {keep!r} must be >= 1")
    record = read_record(run_dir) or []
    old, kept = record[:-keep], record[-keep:]
    if not old:
        return []
    write_record(run_dir, kept)
    for e in old:
        shutil.rmtree(checkpoint_path(run_dir, e), ignore_errors=True)
    return [e["name"] for e in old]


# -- finding the newest usable one -------------------------------------------------------------

def latest(run_dir: str | Path, *, for_resume: bool, report: Report = _stderr) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete recorded checkpoint of ``run_dir`` and its sidecar.

    ``None`` when the run has saved none yet. A newer incomplete one is skipped with a note through
    ``report``; none complete raises ``CheckpointError`` naming the newest one's problem.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir)
    if record is None:
        stray = sorted((run_dir / CHECKPOINTS_DIR).glob("*")) if (run_dir / CHECKPOINTS_DIR).is_dir() else []
        if stray:
            raise CheckpointError(f"{run_dir / RECORD_FILE}: missing, but {run_dir / CHECKPOINTS_DIR} is not "
                                  "empty: cannot tell which checkpoint is complete (a run of an older mahppo, or "
                                  "its record deleted)")
        return None
    if not record:
        return None
    problems: list[str] = []
    for entry in reversed(record):
        ckpt = checkpoint_path(run_dir, entry)
        try:
            meta = verify(ckpt, for_resume=for_resume)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:
            report(f"note: skipping {len(problems)} incomplete newer checkpoint(s) ({problems[0]}); "
                   f"using {ckpt} (iteration {meta.get('iteration')})")
        return ckpt, meta
    raise CheckpointError(f"no complete checkpoint in {run_dir}: {problems[0]}")


def find_for_acting(path: str | Path, report: Report = _stderr) -> Path:
    """A checkpoint directory (its export verified) or the newest usable one of a run directory."""
    path = Path(path)
    if (path / POLICY_META).is_file():
        verify(path, for_resume=False)
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no checkpoint (no such directory)")
    found = latest(path, for_resume=False, report=report)
    if found is None:
        raise FileNotFoundError(f"{path}: no checkpoint (expected {POLICY_META} here, or {RECORD_FILE} of a run)")
    return found[0]


def load_acting_modules(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The acting modules of a checkpoint from its weights-only export, and its sidecar.

    Reads JSON and safetensors only (never RLlib's pickles); every file is checked against the
    sidecar's digests first."""
    ckpt = Path(ckpt)
    meta = verify(ckpt, for_resume=False)
    try:
        modules = read_export(ckpt / EXPORT_DIR, meta["export"]["sha256"])
    except ExportError as exc:
        raise CheckpointError(str(exc)) from None
    return modules, meta


def write_acting_checkpoint(modules: dict[str, Any], ckpt: str | Path, meta: dict[str, Any]) -> Path:
    """A checkpoint that can only act (no RLlib state): the export of ``modules`` and a sidecar."""
    ckpt = Path(ckpt)
    digests = write_export(modules, ckpt / EXPORT_DIR)
    write_sidecar(ckpt, {**{k: v for k, v in meta.items() if k != SIGNATURE},
                         "export": {"dir": EXPORT_DIR, "sha256": digests}})
    return ckpt


def write_untrained_checkpoint(experiment: Any, ckpt: str | Path) -> Path:
    """An acting-only checkpoint of ``experiment``'s freshly initialised actors (the trained shapes: serving
    latency and tests of the service do not depend on the weights)."""
    from mahppo.algorithms.rllib.mahppo import build_config
    from mahppo.algorithms.rllib.modules import CRITIC_ID

    specs = build_config(experiment).rl_module_spec.rl_module_specs
    return write_acting_checkpoint({m: s.build() for m, s in specs.items() if m != CRITIC_ID}, ckpt, {
        "policy_id": f"untrained-n{experiment.env.num_ues}", "iteration": 0, "env_steps": 0,
        "experiment": experiment.to_dict()})


def copy_for_acting(ckpt: str | Path, dest: str | Path) -> Path:
    """Copy what acting needs (sidecar + export, no pickles) to ``dest`` (e.g. for MLflow)."""
    ckpt, dest = Path(ckpt), Path(dest)
    verify(ckpt, for_resume=False)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ckpt / EXPORT_DIR, dest / EXPORT_DIR, dirs_exist_ok=True)
    shutil.copy2(ckpt / POLICY_META, dest / POLICY_META)
    return dest


# -- resuming --------------------------------------------------------------------------------

def restore_checkpoint(algo: Any, ckpt: str | Path) -> dict[str, Any]:
    """Restore ``algo`` from one checkpoint after verifying it complete; return its sidecar.

    Refuses (``CheckpointError``) a checkpoint whose modules differ from the algorithm's: a module is
    never re-initialised silently. Reads RLlib's pickles: only for checkpoints you trust."""
    ckpt = Path(ckpt).expanduser().resolve()
    meta = verify(ckpt, for_resume=True)
    have, want = sorted(meta["modules"]), module_ids(algo)
    if have != want:
        raise CheckpointError(f"{ckpt / POLICY_META}: modules {have}, but this run builds {want}")
    algo.restore_from_path(str(ckpt))
    return meta


def resume_from(run_dir: str | Path, restore_fn: Callable[[Path], Any],
                report: Report = _stderr) -> dict[str, Any] | None:
    """Resume a run from its newest complete checkpoint: ``restore_fn(path)`` loads it (e.g.
    ``Run.restore``). Returns its sidecar, or ``None`` when the run has no checkpoint yet.

    Newer recorded checkpoints skipped as incomplete are dropped from the record (the run continues
    from the older one and replaces them); none complete raises ``CheckpointError``."""
    run_dir = Path(run_dir).expanduser().resolve()
    found = latest(run_dir, for_resume=True, report=report)
    if found is None:
        return None
    ckpt, meta = found
    restore_fn(ckpt)
    record = read_record(run_dir) or []
    kept = [e for e in record if e["iteration"] <= int(meta["iteration"])]
    if len(kept) != len(record):
        write_record(run_dir, kept)
    return meta


def restore(algo: Any, run_dir: str | Path, report: Report = _stderr) -> dict[str, Any] | None:
    """``resume_from`` for a bare RLlib algorithm."""
    return resume_from(run_dir, lambda p: restore_checkpoint(algo, p), report)


# -- run directories ---------------------------------------------------------------------------

RUN_FILE = "run.json"


def claim_run_dir(out: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Make ``out`` ready for a run: a new or empty folder; with ``resume`` an earlier run's folder;
    with ``overwrite`` an earlier run's folder emptied first. Anything else is refused, so one run
    never mixes into another's files."""
    out = Path(out).expanduser().resolve()
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    busy = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / RUN_FILE).is_file():
            raise FileNotFoundError(f"--resume {out}: no {RUN_FILE} (not a `mahppo train --out` dir)")
        return out
    if busy and not overwrite:
        raise ValueError(f"--out {out}: not empty (an earlier run?); continue it with --resume {out}, "
                         "replace it with --overwrite, or pick another --out")
    if busy:
        if not (out / RUN_FILE).is_file():
            raise ValueError(f"--overwrite {out}: refusing to empty a folder that is not a run's (no {RUN_FILE})")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out
