"""Frames per second of the marl_env simulator with random actions, on one core.

Run: ``python benchmarks/env_throughput.py [--frames F]``. Measures the PettingZoo ``step`` (dict
actions, validation, observations) and the array path ``step_arrays`` separately; actions are drawn
up front so that the timing is the simulator's, not the action sampler's.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import mahppo.marl_env as marl_env  # noqa: E402


def measure(num_ues: int, frames: int, api: str, seed: int = 0) -> tuple[float, float]:
    env = marl_env.parallel_env(num_ues=num_ues)
    rng = np.random.default_rng(seed)
    n_act = env.system.num_actions
    pts = rng.integers(0, n_act, size=(frames, num_ues))
    chs = rng.integers(0, env.config.num_channels, size=(frames, num_ues))
    pws = rng.uniform(0.0, env.config.p_max_w, size=(frames, num_ues))
    agents = env.possible_agents
    acts = [{a: (int(pts[t, i]), int(chs[t, i]), pws[t, i:i + 1]) for i, a in enumerate(agents)}
            for t in range(frames)] if api == "pettingzoo" else None
    env.reset(seed=seed)
    env.step_arrays(pts[0], chs[0], pws[0])  # compile / warm up
    env.reset(seed=seed)
    events = 0
    start = time.perf_counter()
    for t in range(frames):
        if not env.agents:
            env.reset()
        if api == "pettingzoo":
            env.step(acts[t])
        else:
            env.step_arrays(pts[t], chs[t], pws[t])
        events += env.system.last_events if hasattr(env.system, "last_events") else 0
    dt = time.perf_counter() - start
    return frames / dt, events / max(frames, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20000)
    args = ap.parse_args()
    print("| N | API | frames/s | events/frame |")
    print("|---|---|---|---|")
    for n in (5, 50):
        frames = args.frames if n <= 5 else max(args.frames // 5, 1000)
        for api in ("pettingzoo", "arrays"):
            fps, ev = measure(n, frames, api)
            print(f"| {n} | {api} | {fps:,.0f} | {ev:.0f} |")


if __name__ == "__main__":
    main()
