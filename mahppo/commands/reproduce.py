"""``mahppo reproduce``: the paper's Sec. 6 evaluation (Figs. 4, 8-13) as one command.

The plan (which panel needs which experiment) is ``tune_configs.paper``; running it, resumably, is
``tune_configs.reproduce``; this module only wires the options.
"""

from __future__ import annotations

import argparse

from mahppo.commands._args import emit_json, positive_int


def _ues(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ues {text!r}: expected N[,N...]") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"--ues {text!r}: expected UE numbers >= 1")
    return vals


def _handle(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from mahppo.tune_configs.paper import select_panels
    from mahppo.tune_configs.reproduce import budget_of

    budget = budget_of(args.budget)
    panels = select_panels(args.only.split(",") if args.only else None)  # both checked before Ray starts
    from mahppo.algorithms.runs.tracking import redact_uri, remember_uri, tracking_uri
    from mahppo.tune_configs.reproduce import run_plan

    uri = remember_uri(tracking_uri(args.mlflow_uri))
    overrides = {"seeds": args.seeds, "steps": args.steps, "ues": args.ues}
    print(f"mahppo reproduce: {len(panels)} panel(s), --budget {budget.name}"
          + (" (a smoke run)" if budget.smoke else "") + f"; out {args.out}; MLflow {redact_uri(uri)}")
    given = [(f"--{k}", ",".join(map(str, v)) if isinstance(v, tuple) else str(v))
             for k, v in (("only", args.only), *overrides.items()) if v]
    command = shlex.join(["mahppo", "reproduce", "--budget", budget.name, *(x for kv in given for x in kv)])
    res = run_plan(panels, budget, Path(args.out), Path(args.work), uri, address=args.address,
                   overrides=overrides, progress=not args.json and not args.no_progress, command=command,
                   execute=not args.no_run, time_limit_s=args.time_limit * 60 if args.time_limit else None)
    if args.json:
        emit_json(res)
    else:
        failed = f", {len(res['failed'])} FAILED or not run ({', '.join(res['failed'])})" if res["failed"] else ""
        print(f"ran {len(res['ran'])} piece(s), {len(res['skipped'])} finished earlier{failed}; "
              f"wrote {res['table']} and {len(res['pngs'])} PNG(s)")
    return 1 if res["failed"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce", help="the paper's whole Sec. 6 evaluation (Figs. 4, 8-13) as one resumable command",
        description="Run the paper's experiments (compression rates, MAHPPO vs Local and JALAD, the lr / K / "
        "memory / UE-number / beta studies, VGG11 and MobileNetV2) through `mahppo compress` (Ray tasks) and Tune "
        "studies (one trial per point and seed, tracked in MLflow), then write one PNG per figure panel and "
        "paper_vs_ours.md. Finished pieces are recorded in --out and never rerun.")
    p.add_argument("--budget", choices=["quick", "paper"], default="quick",
                   help="quick: every panel, 1 seed, 3072 steps per trial (a smoke run, ~30 min on 2 cores); "
                        "paper: 5 seeds x 50K steps, N = 3..10 (hours; use --address)")
    p.add_argument("--only", default=None, metavar="PANEL[,PANEL...]",
                   help="only these panels: fig4, fig8, fig9a-d, fig10, fig11, fig12, fig13a-f (default: all)")
    p.add_argument("--out", default="docs/paper", help="figures, table and the record of finished pieces "
                   "(default docs/paper)")
    p.add_argument("--work", default="out/reproduce",
                   help="compression runs and Tune experiments (default out/reproduce)")
    p.add_argument("--address", default=None, help="Ray cluster (auto or HOST:PORT; default $RAY_ADDRESS or local)")
    p.add_argument("--mlflow-uri", default=None,
                   help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--seeds", type=positive_int, default=None, help="seeds per point (default: the budget's)")
    p.add_argument("--steps", type=positive_int, default=None, help="env steps per trial (default: the budget's)")
    p.add_argument("--ues", type=_ues, default=None, metavar="N[,N...]",
                   help="UE numbers of Figs. 10-11, 13c-f (default: the budget's)")
    p.add_argument("--no-run", action="store_true",
                   help="run nothing: redraw the figures and the table from the pieces finished in --out")
    p.add_argument("--time-limit", type=positive_int, default=None, metavar="MIN",
                   help="start no new piece after MIN minutes (the rest stays for a rerun; so does creating the file "
                        "OUT/STOP while it runs); default: none")
    p.add_argument("--no-progress", action="store_true", help="quiet Tune and compression progress")
    p.add_argument("--json", action="store_true", help="write one JSON document (what ran, what was skipped)")
    p.set_defaults(handler=_handle)
