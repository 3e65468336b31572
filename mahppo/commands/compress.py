"""``mahppo compress``: train feature compressors as Ray tasks and write profiles (Sec. 2, 6.1, 6.2).

Heavy imports (torch, Ray) happen inside the handlers so ``mahppo --help`` stays fast.
"""

from __future__ import annotations

import argparse

from mahppo.commands._args import natural_int

DEFAULT_OUT = "out/compress"


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet18", help="resnet18 | vgg11 | mobilenetv2 (default resnet18)")
    p.add_argument("--data", default=None,
                   help="Caltech-101 folder (class sub-folders); default: the generated demo set")
    p.add_argument("--image-size", type=int, default=None,
                   help="training crop size (default 32 for the demo set, 224 for --data)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the driver (default 1)")
    p.add_argument("--seed", type=natural_int, default=0, help="seed of the data split and the training (default 0)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compress`` command (and its ``train-base`` sub-command)."""
    p = subparsers.add_parser(
        "compress",
        help="train feature compressors (Ray tasks), write table, profile JSON and plot",
        description="Train the autoencoder + quantization compressor (Eqs. 1-4) for every "
                    "(point, rate) as Ray tasks, pick the largest rate under the accuracy-loss bound per "
                    "point, measure latency at 3x224x224 and write a marl_env profile (ours and JALAD).",
    )
    _add_data_args(p)
    p.add_argument("--points", type=_int_list, default=[1, 2, 3, 4], help="partition points (default 1,2,3,4)")
    p.add_argument("--rates", type=_float_list, default=[16.0, 32.0, 64.0],
                   help="overall rates R of Eq. 3 to try (default 16,32,64)")
    p.add_argument("--epochs", type=int, default=2, help="stage-1 (autoencoder) epochs (default 2)")
    p.add_argument("--ft-epochs", type=int, default=1, help="stage-2 fine-tuning epochs (default 1)")
    p.add_argument("--ae-lr", type=float, default=1e-2, help="stage-1 Adam learning rate (default 1e-2)")
    p.add_argument("--ft-lr", type=float, default=1e-4, help="stage-2 Adam learning rate (default 1e-4)")
    p.add_argument("--base", default=None, help="base-model checkpoint (default: train one first)")
    p.add_argument("--base-epochs", type=int, default=3, help="epochs when training the base (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="images per training batch (default 32)")
    p.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch (smoke runs)")
    p.add_argument("--bits", type=int, default=8, help="quantization bit-width c_q (default 8)")
    p.add_argument("--xi", type=float, default=0.1, help="cross-entropy weight of Eq. 4 (default 0.1)")
    p.add_argument("--max-loss", type=float, default=0.02,
                   help="accuracy-loss bound for picking the rate (absolute, default 0.02)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--num-cpus", type=float, default=1, help="CPUs per Ray task (default 1)")
    p.add_argument("--num-gpus", type=float, default=0, help="GPUs per Ray task (default 0)")
    p.add_argument("--power-file", default=None,
                   help="profile JSON whose front_power_w is the UE power model (default: Jetson Nano)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per latency (default 5)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_handle_compress)

    sub = p.add_subparsers(dest="compress_command", metavar="SUBCOMMAND")
    tb = sub.add_parser("train-base", help="train the base model on the data and save base_<model>.pt",
                        description="Train the base model (Adam, cross-entropy) and save a checkpoint that "
                                    "`mahppo compress --base FILE` loads.")
    _add_data_args(tb)
    tb.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    tb.add_argument("--lr", type=float, default=1e-3, help="learning rate of the base model (default 1e-3)")
    tb.add_argument("--batch-size", type=int, default=32, help="images per training batch (default 32)")
    tb.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch (smoke runs)")
    tb.set_defaults(handler=_handle_train_base)


def _positive(name: str, value: float | int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name}: {value!r} must be > 0")


def _handle_train_base(args: argparse.Namespace) -> int:
    from mahppo.compression.models import check_model_name
    from mahppo.compression.pipeline import data_spec_for, train_base_model

    name = check_model_name(args.model)
    for flag, v in (("--epochs", args.epochs), ("--lr", args.lr), ("--batch-size", args.batch_size),
                    ("--max-batches", args.max_batches), ("--image-size", args.image_size)):
        _positive(flag, v)
    spec = data_spec_for(args.data, args.image_size, args.seed)
    train_base_model(name, spec, args.epochs, args.out, lr=args.lr, batch_size=args.batch_size,
                     max_batches=args.max_batches, threads=args.threads)
    return 0


def _handle_compress(args: argparse.Namespace) -> int:
    from mahppo.compression.pipeline import CompressJob, run_compress
    from mahppo.compression.runner import validate_sweep
    from mahppo.compression.train import TrainConfig

    validate_sweep(args.model, args.points, args.rates, args.bits)  # before any heavy work
    for flag, v in (("--epochs", args.epochs), ("--base-epochs", args.base_epochs),
                    ("--batch-size", args.batch_size), ("--max-batches", args.max_batches),
                    ("--image-size", args.image_size), ("--repeats", args.repeats),
                    ("--ae-lr", args.ae_lr), ("--ft-lr", args.ft_lr)):
        _positive(flag, v)
    if args.ft_epochs < 0:
        raise ValueError(f"--ft-epochs: {args.ft_epochs!r} must be >= 0")
    cfg = TrainConfig(ae_epochs=args.epochs, ft_epochs=args.ft_epochs, batch_size=args.batch_size,
                      ae_lr=args.ae_lr, ft_lr=args.ft_lr,
                      xi=args.xi, bits=args.bits, max_batches=args.max_batches, threads=max(1, int(args.num_cpus)),
                      seed=args.seed)
    job = CompressJob(
        model=args.model, points=args.points, rates=args.rates, data=args.data, image_size=args.image_size,
        base=args.base, base_epochs=args.base_epochs, train=cfg, max_loss=args.max_loss, address=args.address,
        num_cpus=args.num_cpus, num_gpus=args.num_gpus, out=args.out, power_file=args.power_file,
        repeats=args.repeats, driver_threads=args.threads, progress=not args.no_progress,
    )
    run_compress(job)
    return 0
