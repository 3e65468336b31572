"""Frames per second of the marl_env simulator with random actions, on one core.

Run: ``python benchmarks/env_throughput.py [--frames F]``. Measures the PettingZoo ``step`` (dict
actions, validation, observations) and the array path ``step_arrays`` separately; actions are drawn
up front so that the timing is the simulator's, not the action sampler's.
"""

from __future__ import annotations

from _harness import markdown_table, parse, parser, run, seed_everything, timer, write_json, write_markdown

import mahppo.marl_env as marl_env


def measure(num_ues: int, frames: int, api: str, seed: int = 0) -> tuple[float, float]:
    env = marl_env.parallel_env(num_ues=num_ues)
    rng = seed_everything(seed)
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
    with timer() as t_run:
        for t in range(frames):
            if not env.agents:
                env.reset()
            if api == "pettingzoo":
                env.step(acts[t])
            else:
                env.step_arrays(pts[t], chs[t], pws[t])
            events += env.system.last_events if hasattr(env.system, "last_events") else 0
    return frames / t_run.wall, events / max(frames, 1)


def main() -> None:
    ap = parser(__doc__, out="bench_out/env_throughput", quick={"frames": 500})
    ap.add_argument("--frames", type=int, default=20000)
    args = parse(ap)
    rows = []
    for n in (5, 50):
        frames = args.frames if n <= 5 else max(args.frames // 5, 100)
        for api in ("pettingzoo", "arrays"):
            fps, ev = measure(n, frames, api)
            rows.append({"num_ues": n, "api": api, "frames_per_s": fps, "events_per_frame": ev})
    write_markdown(f"{args.out}/env_throughput.md", markdown_table(
        ["N", "API", "frames/s", "events/frame"],
        [[r["num_ues"], r["api"], f"{r['frames_per_s']:,.0f}", f"{r['events_per_frame']:.0f}"] for r in rows]))
    write_json(f"{args.out}/env_throughput.json", rows)


if __name__ == "__main__":
    run(main)
