"""``qep-analog train PROTOCOL.toml [--out DIR] [--seed S] [--resume] [--full] [--set k=v]``."""

from __future__ import annotations

import argparse
import os

from qep_analog.train import command_line, run_training


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run a protocol's task: train, checkpoint, write results, report, plots",
                       description="Run a protocol's task end to end. Outputs go to --out: results.json, "
                                   "report.md, PNG plots and checkpoint.json.")
    p.add_argument("protocol", help="protocol TOML file (see protocols/)")
    p.add_argument("--out", default=None, help="output directory (default runs/<protocol name>)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: training.seed)")
    p.add_argument("--resume", action="store_true",
                   help="continue from --out's checkpoint (bitwise identical to an uninterrupted run)")
    p.add_argument("--full", action="store_true", help="apply the protocol's [full] tables (paper-size run)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one protocol key (TOML value), e.g. --set gradient.measurement=grouped")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="run each step's samples and phases on a local Dask cluster of K worker processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run them on a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    results = run_training(args.protocol, out_dir=args.out, seed=args.seed, resume=args.resume, full=args.full,
                           overrides=args.overrides, progress=not args.no_progress,
                           threads=int(os.environ.get("QEP_ANALOG_THREADS", "1")),
                           command=command_line(), workers=args.workers, scheduler=args.scheduler)
    final = results["final"]
    shown = {k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    print(f"{results['task']} done in {results['wall_time_s']:.1f} s → {results['out_dir']}: "
          + ", ".join(results["files"]))
    for k, v in list(shown.items())[:12]:
        print(f"  {k:>28s}: {v:.4g}" if isinstance(v, float) else f"  {k:>28s}: {v}")
    return 0
