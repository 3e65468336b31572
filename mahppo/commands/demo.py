"""``mahppo demo``: the whole service on embedded defaults, in a few minutes on 2 cores.

1. train MAHPPO (N = 3, ResNet18 Jetson Nano profiles, C = 2, beta = 0.47) on a local Ray,
   tracked in a local MLflow store (SQLite, no server);
2. compare it, alone and inside the decision-time lookahead, with every baseline on the test scenario
   (table + training-curve PNG);
   and, on the same cell with arrivals, fading and mobility (``--scenario dynamic``), beside the rules;
3. serve it with Ray Serve on 127.0.0.1 and ask it for one frame's decisions (plain, for a cell a UE
   joins, and with the lookahead).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mahppo.commands._args import natural_int


def demo_experiment(**updates: object):
    """The demo's Experiment: the headline cell (N = 3, ResNet18, C = 2, beta 0.47), 20 000 env steps,
    the default actor and hyperparameters, tracked in MLflow."""
    from mahppo.algorithms.experiment import Experiment

    base = {"steps": 20_000, "mlflow": True, "mlflow_experiment": "mahppo-demo"}
    return Experiment().with_flat({**base, **{k: v for k, v in updates.items() if v is not None}}, where="mahppo demo")


def _cmd_demo(args: argparse.Namespace) -> int:
    from mahppo.algorithms.runs.tracking import check_reachable, remember_uri, ui_command
    from mahppo.algorithms.runs.train import train
    from mahppo.marl_env.metrics import format_cell
    from mahppo.serve.proxy import enable_for_local_ray

    enable_for_local_ray()  # before training starts the local Ray: its Serve proxy gets the read deadline
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    uri = remember_uri(args.mlflow_uri) or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    check_reachable(uri)
    experiment = demo_experiment(num_ues=args.num_ues, steps=args.steps, seed=args.seed, lr=args.lr, mlflow_uri=uri)
    print(f"== 1/3 train MAHPPO ({experiment.run.steps} env steps, N={experiment.env.num_ues}) on a local Ray; "
          f"MLflow: {ui_command(uri).rsplit(' ', 1)[-1]}")
    resume = (out / "train" / "run.json").exists() and args.resume
    summary = train(experiment, out / "train", resume=resume, overwrite=not resume)  # the demo owns demo_out/train
    print((out / "train" / "evaluation.md").read_text().rstrip())
    print(f"\n== 2/3 comparison written to {out / 'train' / 'evaluation.md'}; "
          f"curve: {out / 'train' / 'training_curve.png'}")
    trained = summary["evaluation"]["trained"]
    print(f"trained policy vs Local: latency x{format_cell(trained['latency_vs_local'], '.2f')}, "
          f"energy x{format_cell(trained['energy_vs_local'], '.2f')}, reward {trained['reward']:.3f}")
    ahead = summary["evaluation"].get("trained+lookahead")
    if ahead is not None:
        print("the same policy with the decision-time lookahead (rollouts on the simulator, every frame): latency "
              f"x{format_cell(ahead['latency_vs_local'], '.2f')}, energy "
              f"x{format_cell(ahead['energy_vs_local'], '.2f')}, reward {ahead['reward']:.3f}; static-search: "
              f"{summary['evaluation']['static-search']['reward']:.3f}")
    _dynamic_cell(experiment, summary["checkpoint"])
    try:
        from mahppo.serve.demo import serve_and_query
    except ImportError:
        print("\n== 3/3 serve: the serve package is not installed in this build")
        return 0
    print("\n== 3/3 serve the policy on 127.0.0.1 and ask it for one frame's decisions")
    reply = serve_and_query(summary["checkpoint"], port=args.port, shutdown_ray=True)  # the demo is done with Ray
    (out / "decisions.json").write_text(json.dumps(reply, indent=2))
    print(f"POST {reply['url']} (policy {reply['policy_id']}); state pool: every UE 50 m away, 200 tasks")
    for d in reply["decisions"]:
        print(f"  {d['ue_id']}: partition point {d['partition_point']}, channel {d['channel']}, "
              f"power {d['power_w']:.3f} W")
    if "joined_decisions" in reply:
        print("a MobileNetV2 phone joins (20 m, 120 tasks); the same policy decides the new cell, no retraining:")
        for d in reply["joined_decisions"]:
            print(f"  {d['ue_id']}: partition point {d['partition_point']}, channel {d['channel']}, "
                  f"power {d['power_w']:.3f} W")
    if "lookahead_decisions" in reply:
        print('the first state pool again with "lookahead": true (rollouts of the policy on a simulator of the cell):')
        for d in reply["lookahead_decisions"]:
            print(f"  {d['ue_id']}: partition point {d['partition_point']}, channel {d['channel']}, "
                  f"power {d['power_w']:.3f} W")
    print(f"\nMLflow UI: {ui_command(uri)}")
    return 0


DEMO_DYNAMIC_EPISODES = 4  # of the dynamic scenario's fixed evaluation episodes (seconds, not minutes)


def _dynamic_cell(experiment, checkpoint: str) -> None:
    """The same cell with arrivals, fading and mobility (``--scenario dynamic``): the rules that see what the
    policy sees, and the policy trained on the paper's static cell, on the first fixed evaluation episodes."""
    from mahppo.algorithms.acting.policy import load_policy
    from mahppo.marl_env.evaluation import evaluate
    from mahppo.marl_env.policies import make_baseline

    cell = experiment.env.with_updates(scenario="dynamic", max_frames=None)
    print(f"\nthe same {cell.num_ues}-UE cell with Poisson arrivals, Rayleigh fading and moving UEs "
          f"(--scenario dynamic, {DEMO_DYNAMIC_EPISODES} of its fixed evaluation episodes; mean episode cost, "
          "lower is better):")
    costs = {name: -evaluate(make_baseline(name), cell, episodes=DEMO_DYNAMIC_EPISODES)["reward"]
             for name in ("local", "rotate", "maxweight", "myopic")}
    costs["trained (on the static cell)"] = -evaluate(load_policy(checkpoint), cell,
                                                       episodes=DEMO_DYNAMIC_EPISODES)["reward"]
    print("  " + ", ".join(f"{name} {cost:.2f}" for name, cost in costs.items()))
    print("  (mahppo train --scenario dynamic trains for this cell; where learning stands there: docs/dynamic.md)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, compare, track and serve on embedded defaults (a few minutes)")
    p.add_argument("--out", default="demo_out", help="folder for everything the demo writes, MLflow store "
                   "and artefacts included (default demo_out)")
    d = demo_experiment()
    p.add_argument("--steps", type=int, default=None, help=f"env steps to train (default: {d.run.steps})")
    p.add_argument("--num-ues", type=int, default=None, help=f"N UEs (default: {d.env.num_ues})")
    p.add_argument("--seed", type=natural_int, default=None, help=f"seed (default: {d.run.seed})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default: {d.learning_rate}, decaying linearly; the paper: 1e-4)")
    p.add_argument("--port", type=int, default=8765, help="port of the short-lived Serve on 127.0.0.1 (default 8765)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: sqlite:///OUT/mlflow.db)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo run")
    p.set_defaults(handler=_cmd_demo)
