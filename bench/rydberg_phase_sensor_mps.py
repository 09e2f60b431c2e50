"""The Rydberg phase sensor at chain sizes only the ``mps`` backend reaches (issue 17 part 1): N = 25 and the
51-atom chain of Bernien et al. (Nature 551, 579 (2017)), on MockDevice at Ω = 1.6 rad/µs.

    H = Σ_i (Ω/2) X_i − Δ Σ_i n_i − Σ_s δ_s n_s + Σ_{i<j} C6/r_ij⁶ n_i n_j      (rad/µs, µm)

Divided by Ω, H depends only on Δ/Ω, δ_s/Ω, R_b/a and the sensor offsets in units of the spacing, so a sensor
trained at N = 7 on WeightedAnalogDevice (same Ω) is the same sensor here. This script

* maps the labels (m_Z2, m_Z3 ≥ 0.5 of the chain's DMRG ground state) over a grid of (Δ/Ω, R_b/a) at N and
  compares them with the exact N = 7 labels at the same points (``--grid``);
* scores trained sensors (``--runs``: run directories of ``qep-analog train``, their final θ) at N on the test
  points of the protocol's data set (``[data] seed = 0``, 400 training points: the same 200 test points as the
  N = 7 ``--full`` study), max-choice and single-shot accuracy, exact on the DMRG states;
* draws the first sensor's predicted phase over the grid with the label boundaries at N (black) and at N = 7
  (red, dashed) (``--png``).

``--window L`` labels by the block structure factor over blocks of L sites (``[chain] correlation_window``; the
domain-wall-tolerant rule for N ≡ 0 mod 3, e.g. 51) and reports the full-chain labels of the same points beside
it (from the cache if there), the fraction changed, and "always disordered" as a baseline.

Labels are cached (``--cache``). Run under ``nice -n 10`` with one BLAS thread (the backend sets it).

    python bench/rydberg_phase_sensor_mps.py --n-atoms 25 --grid 15 --cache /tmp/labels --out n25.json \\
        --png bench/results/rydberg_phase_sensor_n25.png --runs /work/runs17p1/study/trained_s{1,2,3,4,5}
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from qep_analog.device.devices import load_device
from qep_analog.equilibrium.mps import MPSBackend
from qep_analog.learning.gradient import GradientConfig
from qep_analog.tasks.rydberg_chain import PHASES, ChainSpec, chain_labels
from qep_analog.tasks.rydberg_phases import RydbergPhaseTask, scores
from qep_analog.tasks.rydberg_phases_run import cached_chain_order, chain_points, phase_map_figure

OMEGA = 1.6
BACKEND = dict(max_bond=64, cutoff=1e-10, energy_tol=1e-8, variance_tol=1e-4)  # protocols/rydberg_phase_sensor_mps
# the backend's own defaults (variance_tol 1e-6 per qubit) with a larger bond and a smaller cutoff
REFERENCE = dict(max_bond=128, cutoff=1e-12, energy_tol=1e-10)
# one point deep in each phase, points near the N = 7 boundaries, and the box's largest R_b/a
SAMPLE_POINTS = np.array([[-1.0, 1.5], [1.5, 1.5], [3.0, 1.5], [3.0, 2.5], [0.5, 2.7], [3.5, 2.8], [3.0, 1.1],
                          [2.0, 2.1]])


def load_theta(run: Path) -> tuple[list, list]:
    """(sensor offsets in spacings, DMM detunings in rad/µs) of a finished run."""
    results = json.loads((run / "results.json").read_text())
    theta = results["theta"]
    atoms = [a for a in "ABC" if f"x_{a}" in theta]
    if results["config"]["chain"].get("sensor_units", "spacing") != "spacing":
        raise SystemExit(f"{run}: only sensors with offsets in units of the spacing transfer between devices")
    return [[theta[f"x_{a}"], theta[f"y_{a}"]] for a in atoms], [theta[f"delta_{a}"] for a in atoms]


def timed_order(spec, points, backend, cache):
    start = time.perf_counter()
    order = cached_chain_order(spec, points, backend, cache)
    return order, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-atoms", type=int, default=25)
    parser.add_argument("--runs", nargs="*", default=[], help="run directories whose final sensor is scored")
    parser.add_argument("--n-test", type=int, default=200, help="test points scored (the first k of the 200)")
    parser.add_argument("--grid", type=int, default=0, help="label map on a grid × grid of the box (0: none)")
    parser.add_argument("--cache", default=None, help="label cache directory")
    parser.add_argument("--window", type=int, default=None, help="label by the block structure factor over blocks "
                        "of this many sites (chain.correlation_window); default: the full chain")
    parser.add_argument("--out", default=None, help="JSON with every number printed")
    parser.add_argument("--png", default=None, help="phase map of the first run's sensor over the grid")
    parser.add_argument("--samples", action="store_true", help="time one QEP gradient sample (100 shots) at N on "
                        "SAMPLE_POINTS for the first run's sensor, and compare its shot-free gradient with a tighter "
                        "reference backend (REFERENCE), then exit")
    parser.add_argument("--compare", nargs="*", default=[], help="JSON outputs of earlier runs: draw their label "
                        "boundaries (and N = 7's) in one figure, --png, and exit")
    args = parser.parse_args(argv)
    if args.compare:
        _compare_figure([json.loads(Path(f).read_text()) for f in args.compare], args.png)
        return 0
    if args.samples:
        return _samples(args)

    device = load_device("MockDevice")
    backend = MPSBackend(**BACKEND)
    full = ChainSpec(n_atoms=args.n_atoms, omega=OMEGA, c6=float(device.interaction_coeff), ground_states="mps")
    spec = dataclasses.replace(full, correlation_window=args.window)
    small = ChainSpec(n_atoms=7, omega=OMEGA, c6=float(device.interaction_coeff))
    report: dict = {"n_atoms": args.n_atoms, "backend": BACKEND, "device": device.name, "window": args.window}
    test = chain_points(spec, 600, 0)[400:][: args.n_test]
    grid = None
    if args.grid:
        d_axis = np.linspace(*spec.detuning_range, args.grid)
        r_axis = np.linspace(*spec.rb_range, args.grid)
        grid = np.array([[d, r] for r in r_axis for d in d_axis])
        order, seconds = timed_order(spec, grid, backend, args.cache)
        labels = chain_labels(spec, grid, order)
        labels7 = chain_labels(small, grid)
        fractions = np.bincount(labels, minlength=3) / len(labels)
        report["grid"] = {"detuning_over_omega": d_axis.tolist(), "rb_over_a": r_axis.tolist(),
                          "order": order.tolist(), "labels": labels.tolist(), "labels_n7": labels7.tolist(),
                          "fractions": fractions.tolist(), "seconds": seconds,
                          "agreement_with_n7": float(np.mean(labels == labels7)),
                          "max_m_z2": float(order[:, 0].max()), "max_m_z3": float(order[:, 1].max())}
        print(f"N = {args.n_atoms}: grid {args.grid}×{args.grid} labels in {seconds:.0f} s; fractions "
              + ", ".join(f"{p} {f:.3f}" for p, f in zip(PHASES, fractions, strict=True))
              + f"; same label as N = 7 on {np.mean(labels == labels7):.3f} of the grid; max m_Z2 "
              f"{order[:, 0].max():.3f}, max m_Z3 {order[:, 1].max():.3f}", flush=True)
        if args.window is not None:
            _full_chain_rule(report["grid"], full, grid, backend, args.cache, "grid")
    order, seconds = timed_order(spec, test, backend, args.cache)
    y_test = chain_labels(spec, test, order)
    y7 = chain_labels(small, test)
    report["test"] = {"n": len(test), "labels": y_test.tolist(), "labels_n7": y7.tolist(), "seconds": seconds,
                      "fractions": (np.bincount(y_test, minlength=3) / len(y_test)).tolist(),
                      "n7_labels_as_predictor": float(np.mean(y7 == y_test))}
    print(f"N = {args.n_atoms}: {len(test)} test labels in {seconds:.0f} s; fractions "
          f"{np.round(report['test']['fractions'], 3).tolist()}; the N = 7 labels agree on "
          f"{np.mean(y7 == y_test):.3f}; always disordered scores {np.mean(y_test == 0):.3f}", flush=True)
    report["test"]["always_disordered"] = float(np.mean(y_test == 0))
    if args.window is not None:
        _full_chain_rule(report["test"], full, test, backend, args.cache, "test points")
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.3)
    rows = []
    for k, run in enumerate(map(Path, args.runs)):
        offsets, detunings = load_theta(run)
        task = RydbergPhaseTask(chain=spec, device=device, offsets=offsets, detunings=detunings, backend=backend,
                                config=config, inputs=test, labels=y_test)
        theta = task.theta_of(task.offsets, task.detunings)
        start = time.perf_counter()
        probs = task.outcome_probabilities(theta, test)
        seconds = time.perf_counter() - start
        row = {"run": str(run), **scores(probs, y_test), "seconds": seconds,
               "accuracy_vs_n7_labels": scores(probs, y7)["accuracy"]}
        print(f"  {run}: max-choice {row['accuracy']:.3f}, single-shot {row['single_shot_accuracy']:.3f}, "
              f"loss {row['loss']:.3f} (against the N = 7 labels of the same points: "
              f"{row['accuracy_vs_n7_labels']:.3f}); "
              f"{seconds:.0f} s, {seconds / len(test):.2f} s a point", flush=True)
        if k == 0 and grid is not None:
            grid_probs = task.outcome_probabilities(theta, grid)
            row["grid_probabilities"] = grid_probs.tolist()
            row["grid_accuracy"] = float(np.mean(np.argmax(grid_probs[:, :3], axis=1) == report["grid"]["labels"]))
            if args.png:
                _figure(report, row, offsets, args.png)
        rows.append(row)
    if rows:
        acc = np.array([r["accuracy"] for r in rows])
        single = np.array([r["single_shot_accuracy"] for r in rows])
        report["summary"] = {"accuracy_mean": acc.mean(), "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                             "single_shot_mean": single.mean(),
                             "single_shot_std": single.std(ddof=1) if len(single) > 1 else 0.0}
        print(f"N = {args.n_atoms}, {len(rows)} sensors: max-choice {acc.mean():.3f} ± "
              f"{report['summary']['accuracy_std']:.3f}, single-shot {single.mean():.3f} ± "
              f"{report['summary']['single_shot_std']:.3f}", flush=True)
    report["runs"] = rows
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


def _full_chain_rule(part: dict, full: ChainSpec, points, backend, cache, name: str) -> None:
    """The full-chain labels of the same points beside the windowed ones, and the fraction that changed."""
    order, seconds = timed_order(full, points, backend, cache)
    labels = chain_labels(full, points, order)
    part.update(order_full_chain=order.tolist(), labels_full_chain=labels.tolist(),
                changed_by_window=float(np.mean(labels != np.array(part["labels"]))),
                fractions_full_chain=(np.bincount(labels, minlength=3) / len(labels)).tolist())
    print(f"  full-chain rule on the {name} ({seconds:.0f} s): fractions "
          f"{np.round(part['fractions_full_chain'], 3).tolist()}; the window changes {part['changed_by_window']:.3f} "
          "of the labels", flush=True)


def _samples(args) -> int:
    from qep_analog.learning.driver import Draw

    device = load_device("MockDevice")
    spec = ChainSpec(n_atoms=args.n_atoms, omega=OMEGA, c6=float(device.interaction_coeff), ground_states="mps")
    offsets, detunings = load_theta(Path(args.runs[0]))
    labels = np.zeros(len(SAMPLE_POINTS), dtype=int)  # the gradient's timing and accuracy do not depend on them much
    rows = []
    for k, point in enumerate(SAMPLE_POINTS[: args.n_test]):  # --n-test k: the first k points only
        row = {"point": point.tolist()}
        for name, options, shots in (("protocol", BACKEND, 100), ("protocol_exact", BACKEND, None),
                                     ("reference_exact", REFERENCE, None)):
            config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.3, shots=shots,
                                    crossing_policy="shrink", overlap_threshold=0.5)
            task = RydbergPhaseTask(chain=spec, device=device, offsets=offsets, detunings=detunings,
                                    backend=MPSBackend(**options), config=config, inputs=SAMPLE_POINTS, labels=labels)
            start = time.perf_counter()
            est = task.gradient(task.theta_of(task.offsets, task.detunings), np.array([k]), Draw(1, 0))
            row[name] = {"seconds": time.perf_counter() - start, "gradient": est.gradient.tolist(),
                         "dropped": est.dropped, "crossings": est.crossings, "preparations": est.preparations}
        diff = np.abs(np.subtract(row["protocol_exact"]["gradient"], row["reference_exact"]["gradient"])).max()
        row["max_abs_difference"] = float(diff)
        rows.append(row)
        print(f"N = {args.n_atoms} + 2, (Δ/Ω, R_b/a) = {point.tolist()}: sample {row['protocol']['seconds']:.1f} s "
              f"(dropped {row['protocol']['dropped']}, crossings {row['protocol']['crossings']}, "
              f"{row['protocol']['preparations']} preparations); shot-free gradient "
              f"{row['protocol_exact']['seconds']:.1f} s, reference {row['reference_exact']['seconds']:.1f} s, "
              f"max |Δg| {diff:.1e} "
              f"(|g|max {np.abs(row['reference_exact']['gradient']).max():.2f})", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"n_atoms": args.n_atoms, "backend": BACKEND, "reference": REFERENCE,
                                              "samples": rows}, indent=1))
    return 0


def _figure(report: dict, row: dict, offsets, png: str) -> None:
    g = report["grid"]
    results = {"plot": {"detuning_over_omega": g["detuning_over_omega"], "rb_over_a": g["rb_over_a"],
                        "outcome_probabilities": row["grid_probabilities"], "labels": g["labels"],
                        "phases": list(PHASES), "n_chain": report["n_atoms"], "thresholds": [0.5, 0.5],
                        "sensor_offsets": offsets},
               "final": {"test_accuracy": row["accuracy"], "test_single_shot_accuracy": row["single_shot_accuracy"]}}
    fig = phase_map_figure(results)
    ax = fig.axes[0]
    d, r = np.array(g["detuning_over_omega"]), np.array(g["rb_over_a"])
    small = np.array(g["labels_n7"]).reshape(len(r), len(d))
    for phase in (1, 2):
        if np.any(small == phase):
            ax.contour(d, r, (small == phase).astype(float), levels=[0.5], colors="r", linewidths=1.0,
                       linestyles="--")
    title = "; red dashed: N = 7 labels"
    if "labels_full_chain" in g:
        whole = np.array(g["labels_full_chain"]).reshape(len(r), len(d))
        for phase in (1, 2):
            if np.any(whole == phase):
                ax.contour(d, r, (whole == phase).astype(float), levels=[0.5], colors="tab:blue", linewidths=1.0,
                           linestyles=":")
        title = (f"; labels over blocks of {report['window']} sites (black), full chain (blue dotted), N = 7 "
                 "(red dashed)")
    ax.set_title(ax.get_title() + f"{title}\nsensor of {row['run']}", fontsize=7)
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130, bbox_inches="tight")


def _compare_figure(reports: list[dict], png: str) -> None:
    """Label boundaries (m ≥ 0.5) of Z2 (solid) and Z3 (dashed) at N = 7 and at each report's N, one colour per N."""
    import matplotlib.pyplot as plt

    from qep_analog.tasks.rydberg_published import draw_published

    report_window = {id(r["grid"]): r.get("window") for r in reports}
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    colours = ["k", "tab:blue", "tab:red", "tab:green"]
    first = reports[0]["grid"]
    curves = [(7, first, "labels_n7")] + [(r["n_atoms"], r["grid"], "labels") for r in reports]
    for (n, g, key), colour in zip(curves, colours, strict=False):
        d, r = np.array(g["detuning_over_omega"]), np.array(g["rb_over_a"])
        labels = np.array(g[key]).reshape(len(r), len(d))
        for phase, style in ((1, "-"), (2, "--")):
            if np.any(labels == phase):
                ax.contour(d, r, (labels == phase).astype(float), levels=[0.5], colors=colour, linestyles=style,
                           linewidths=1.3)
        fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
        g_window = report_window.get(id(g)) if key == "labels" else None  # the N = 7 curve is never windowed
        window = f", blocks of {g_window}" if g_window else ""
        ax.plot([], [], color=colour, label=f"N = {n} ({len(r)}×{len(d)} grid{window}): Z2 {fractions[1]:.2f}, "
                f"Z3 {fractions[2]:.2f} of the box")
    for line in (1.0, 2.0):
        ax.axhline(line, color="grey", ls=":", lw=0.8)
    draw_published(ax)  # stars: literature Z2–disordered critical points (qep_analog.tasks.rydberg_published)
    ax.set_xlabel("Δ/Ω")
    ax.set_ylabel("R_b/a")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13))  # below the axes: keeps the stars visible
    ax.set_title("Chain labels m ≥ 0.5 (solid: Z2, dashed: Z3); N = 7 exact, N ≥ 25 DMRG (mps, χ ≤ 64);\n"
                 "stars: literature Z2–disordered critical points", fontsize=8)
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130, bbox_inches="tight")


if __name__ == "__main__":
    raise SystemExit(main())
