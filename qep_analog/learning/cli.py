"""``qep-analog gradient``: one batch gradient from a protocol, as JSON or a table."""

from __future__ import annotations

import argparse
import json

import numpy as np

from qep_analog.learning.gradient import ESTIMATORS, estimate_gradient
from qep_analog.learning.objectives import NUDGES
from qep_analog.protocol import build_backend, build_data, build_gradient_config, build_model, load_protocol


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gradient", help="estimate one batch gradient of a protocol's model")
    p.add_argument("protocol", help="protocol TOML file")
    p.add_argument("--estimator", choices=ESTIMATORS, default=None)
    p.add_argument("--nudge", choices=NUDGES, default=None)
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--shots", type=int, default=None, help="shots per (phase, setting); omit for exact")
    p.add_argument("--measurement", choices=("grouped", "gaussian"), default=None)
    p.add_argument("--samples", type=int, default=None, help="batch size (default: the protocol's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_gradient)


def run_gradient(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol)
    h = build_model(protocol)
    data = build_data(protocol, h)
    config = build_gradient_config(protocol, estimator=args.estimator, nudge=args.nudge, beta=args.beta,
                                   shots=args.shots, measurement=args.measurement)
    backend = build_backend(protocol)
    training = protocol.section("training")
    rng = np.random.default_rng(args.seed)
    theta0 = training.get("theta0")
    theta = (h.theta_vector(theta0) if theta0 is not None
             else training.get("init_scale", 0.1) * rng.standard_normal(len(h.parameter_names)))
    n = args.samples or training.get("batch_size", 10)
    batch = rng.choice(len(data.targets), size=min(n, len(data.targets)), replace=False)
    est = estimate_gradient(h, backend, theta, None if data.inputs is None else data.inputs[batch],
                            data.targets[batch], config, seed=args.seed)
    result = est.to_dict()
    result["gradient"] = dict(zip(est.parameter_names, est.gradient.tolist(), strict=True))
    result["stderr"] = dict(zip(est.parameter_names, est.stderr.tolist(), strict=True))
    result["theta"] = dict(zip(est.parameter_names, theta.tolist(), strict=True))
    result["shots"] = config.shots
    result["measurement"] = config.measurement if config.shots is not None else "exact-expectations"
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    print(f"objective: {est.objective}   estimator: {est.estimator}   nudge: {est.nudge}   beta: {est.beta:g}")
    print(f"settings per nudged phase: {est.settings}   state preparations: {est.preparations}   "
          f"samples used/dropped: {est.samples_used}/{est.samples_dropped}   crossings: {len(est.crossings)}")
    for name, g, s in zip(est.parameter_names, est.gradient, est.stderr, strict=True):
        print(f"  {name:>14s}  {g: .5f} ± {s:.5f}")
    return 0
