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

from _harness import (
    load_average,
    markdown_table,
    parse,
    parser,
    peak_memory,
    run,
    start_ray,
    stop_ray,
    timer,
    write_json,
    write_markdown,
)


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
        flat.update(actor="shared", obs_mode="agent")
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


def measure(num_ues: int, path: str, *, envs: int, iterations: int, shared: bool) -> dict[str, float]:
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    cfg = config_for(num_ues, path, envs, shared)
    runner_cls = cfg.env_runner_cls
    if runner_cls is None:
        from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner as runner_cls
    with peak_memory() as mem:
        runner = runner_cls(config=cfg)
        learner = cfg.learner_class(config=cfg, module_spec=cfg.get_multi_rl_module_spec(
            spaces=runner.get_spaces(), inference_only=False))
        learner.build()
        runner.sample()  # warm-up (numba, first reset)
        batches = []
        with timer() as t:
            for _ in range(iterations):
                batches.append(runner.sample())
        steps = sum(len(e) for eps in batches for e in eps)
        row = {"sample_steps_s": steps / t.wall, "sample_cpu_steps_s": steps / t.cpu}

        def update(eps) -> None:
            learner.update(episodes=eps, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0}, num_epochs=cfg.num_epochs,
                           minibatch_size=cfg.minibatch_size, shuffle_batch_per_epoch=True)

        update(runner.sample())  # warm-up
        with timer() as t:
            for eps in batches:
                update(eps)
        row.update(learn_steps_s=steps / t.wall, learn_cpu_steps_s=steps / t.cpu)
        runner.stop()
        algo = cfg.build_algo()
        try:
            algo.train()  # warm-up
            done = 0
            with timer() as t:
                for _ in range(iterations):
                    done += algo.train()["env_runners"]["num_env_steps_sampled"]
        finally:
            algo.stop()
    row.update(loop_steps_s=done / t.wall, loop_cpu_steps_s=done / t.cpu, loop_s_per_iter=t.wall / iterations,
               rss_gib=mem.gib)
    return row


def sampling_scale_out(num_ues: int, runners: int, *, envs: int, rounds: int) -> dict[str, float]:
    """Sampling only, on ``runners`` remote env runners in parallel (each samples 1024 env steps)."""
    cfg = config_for(num_ues, "vector", envs)
    cfg.env_runners(num_env_runners=runners)
    algo = cfg.build_algo()
    try:
        group = algo.env_runner_group
        group.foreach_env_runner(_sample_1024, local_env_runner=False)  # warm-up
        steps = 0
        with timer() as t:
            for _ in range(rounds):
                steps += sum(group.foreach_env_runner(_sample_1024, local_env_runner=False))
        nodes = len(set(group.foreach_env_runner(_node_id, local_env_runner=False)))
    finally:
        algo.stop()
    return {"steps_s": steps / t.wall, "nodes": nodes}


def main() -> None:
    ap = parser(__doc__, out=None, quick={"num_ues": [2], "paths": ["vector"], "envs": 1, "iterations": 1})
    ap.add_argument("--num-ues", type=int, nargs="+", default=[3, 10, 50])
    ap.add_argument("--paths", nargs="+", default=["rllib", "vector"], choices=["rllib", "vector"])
    ap.add_argument("--envs", type=int, default=8, help="env copies per runner")
    ap.add_argument("--iterations", type=int, default=3, help="measured iterations per figure (after 1 warm-up)")
    ap.add_argument("--shared", action="store_true", help="also one shared actor for all UEs")
    ap.add_argument("--out", default=None, help="also write the table (markdown, and .json beside it) here")
    ap.add_argument("--runners", type=int, nargs="+", default=None,
                    help="instead: sampling only on this many remote env runners (e.g. 1 2)")
    ap.add_argument("--address", default=None, help="Ray cluster to use (default: a local Ray)")
    args = parse(ap)

    import ray

    start_ray(args.address)
    print(f"load average before: {load_average()}; cluster: {ray.cluster_resources()}", flush=True)
    if args.runners:
        rows, base = [], None
        for n in args.num_ues:
            for k in args.runners:
                r = sampling_scale_out(n, k, envs=args.envs, rounds=args.iterations)
                base = r["steps_s"] if k == args.runners[0] else base
                rows.append({"num_ues": n, "runners": k, **r, "vs_first": r["steps_s"] / base})
        table = markdown_table(["N", "env runners", "nodes used", "sampling (env steps/s)", "vs 1 runner"],
                               [[r["num_ues"], r["runners"], r["nodes"], f"{r['steps_s']:,.0f}",
                                 f"{r['vs_first']:.2f}x"] for r in rows])
    else:
        rows = []
        for n in args.num_ues:
            for shared in ([False, True] if args.shared else [False]):
                for path in args.paths:
                    r = measure(n, path, envs=args.envs, iterations=args.iterations, shared=shared)
                    rows.append({"num_ues": n, "actors": "shared" if shared else "per UE", "path": path, **r})
                    print(rows[-1], flush=True)
        table = markdown_table(
            ["N", "actors", "path", "sampling (env steps/s)", "learning (env steps/s)", "loop (env steps/s)",
             "loop s/iter", "CPU: sampling / learning / loop", "peak RSS GiB (process tree)"],
            [[r["num_ues"], r["actors"], r["path"], f"{r['sample_steps_s']:,.0f}", f"{r['learn_steps_s']:,.0f}",
              f"{r['loop_steps_s']:,.0f}", f"{r['loop_s_per_iter']:.2f}",
              f"{r['sample_cpu_steps_s']:,.0f} / {r['learn_cpu_steps_s']:,.0f} / {r['loop_cpu_steps_s']:,.0f}",
              f"{r['rss_gib']:.2f}"] for r in rows])
    print(f"load average after: {load_average()}")
    stop_ray()
    write_markdown(args.out, table)
    if args.out:
        write_json(str(args.out).removesuffix(".md") + ".json", rows)


if __name__ == "__main__":
    run(main)
