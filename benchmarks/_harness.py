"""What every benchmark shares: arguments, seeds, Ray, a timer, peak memory, result files and progress.

A benchmark builds its parser with ``parser(__doc__, out=..., seeds=..., quick=...)`` (the common flags
``--out``, ``--seeds``, ``--quick``), reads it with ``parse`` (``--quick`` applies the script's small
settings), starts Ray with ``start_ray`` (one torch thread, a local Ray sized to this machine, or
``--address``), times with ``timer()``, measures memory with ``peak_memory()``, and writes its numbers
with ``write_markdown`` / ``write_json`` (the command line and the load average are recorded beside
them). ``run(main)`` fixes the string-hash seed first (``runtime/hashseed.py``: the same seed, the same run).

    from _harness import parser, parse, run, timer
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def parser(doc: str | None, *, out: str | None = None, seeds: Sequence[int] | None = None,
           quick: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """An argument parser with the module docstring as help and the common flags this benchmark uses:
    ``--out DIR`` (default ``out``), ``--seeds S ...`` (default ``seeds``) and ``--quick`` (the settings
    in ``quick`` for the arguments not given: a tiny run that checks the script, not a measurement)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if out is not None:
        ap.add_argument("--out", default=out, help="output folder (default: %(default)s)")
    if seeds is not None:
        ap.add_argument("--seeds", type=int, nargs="+", default=list(seeds), help="seeds (default: %(default)s)")
    if quick is not None:
        ap.add_argument("--quick", action="store_true",
                        help="a tiny run that checks the script (" + ", ".join(f"{k}={v}" for k, v in quick.items())
                        + "), not a measurement")
        ap.set_defaults(_quick=quick)
    return ap


def parse(ap: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse; with ``--quick``, the parser's quick settings replace the arguments left at their defaults."""
    args = ap.parse_args(argv)
    quick = vars(args).pop("_quick", None)
    if getattr(args, "quick", False) and quick:
        for key, value in quick.items():
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, value)
    return args


def run(main: Callable[[], Any]) -> None:
    """Run ``main`` in a process with a fixed string-hash seed (restarts once if unset); exit with its code."""
    from mahppo.runtime.hashseed import restart_with_fixed_hash_seed

    restart_with_fixed_hash_seed(sys.argv)
    code = main()
    raise SystemExit(code if isinstance(code, int) else 0)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator on ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
    return np.random.default_rng(seed)


def start_ray(address: str | None = None) -> None:
    """One torch thread per process, then Ray: ``address`` (or ``$RAY_ADDRESS``) if given, else a local Ray
    sized to this machine (``algorithms/runs/run.py``: ``init_ray``, as ``mahppo train`` does)."""
    from mahppo.algorithms.runs.run import init_ray, set_torch_threads

    set_torch_threads(1)
    init_ray(address)


def stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@dataclass
class Timer:
    """Wall-clock and CPU seconds of this process, filled in when the ``timer()`` block ends."""

    wall: float = 0.0
    cpu: float = 0.0
    _start: tuple[float, float] = field(default=(0.0, 0.0), repr=False)


@contextmanager
def timer() -> Iterator[Timer]:
    """``with timer() as t: ...``; afterwards ``t.wall`` and ``t.cpu`` are the block's seconds."""
    t = Timer(_start=(time.perf_counter(), time.process_time()))
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - t._start[0]
        t.cpu = time.process_time() - t._start[1]


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process and all its descendants (Ray's raylet and workers included), from
    Linux ``/proc``; elsewhere the peak of this process and its waited-for children (``getrusage``)."""
    root = pid or os.getpid()
    try:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        total, todo, page = 0, [root], os.sysconf("SC_PAGE_SIZE")
        while todo:
            p = todo.pop()
            todo.extend(children.get(p, []))
            try:
                with open(f"/proc/{p}/statm") as f:
                    total += int(f.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                pass
        return total
    except OSError:
        import resource

        return 1024 * max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


@dataclass
class PeakMemory:
    """The peak of ``tree_rss_bytes`` seen during a ``peak_memory()`` block (sampled every ``period_s``)."""

    bytes: int = 0

    @property
    def gib(self) -> float:
        return self.bytes / 2**30


@contextmanager
def peak_memory(period_s: float = 1.0) -> Iterator[PeakMemory]:
    """``with peak_memory() as m: ...``; ``m.gib`` is the peak resident memory of this process and its
    descendants while the block ran."""
    peak, stop = PeakMemory(tree_rss_bytes()), threading.Event()

    def watch() -> None:
        while not stop.wait(period_s):
            peak.bytes = max(peak.bytes, tree_rss_bytes())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield peak
    finally:
        stop.set()
        watcher.join()
        peak.bytes = max(peak.bytes, tree_rss_bytes())


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (what ``uptime`` prints)."""
    return [round(x, 2) for x in os.getloadavg()]


def context() -> dict[str, Any]:
    """What a result file records beside the numbers: the command, the time, the load average, the CPUs."""
    return {"command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average": load_average(), "cpus": os.cpu_count()}


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table: a header row, the separator, one line per row (cells as given, ``str``-ed)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path: str | Path | None, table: str, *, note: str = "") -> str:
    """Print ``table`` (with ``note`` above it) and write it to ``path`` (if given) under the command and
    the load average that made it; returns the text written."""
    text = (note + "\n\n" if note else "") + table
    print(text, flush=True)
    if path is not None:
        ctx = context()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"`{ctx['command']}` (load average {ctx['load_average']}, {ctx['cpus']} CPUs, "
                        f"{ctx['time_utc']})\n\n{text}\n")
    return text


def write_json(path: str | Path, results: Any) -> Path:
    """Write ``{"command", "time_utc", "load_average", "cpus", "results"}`` to ``path`` atomically (an
    interrupted write leaves the previous file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({**context(), "results": results}, indent=1, default=float))
    tmp.replace(path)
    return path


def read_json(path: str | Path, default: Any = None) -> Any:
    """The ``results`` of a file ``write_json`` wrote (a bare JSON file as it is); ``default`` if absent."""
    path = Path(path)
    if not path.exists():
        return default
    data = json.loads(path.read_text())
    return data["results"] if isinstance(data, dict) and "results" in data and "command" in data else data


def progress(iterable: Iterable, desc: str = "", total: int | None = None, **kw: Any):
    """A tqdm progress bar on stderr (off when stderr is not a terminal, e.g. under ``nohup``)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, disable=not sys.stderr.isatty(), dynamic_ncols=True, **kw)


def mean_std(values: Iterable[float], digits: int = 3, spec: str = "f", std_spec: str | None = None) -> str:
    """``mean ± std`` of ``values`` (the mean alone for one value), both as ``.{digits}{spec}`` unless
    ``std_spec`` says how to write the std (e.g. ``".2g"``)."""
    a = np.asarray(list(values), dtype=float)
    mean = f"{a.mean():.{digits}{spec}}"
    return f"{mean} ± {a.std():{std_spec or f'.{digits}{spec}'}}" if len(a) > 1 else mean


def figure(figsize: tuple[float, float] = (8, 4.4), ncols: int = 1):
    """A new matplotlib figure and its ``ncols`` axes side by side (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


# -- the "any cell" studies (any_cell.py, lookahead.py) ------------------------------------------------

BENCH_BASELINES = ("local", "static-search", "rotate")


def cell_key(num_ues: int | None, specs: Sequence[str] | None = None) -> str:
    """``n5`` (N ResNet18 UEs) or ``mix:resnet18,vgg11,...`` (one UE per DNN named)."""
    return "mix:" + ",".join(specs) if specs else f"n{num_ues}"


def test_cell(cell: str, base=None):
    """The test-scenario ``EnvConfig`` of ``cell`` (a ``cell_key``) on ``base``'s other settings (a trained
    policy's ``env``; default: the default cell)."""
    from mahppo.marl_env.config import EnvConfig

    kw = {"num_ues": int(cell[1:]), "ue_specs": None} if cell.startswith("n") else {"ue_specs": cell[4:].split(",")}
    return (base or EnvConfig()).with_updates(**kw, scenario="test")


def cell_order(cell: str) -> int:
    """Sort key: ``nN`` cells by N, mixed cells last."""
    return int(cell[1:]) if cell.startswith("n") else 10**6


def save_reward_vs_n(fig, ax, path: str | Path) -> None:
    """Label, scale and save a reward-vs-N figure (``any_cell.py``'s and ``lookahead.py``'s)."""
    import matplotlib.ticker

    ax.set_xlabel("N (UEs in the cell, test scenario)")
    ax.set_ylabel("episode reward (sum of Eq. 12)")
    ax.set_yscale("symlog", linthresh=1.0)  # rewards from about -0.1 to -20: linear above -1
    lo, hi = ax.get_ylim()
    ax.set_yticks([t for t in (-0.1, -0.25, -0.5, -1, -2, -5, -10, -20, -50, -100) if lo <= t <= hi])
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path)
