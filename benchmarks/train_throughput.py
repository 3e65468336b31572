"""Training throughput: RLlib's own sampler and learner step ("rllib") vs ours ("vector").

For each N it measures, in env steps per second (1 iteration = |M| = 1024 env steps, the paper's
hyperparameters, 8 env copies, one torch thread, everything in this process as `mahppo train` does):

- sampling: ``EnvRunner.sample()`` with the policy in the loop (the episodes RLlib's learner gets);
- learning: ``Learner.update()`` on one iteration's episodes (learner connectors + K |M| / B updates);
- loop: ``Algorithm.train()`` (sampling + learning + weight sync; no evaluation, no checkpoints).

``rllib`` = RLlib's ``MultiAgentEnvRunner`` and RLlib's optimizer set-up, gradient step and
minibatch iterator; ``vector`` = ``VectorEnvRunner`` and the lean learner step (the defaults).
Times are wall-clock; the CPU time of this process is printed too, since the machine may be shared.

    python benchmarks/train_throughput.py --num-ues 3 10 50 --out bench_out/throughput.md
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _paths():
    from ray.rllib.core.learner.learner import Learner
    from ray.rllib.core.learner.torch.torch_learner import TorchLearner

    from mahppo.algorithms.rllib.learner import MAHPPOTorchLearner

    class RLlibLearnerStep(MAHPPOTorchLearner):
        """MAHPPO's loss with RLlib's own optimizer set-up, gradient step and minibatch iterator."""

        configure_optimizers_for_module = TorchLearner.configure_optimizers_for_module
        apply_gradients = TorchLearner.apply_gradients
        _create_iterator_if_necessary = Learner._create_iterator_if_necessary

    return {"rllib": ("rllib", RLlibLearnerStep), "vector": ("vector", MAHPPOTorchLearner)}


def config_for(num_ues: int, path: str, envs: int, shared: bool = False):
    from mahppo.algorithms.experiment import Experiment
    from mahppo.algorithms.rllib.mahppo import build_config

    sampler, learner_cls = _paths()[path]
    flat = {"num_ues": num_ues, "num_envs_per_env_runner": envs, "sampler": sampler}
    if shared:  # the shared actor (agent-centric observations), same N every episode
        flat.update(actor="shared", obs_mode="agent", max_ues=max(16, num_ues))
    else:  # the paper's per-UE actors
        flat.update(actor="per-ue")
    cfg = build_config(Experiment().with_flat(flat))
    cfg.learners(learner_class=learner_cls)
    return cfg


def _sample_1024(runner) -> int:
    return sum(len(e) for e in runner.sample(num_timesteps=1024))


def _node_id(runner) -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    w, c = _clock()
    return w - t[0], c - t[1]


def measure(num_ues: int, path: str, *, envs: int, iterations: int, shared: bool) -> dict[str, float]:
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    cfg = config_for(num_ues, path, envs, shared)
    runner_cls = cfg.env_runner_cls
    if runner_cls is None:
        from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner as runner_cls
    runner = runner_cls(config=cfg)
    learner = cfg.learner_class(config=cfg, module_spec=cfg.get_multi_rl_module_spec(
        spaces=runner.get_spaces(), inference_only=False))
    learner.build()
    runner.sample()  # warm-up (numba, first reset)
    steps = 0
    wall = cpu = 0.0
    batches = []
    for _ in range(iterations):
        t = _clock()
        eps = runner.sample()
        w, c = _since(t)
        wall, cpu, steps = wall + w, cpu + c, steps + sum(len(e) for e in eps)
        batches.append(eps)
    row = {"sample_steps_s": steps / wall, "sample_cpu_steps_s": steps / cpu}
    learner.update(episodes=runner.sample(), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0},
                   num_epochs=cfg.num_epochs, minibatch_size=cfg.minibatch_size, shuffle_batch_per_epoch=True)
    wall = cpu = 0.0
    for eps in batches:
        t = _clock()
        learner.update(episodes=eps, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0}, num_epochs=cfg.num_epochs,
                       minibatch_size=cfg.minibatch_size, shuffle_batch_per_epoch=True)
        w, c = _since(t)
        wall, cpu = wall + w, cpu + c
    row.update(learn_steps_s=steps / wall, learn_cpu_steps_s=steps / cpu)
    runner.stop()
    algo = cfg.build_algo()
    try:
        algo.train()  # warm-up
        t = _clock()
        done = 0
        for _ in range(iterations):
            done += algo.train()["env_runners"]["num_env_steps_sampled"]
        w, c = _since(t)
    finally:
        algo.stop()
    row.update(loop_steps_s=done / w, loop_cpu_steps_s=done / c, loop_s_per_iter=w / iterations,
               rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return row


def sampling_scale_out(num_ues: int, runners: int, *, envs: int, rounds: int) -> dict[str, float]:
    """Sampling only, on ``runners`` remote env runners in parallel (each samples 1024 env steps)."""
    cfg = config_for(num_ues, "vector", envs)
    cfg.env_runners(num_env_runners=runners)
    algo = cfg.build_algo()
    try:
        group = algo.env_runner_group
        group.foreach_env_runner(_sample_1024, local_env_runner=False)  # warm-up
        t = time.perf_counter()
        steps = 0
        for _ in range(rounds):
            steps += sum(group.foreach_env_runner(_sample_1024, local_env_runner=False))
        wall = time.perf_counter() - t
        nodes = len(set(group.foreach_env_runner(_node_id, local_env_runner=False)))
    finally:
        algo.stop()
    return {"steps_s": steps / wall, "nodes": nodes}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-ues", type=int, nargs="+", default=[3, 10, 50])
    p.add_argument("--paths", nargs="+", default=["rllib", "vector"], choices=["rllib", "vector"])
    p.add_argument("--envs", type=int, default=8, help="env copies per runner")
    p.add_argument("--iterations", type=int, default=3, help="measured iterations per figure (after 1 warm-up)")
    p.add_argument("--shared", action="store_true", help="also one shared actor for all UEs")
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    p.add_argument("--runners", type=int, nargs="+", default=None,
                   help="instead: sampling only on this many remote env runners (e.g. 1 2)")
    p.add_argument("--address", default=None, help="Ray cluster to use (default: a local Ray)")
    args = p.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    if args.runners:
        print(f"load average before: {os.getloadavg()}; cluster: {ray.cluster_resources()}")
        print("| N | env runners | nodes used | sampling (env steps/s) | vs 1 runner |\n|---|---|---|---|---|")
        base = None
        for n in args.num_ues:
            for k in args.runners:
                r = sampling_scale_out(n, k, envs=args.envs, rounds=args.iterations)
                base = r["steps_s"] if k == args.runners[0] else base
                print(f"| {n} | {k} | {r['nodes']} | {r['steps_s']:,.0f} | {r['steps_s'] / base:.2f}x |", flush=True)
        print(f"load average after: {os.getloadavg()}")
        ray.shutdown()
        return
    head = ("| N | actors | path | sampling (env steps/s) | learning (env steps/s) | loop (env steps/s) | "
            "loop s/iter | CPU: sampling / learning / loop | peak RSS GiB |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    print(f"load average before: {os.getloadavg()}")
    print(head, flush=True)
    for n in args.num_ues:
        for shared in ([False, True] if args.shared else [False]):
            for path in args.paths:
                r = measure(n, path, envs=args.envs, iterations=args.iterations, shared=shared)
                line = (f"| {n} | {'shared' if shared else 'per UE'} | {path} | {r['sample_steps_s']:,.0f} | "
                        f"{r['learn_steps_s']:,.0f} | {r['loop_steps_s']:,.0f} | {r['loop_s_per_iter']:.2f} | "
                        f"{r['sample_cpu_steps_s']:,.0f} / {r['learn_cpu_steps_s']:,.0f} / "
                        f"{r['loop_cpu_steps_s']:,.0f} | {r['rss_gib']:.2f} |")
                lines.append(line)
                print(line, flush=True)
    print(f"load average after: {os.getloadavg()}")
    ray.shutdown()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
