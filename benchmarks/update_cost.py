"""Cost of one minibatch update's forward and backward passes, per module, for the default shared actor
and set critic (``algorithms/rllib/modules.py``): the actor on B rows, the set critic on B rows (every agent's
copy of a frame, as before it trained on one row per frame) and on B / N rows (one row per frame, now).

    python benchmarks/update_cost.py            # N = 3, B = 256
    python benchmarks/update_cost.py --num-ues 10
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-ues", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()

    import numpy as np
    import torch
    from ray.rllib.core.columns import Columns

    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import build_config
    from mahppo.algorithms.rllib.modules import CRITIC_ID, SHARED_ID
    from mahppo.marl_env.parallel import CollabInferenceEnv

    torch.set_num_threads(1)  # as training does (algorithms.run.set_torch_threads)
    experiment = Experiment().with_flat({"num_ues": args.num_ues})
    modules = build_config(experiment).rl_module_spec.build()
    actor, critic = modules[SHARED_ID], modules[CRITIC_ID]
    env = CollabInferenceEnv(experiment.env)
    obs, _ = env.reset(seed=0)
    rows = np.stack([obs[a] for a in env.agents])
    b = args.batch_size
    x = torch.as_tensor(np.tile(rows, (b // len(rows) + 1, 1))[:b])

    def timed(step) -> float:
        for _ in range(10):
            step()
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            step()
        return (time.perf_counter() - t0) / args.repeats * 1e3

    def actor_step() -> None:
        actor.dist_inputs(x).sum().backward()

    def critic_step(n: int) -> None:
        critic.compute_values({Columns.OBS: x[:n]}).sum().backward()

    per_frame = max(1, round(b / args.num_ues))
    print(f"load average {os.getloadavg()[0]:.2f}; N = {args.num_ues}, B = {b}")
    print(f"actor, {b} rows: {timed(actor_step):.2f} ms")
    print(f"set critic, {b} rows (every agent's copy): {timed(lambda: critic_step(b)):.2f} ms")
    print(f"set critic, {per_frame} rows (one per frame): {timed(lambda: critic_step(per_frame)):.2f} ms")


if __name__ == "__main__":
    main()
