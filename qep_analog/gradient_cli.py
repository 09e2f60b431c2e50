"""``qep-analog gradient``: one batch gradient from a protocol, as JSON or a table."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np

from qep_analog.device.limits import check_number
from qep_analog.errors import QepValueError
from qep_analog.learning.gradient import ESTIMATORS, estimate_gradient
from qep_analog.learning.objectives import NUDGES
from qep_analog.protocol import load_protocol
from qep_analog.tasks.build import GRADIENT_BOUNDS, build_backend, build_data, build_gradient_config, build_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradient", help="estimate one batch gradient of a protocol's model")
    p.add_argument("protocol", help="protocol TOML file")
    p.add_argument("--estimator", choices=ESTIMATORS, default=None)
    p.add_argument("--nudge", choices=NUDGES, default=None)
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--shots", type=int, default=None, help="shots per (phase, setting); omit for exact")
    p.add_argument("--measurement", choices=("grouped", "gaussian"), default=None)
    p.add_argument("--samples", type=int, default=None, help="batch size (default: the protocol's)")
    p.add_argument("--seed", type=int, default=0, help="seed, 0 to 2^63 - 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="run the batch's samples on a local Dask cluster of K worker processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="or on a running Dask scheduler")
    p.set_defaults(func=run_gradient)


# Upper bounds checked before anything is built: β and shots as for a protocol's [gradient]
# (tasks.build.GRADIENT_BOUNDS, the bounds `train` applies), the batch as for training.batch_size.
MAX_BETA = GRADIENT_BOUNDS["beta"][1]
MAX_SHOTS = GRADIENT_BOUNDS["shots"][1]
MAX_SAMPLES = 10**6
MAX_SEED = 2**63 - 1


def _check_arguments(args: argparse.Namespace) -> None:
    check_number(args.seed, "--seed", low=0, high=MAX_SEED, integer=True)
    if args.beta is not None:
        check_number(args.beta, "--beta", low=0, high=MAX_BETA)
        if args.beta <= 0:
            raise QepValueError(f"'--beta' must be > 0, not {args.beta!r}")
    if args.shots is not None:
        check_number(args.shots, "--shots", low=1, high=MAX_SHOTS, integer=True)
    if args.samples is not None:
        check_number(args.samples, "--samples", low=1, high=MAX_SAMPLES, integer=True)


def _check_config(config, args: argparse.Namespace, protocol) -> tuple[object, str | None]:
    """``--shots`` with the exact estimator is refused (as are protocol shots with a protocol's exact
    estimator); shots set by the protocol are dropped with a note when ``--estimator exact`` is asked for."""
    source = protocol.source
    if config.estimator == "exact" and config.shots is not None:
        if args.shots is not None:
            raise QepValueError("'--shots' has no effect with the exact estimator (it computes the exact gradient "
                                "without measurement); drop --shots or choose another --estimator")
        if args.estimator is None:
            raise QepValueError(f"{source}: 'gradient.shots' has no effect with gradient.estimator = 'exact'")
        return replace(config, shots=None), (f"note: --estimator exact ignores gradient.shots = {config.shots} "
                                             f"of {source}")
    return config, None


def run_gradient(args: argparse.Namespace) -> int:
    _check_arguments(args)
    protocol = load_protocol(args.protocol)
    h = build_model(protocol)
    data = build_data(protocol, h)
    config = build_gradient_config(protocol, estimator=args.estimator, nudge=args.nudge, beta=args.beta,
                                   shots=args.shots, measurement=args.measurement)
    config, note = _check_config(config, args, protocol)
    backend = build_backend(protocol)
    training = protocol.section("training")
    rng = np.random.default_rng(args.seed)
    theta0 = training.get("theta0")
    theta = (h.theta_vector(theta0) if theta0 is not None
             else training.get("init_scale", 0.1) * rng.standard_normal(len(h.parameter_names)))
    n = args.samples if args.samples is not None else training.get("batch_size", 10)
    key = "--samples" if args.samples is not None else f"training.batch_size in {protocol.source}"
    check_number(n, key, low=1, high=MAX_SAMPLES, integer=True)
    if args.samples is not None and n > len(data.targets):
        raise QepValueError(f"'--samples' = {n} exceeds the {len(data.targets)} training samples of "
                            f"{protocol.source}")
    n = min(n, len(data.targets))  # the protocol's batch size, as training uses it
    if note:
        print(f"qep-analog: {note}", file=sys.stderr)
    batch = rng.choice(len(data.targets), size=n, replace=False)
    from qep_analog.distributed import make_executor

    executor = make_executor(engine="serial", workers=args.workers, scheduler=args.scheduler)
    try:
        est = estimate_gradient(h, backend, theta, None if data.inputs is None else data.inputs[batch],
                                data.targets[batch], config, seed=args.seed, executor=executor)
    finally:
        if hasattr(executor, "close"):
            executor.close()
    result = est.to_dict()
    result["gradient"] = dict(zip(est.parameter_names, est.gradient.tolist(), strict=True))
    result["stderr"] = dict(zip(est.parameter_names, est.stderr.tolist(), strict=True))
    result["theta"] = dict(zip(est.parameter_names, theta.tolist(), strict=True))
    result["shots"] = config.shots
    result["measurement"] = config.measurement if config.shots is not None else "exact-expectations"
    if args.json:
        try:
            text = json.dumps(result, indent=2, default=float, allow_nan=False)
        except ValueError as exc:
            raise QepValueError(f"the gradient result holds non-finite numbers; not printed as JSON ({exc})") from None
        print(text)
        return 0
    print(f"objective: {est.objective}   estimator: {est.estimator}   nudge: {est.nudge}   beta: {est.beta:g}")
    print(f"settings per nudged phase: {est.settings}   state preparations: {est.preparations}   "
          f"samples used/dropped: {est.samples_used}/{est.samples_dropped}   crossings: {len(est.crossings)}")
    for name, g, s in zip(est.parameter_names, est.gradient, est.stderr, strict=True):
        print(f"  {name:>14s}  {g: .5f} ± {s:.5f}")
    return 0
