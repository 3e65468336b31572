"""Cost of one minibatch update's forward and backward passes, per module, for the default shared actor
and set critic (``algorithms/rllib/modules.py``): the actor on B rows, the set critic on B rows (every agent's
copy of a frame, as before it trained on one row per frame) and on B / N rows (one row per frame, now).
Median milliseconds over ``--repeats`` steps after 10 untimed ones.

    python benchmarks/update_cost.py            # N = 3, B = 256
    python benchmarks/update_cost.py --num-ues 10
"""

from __future__ import annotations

from _harness import load_average, parse, parser, run


def main() -> None:
    ap = parser(__doc__, quick={"repeats": 3})
    ap.add_argument("--num-ues", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=200)
    args = parse(ap)

    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns

    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import build_config
    from mahppo.algorithms.rllib.modules import CRITIC_ID, SHARED_ID
    from mahppo.algorithms.runs.run import set_torch_threads
    from mahppo.compression.profiles import median_latency
    from mahppo.marl_env.parallel import CollabInferenceEnv

    set_torch_threads(1)  # as training does
    experiment = Experiment().with_flat({"num_ues": args.num_ues})
    modules = build_config(experiment).rl_module_spec.build()
    actor, critic = modules[SHARED_ID], modules[CRITIC_ID]
    env = CollabInferenceEnv(experiment.env)
    obs, _ = env.reset(seed=0)
    rows = np.stack([obs[a] for a in env.agents])
    b = args.batch_size
    x = torch.as_tensor(np.tile(rows, (b // len(rows) + 1, 1))[:b])

    def timed(step) -> float:
        return 1e3 * median_latency(step, warmup=10, repeats=args.repeats)

    def actor_step() -> None:
        actor.dist_inputs(x).sum().backward()

    def critic_step(n: int) -> None:
        critic.compute_values({Columns.OBS: x[:n]}).sum().backward()

    per_frame = max(1, round(b / args.num_ues))
    print(f"load average {load_average()}; N = {args.num_ues}, B = {b}")
    print(f"actor, {b} rows: {timed(actor_step):.2f} ms")
    print(f"set critic, {b} rows (every agent's copy): {timed(lambda: critic_step(b)):.2f} ms")
    print(f"set critic, {per_frame} rows (one per frame): {timed(lambda: critic_step(per_frame)):.2f} ms")


if __name__ == "__main__":
    run(main)
