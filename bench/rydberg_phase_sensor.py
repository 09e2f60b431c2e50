"""Rydberg phase sensor study (issue 17 part 1): seeds × variants of protocols/rydberg_phase_sensor.toml --full.

Each run is ``qep-analog train protocols/rydberg_phase_sensor.toml --full --seed S`` plus the variant's
``--set`` flags, launched under the shared CPU lock (``flock /tmp/qep_cpu.lock``, one lock per run) and
skipped when its ``results.json`` exists (the study resumes). Variants:

* ``trained``   positions (in units of the chain spacing) and DMM detunings trained, 100 shots per phase;
* ``exact``     the same with exact expectation values (no shot noise; a temporary copy without ``shots``);
* ``frozen``    positions frozen at the initial placement, detunings trained (what training the geometry adds);
* ``decoupled`` the sensor moved 5.5 spacings away from the chain (couplings ≤ 2 % of Ω), positions frozen:
                a sensor that sees Δ/Ω but not the chain (what the chain coupling contributes);
* ``um``        offsets fixed in µm instead of following the spacing (what the lattice-locked geometry adds);
* ``interior``  (session 8) read-out atom A beside the chain's middle atom, B parked and off: the N = 9 design;
* ``blind``     (session 8) the sensor 40 µm off the chain with offsets in µm and positions frozen: it reads Δ/Ω
                only, not even the spacing through its own geometry (the ablation of the chain coupling).

Prints mean ± std over seeds of the max-choice and single-shot test accuracy (the data set and its 200 test
points are fixed by ``data.seed``; seeds vary batches and shots), the ratios to the ``decoupled`` sensor of the
same study and to the better Δ/Ω-only baseline (binned majority or two fitted thresholds), and writes the phase
map of the first seed of ``trained`` with the label boundaries at N = 7 and at the other chain lengths given
(``--sizes``), as a PNG.

    python bench/rydberg_phase_sensor.py --out /tmp/rps --seeds 1 2 3 4 5 --png bench/results/rydberg_phase_sensor.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "rydberg_phase_sensor.toml"
VARIANTS = {
    "trained": [],
    "exact": [],
    "frozen": ["device.train_positions=false"],
    "decoupled": ["device.train_positions=false", "chain.sensor_offsets=[[2.5, 5.5], [3.5, 5.5]]"],
    "um": ['chain.sensor_units="um"', "chain.sensor_offsets=[[-12.6, 0.0], [-18.2, 5.6]]",
           "device.position_learning_rate=0.35"],
    # design study (session 7): 100 of the 400 training points held out for validation (best-validation θ)
    "exact_val": ["training.validation=100"],
    "exact_lr": ["training.validation=100", "training.learning_rate=0.15", "device.position_learning_rate=0.15"],
    "trained_val": ["training.validation=100"],
    "cosine": ["training.validation=100", 'training.schedule="cosine"', "training.final_learning_rate=0.005"],
    "exact_c": ["training.validation=100", "chain.sensor_offsets=[[-1.8, 0.0], [-2.6, 0.8], [-1.0, -1.0]]",
                "device.detunings=[0.0, -1.6, 0.0]"],
    # session 8 (docs/notes/issue-17-part1-accuracy.md), all with a validation split:
    # A beside the chain's middle atom, 1.7 spacings off the axis: blockaded by the chain where R_b/a or the density
    # is large, it reads "Z2" (measured: the N = 9 task, where Z3 is 2.5 %); B parked beyond the end, off (δ_B = −10)
    "interior": ["training.validation=100", "chain.sensor_offsets=[[3.0, 1.7], [-2.5, 1.5]]",
                 "device.detunings=[-1.0, -10.0]"],
    # blind control: offsets in µm (the pair's own geometry does not follow a), 40 µm off the chain axis on both
    # sides (couplings to the chain ≤ C6/(40 µm)⁶ = 0.003 rad/µs), positions frozen, detunings trained
    "blind": ['chain.sensor_units="um"', "chain.sensor_offsets=[[28.0, 40.0], [28.0, -40.0]]",
              "device.train_positions=false", "device.detunings=[-1.3, -10.0]", "training.validation=100"],
}
N9 = {  # the decoupled sensor of a 9-atom chain: 5.5 spacings above its middle, inside the 80 µm radius
    "decoupled": ["device.train_positions=false", "chain.sensor_offsets=[[3.5, 5.5], [4.5, 5.5]]"],
    "interior": ["training.validation=100", "chain.sensor_offsets=[[4.0, 1.7], [-2.5, 1.5]]",
                 "device.detunings=[-1.0, -10.0]"],
    # δ_A = −2.93 rad/µs: A switches at Δ/Ω = 1.83, the best one-threshold Δ/Ω rule of the N = 9 training points
    "blind": ['chain.sensor_units="um"', "chain.sensor_offsets=[[35.0, 40.0], [35.0, -40.0]]",
              "device.train_positions=false", "device.detunings=[-2.93, -10.0]", "training.validation=100"]}


def run(variant: str, seed: int, out: Path, lock: str | None, extra: tuple[str, ...] = ()) -> dict:
    target = out / f"{variant}_s{seed}"
    if not (target / "results.json").is_file():
        protocol = PROTOCOL
        if variant.startswith("exact"):
            protocol = out / "exact.toml"
            protocol.write_text("\n".join(line for line in PROTOCOL.read_text().splitlines()
                                          if not line.startswith("shots")) + "\n")
        cmd = [sys.executable, "-m", "qep_analog.cli", "train", str(protocol), "--full", "--seed", str(seed),
               "--out", str(target), "--no-progress"]
        n9 = any(item == "chain.n_atoms=9" for item in extra)
        for item in (*extra, *(N9.get(variant, VARIANTS[variant]) if n9 else VARIANTS[variant])):
            cmd += ["--set", item]
        if lock:
            cmd = ["flock", lock, *cmd]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"  {variant} seed {seed}: {time.perf_counter() - start:.0f} s (incl. waiting for the lock)", flush=True)
    return json.loads((target / "results.json").read_text())


def summary(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def boundary_grid(results: dict, n_atoms: int) -> np.ndarray:
    """Labels at chain length ``n_atoms`` on the plot grid of a run (same Ω, C6, thresholds)."""
    from qep_analog.tasks.rydberg_chain import ChainSpec, chain_labels

    p, f = results["plot"], results["final"]
    spec = ChainSpec(n_atoms=n_atoms, omega=results["config"]["device"]["omega"],
                     c6=f["blockade_radius_um"] ** 6 * results["config"]["device"]["omega"],
                     z2_threshold=p["thresholds"][0], z3_threshold=p["thresholds"][1],
                     correlation_window=results["config"]["chain"].get("correlation_window"))
    grid = [[d, r] for r in p["rb_over_a"] for d in p["detuning_over_omega"]]
    return chain_labels(spec, grid).reshape(len(p["rb_over_a"]), len(p["detuning_over_omega"]))


def onset(n_atoms: int, rb_over_a: float, order: int, threshold: float = 0.5, omega: float = 1.6,
          c6: float = 12_241_414.53) -> float:
    """Δ/Ω in [0, 4] where m_Z2 (order 0) or m_Z3 (order 1) of the N-atom chain first reaches ``threshold``
    at fixed R_b/a (bisection to 0.01; the order parameter grows with Δ/Ω across the transition)."""
    from qep_analog.tasks.rydberg_chain import ChainSpec, chain_order

    spec = ChainSpec(n_atoms=n_atoms, omega=omega, c6=c6)

    def m(d):
        return chain_order(spec, [[d, rb_over_a]])[0, order]

    lo, hi = 0.0, 4.0
    if m(hi) < threshold:
        return float("nan")
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if m(mid) < threshold else (lo, mid)
    return 0.5 * (lo + hi)


def onset_along(n_atoms: int, path, lo: float, hi: float, order: int = 0, threshold: float = 0.5,
                omega: float = 1.6, c6: float = 12_241_414.53, tol: float = 0.005) -> float:
    """The parameter t in [lo, hi] where m_Z2 (order 0) or m_Z3 (order 1) of the N-atom chain's ground state first
    reaches ``threshold`` along ``path(t) = (Δ/Ω, R_b/a)`` (bisection to ``tol``; nan if not reached at ``hi``).
    N ≤ 16: exact ground states; larger N: DMRG with protocols/rydberg_phase_sensor_mps.toml's backend options."""
    from qep_analog.equilibrium.mps import MPSBackend
    from qep_analog.tasks.rydberg_chain import ChainSpec, chain_order

    mps = n_atoms > 16
    spec = ChainSpec(n_atoms=n_atoms, omega=omega, c6=c6, ground_states="mps" if mps else "exact")
    backend = MPSBackend(max_bond=64, cutoff=1e-10, energy_tol=1e-8, variance_tol=1e-4) if mps else None

    def m(t):
        return chain_order(spec, [path(t)], backend)[0, order]

    if m(hi) < threshold or m(lo) >= threshold:  # not bracketed: no onset inside [lo, hi]
        return float("nan")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if m(mid) < threshold else (lo, mid)
    return 0.5 * (lo + hi)


def published_onsets(sizes: list[int]) -> None:
    """Where the project's Z2 label (m_Z2 ≥ 0.5, open chain of N) starts, on cuts through each published point of
    :mod:`qep_analog.tasks.rydberg_published`: for a point (Δ*, R*) in Δ/Ω at R_b/a = R*, and for a point on the
    particle-hole symmetric line Δ/Ω = ζ(6) (R_b/a)⁶ (the lobe's tip) in R_b/a along that line."""
    from qep_analog.tasks.rydberg_published import PUBLISHED_POINTS, symmetric_line_delta_over_omega

    print("| literature point (Δ/Ω, R_b/a) | cut | literature | " + " | ".join(f"N = {n}" for n in sizes) + " | s |")
    print("|---|---|---|" + "---|" * (len(sizes) + 1))
    for point in PUBLISHED_POINTS:
        start = time.perf_counter()
        on_line = abs(point.delta_over_omega - symmetric_line_delta_over_omega(point.rb_over_a)) < 1e-6
        if on_line:
            cut, published = "R_b/a along Δ/Ω = ζ(6)(R_b/a)⁶", point.rb_over_a
            found = [onset_along(n, lambda t: (symmetric_line_delta_over_omega(t), t), 1.0, 1.25) for n in sizes]
        else:
            cut, published = f"Δ/Ω at R_b/a = {point.rb_over_a:.3f}", point.delta_over_omega
            found = [onset_along(n, lambda t, r=point.rb_over_a: (t, r), -1.0, 4.0) for n in sizes]
        print(f"| ({point.delta_over_omega:.3f}, {point.rb_over_a:.3f}) | {cut} | {published:.3f} | "
              + " | ".join(f"{v:.3f}" for v in found) + f" | {time.perf_counter() - start:.0f} |", flush=True)


def label_maps(sizes: list[int], png: Path, resolution: int = 25, omega: float = 1.6,
               c6: float = 12_241_414.53) -> None:
    """Thresholded structure-factor labels of the chain alone at each N on a grid of the protocol's box:
    prints the fraction of the box per phase and the max order parameters, draws the label boundaries of
    every N on one figure (one panel per order parameter map of the largest N)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qep_analog.tasks.rydberg_chain import ChainSpec, chain_labels, chain_order
    from qep_analog.tasks.rydberg_published import draw_published

    base = ChainSpec(n_atoms=7, omega=omega, c6=c6)
    d = np.linspace(*base.detuning_range, resolution)
    r = np.linspace(*base.rb_range, resolution)
    grid = np.array([[x, y] for y in r for x in d])
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.3 * len(sizes), 3.2), sharey=True)
    print("| N | disordered | Z2 | Z3 | max m_Z2 | max m_Z3 | s |\n|---|---|---|---|---|---|---|")
    for ax, n in zip(np.atleast_1d(axes), sizes, strict=True):
        spec = ChainSpec(n_atoms=n, omega=omega, c6=c6)
        start = time.perf_counter()
        order = chain_order(spec, grid)
        labels = chain_labels(spec, grid, order).reshape(len(r), len(d))
        frac = np.bincount(labels.ravel(), minlength=3) / labels.size
        print(f"| {n} | {frac[0]:.3f} | {frac[1]:.3f} | {frac[2]:.3f} | {order[:, 0].max():.2f} | "
              f"{order[:, 1].max():.2f} | {time.perf_counter() - start:.0f} |", flush=True)
        ax.pcolormesh(d, r, labels, cmap=matplotlib.colors.ListedColormap(["#cccccc", "#4c72b0", "#dd8452"]),
                      vmin=-0.5, vmax=2.5, shading="nearest")
        for phase in (1, 2):
            if np.any(labels == phase):
                ax.contour(d, r, (labels == phase).astype(float), levels=[0.5], colors="k", linewidths=1.0)
        for line in (1.0, 2.0):
            ax.axhline(line, color="k", ls=":", lw=0.8)
        draw_published(ax)
        ax.set_title(f"N = {n}", fontsize=8)
        ax.set_xlabel("Δ/Ω")
    np.atleast_1d(axes)[0].set_ylabel("R_b/a")
    fig.suptitle("Chain labels m ≥ 0.5 (grey disordered, blue Z2, orange Z3); stars: literature Z2–disordered "
                 "critical points (qep_analog.tasks.rydberg_published)", fontsize=8)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130, bbox_inches="tight")
    print(f"wrote {png}")


OUTCOME_INDEX = {"gg": 0, "rg": 1, "gr": 2, "rr": 3}


def in_phase_order(results: dict, codes: list[str]) -> dict:
    """A copy of a run's results whose plot outcome probabilities are reordered so that column k is the outcome
    that names phase k under the read-out ``codes`` (disordered, Z2, Z3), the unused outcome last; adds
    ``grid_accuracy_codes`` (max-choice over the three used outcomes against the plot grid's labels)."""
    import copy

    used = [OUTCOME_INDEX[c] for c in codes]
    order = used + [i for i in range(4) if i not in used]
    out = copy.deepcopy(results)
    probs = np.array(out["plot"]["outcome_probabilities"])[:, order]
    out["plot"]["outcome_probabilities"] = probs.tolist()
    out["plot"]["outcomes"] = [*codes, next(k for k, v in OUTCOME_INDEX.items() if v == order[3])]
    labels = np.array(out["plot"]["labels"])
    out["final"]["grid_accuracy_codes"] = float(np.mean(np.argmax(probs[:, :3], axis=1) == labels))
    return out


def figure(results: dict, sizes: list[int], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from qep_analog.tasks.rydberg_phases_run import phase_map_figure

    fig = phase_map_figure(results)
    ax = fig.axes[0]
    p = results["plot"]
    d, r = np.array(p["detuning_over_omega"]), np.array(p["rb_over_a"])
    styles = ["--", "-.", (0, (1, 1))]
    for k, n in enumerate(sizes):
        labels = boundary_grid(results, n)
        for phase in (1, 2):
            if np.any(labels == phase):
                cs = ax.contour(d, r, (labels == phase).astype(float), levels=[0.5], colors="tab:red",
                                linewidths=1.0, linestyles=[styles[k % 3]])
                ax.clabel(cs, fmt=f"N={n}", fontsize=6)
    test = np.array(p["test_inputs"])
    ax.scatter(test[:, 0], test[:, 1], s=3, c="k", alpha=0.4)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130, bbox_inches="tight")
    print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/rydberg_phase_sensor"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--lock", default="/tmp/qep_cpu.lock", help="flock file per run ('' for none)")
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="extra protocol override for every run, e.g. chain.n_atoms=9 (repeatable)")
    parser.add_argument("--png", type=Path, default=None)
    parser.add_argument("--sizes", type=int, nargs="*", default=[9, 10], help="chain lengths for boundary contours")
    parser.add_argument("--onsets", action="store_true",
                        help="only print the Δ/Ω where m_Z2 (R_b/a = 1.5) and m_Z3 (R_b/a = 2.4) reach 0.5 against N")
    parser.add_argument("--figure", type=Path, default=None,
                        help="only draw the phase map of this finished run directory into --png")
    parser.add_argument("--codes", default="gg,rg,gr",
                        help="read-out codes (disordered, Z2, Z3) the --figure run was trained with")
    parser.add_argument("--published", action="store_true",
                        help="only print where the Z2 label starts at each N of --sizes on cuts through the "
                             "published points (qep_analog.tasks.rydberg_published)")
    parser.add_argument("--labels", type=Path, default=None,
                        help="only draw the chain's labels at each N of --sizes into this PNG and print the fractions")
    args = parser.parse_args()
    if args.figure is not None:
        results = in_phase_order(json.loads((args.figure / "results.json").read_text()), args.codes.split(","))
        print(f"grid accuracy (codes {args.codes}): {results['final']['grid_accuracy_codes']:.3f}")
        figure(results, args.sizes, args.png)
        return
    if args.published:
        published_onsets(args.sizes)
        return
    if args.labels is not None:
        label_maps(args.sizes, args.labels)
        return
    if args.onsets:
        print("| order | R_b/a | N | Δ/Ω where m ≥ 0.5 |\n|---|---|---|---|")
        for order, rb, sizes in ((0, 1.5, (7, 9, 11, 13)), (1, 2.4, (7, 10, 13))):
            for n in sizes:
                print(f"| {'Z2' if order == 0 else 'Z3'} | {rb} | {n} | {onset(n, rb, order):.2f} |", flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    table = {}
    for variant in args.variants:
        table[variant] = [run(variant, s, args.out, args.lock or None, tuple(args.extra)) for s in args.seeds]
    ref = table.get("decoupled")
    ref_acc = np.mean([r["final"]["test_accuracy"] for r in ref]) if ref else float("nan")
    print(f"\n{len(args.seeds)} seeds {args.seeds}; test points per run: "
          f"{len(table[args.variants[0]][0]['plot']['test_labels'])}")
    print("| variant | max-choice | single-shot | initial max-choice | Δ/Ω-only baseline (best) | ratio to decoupled "
          "| preparations | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, runs in table.items():
        acc = [r["final"]["test_accuracy"] for r in runs]
        single = [r["final"]["test_single_shot_accuracy"] for r in runs]
        init = [r["final"]["initial_test_accuracy"] for r in runs]
        final = runs[0]["final"]  # runs before session 9 have no two-threshold baseline
        base = max(final["detuning_only_baseline"], final.get("detuning_threshold_baseline", 0.0))
        preps = runs[0]["final"].get("preparations")
        wall = np.mean([r.get("wall_time_s", np.nan) for r in runs])
        print(f"| {variant} | {summary(acc)} | {summary(single)} | {summary(init)} | {base:.3f} | "
              f"{np.mean(acc) / ref_acc:.2f} | {preps if preps is not None else '—'} | {wall:.0f} |")
        per_seed = " ".join(f"{a:.3f}" for a in acc), " ".join(f"{a:.3f}" for a in single)
        print(f"|   per seed | {per_seed[0]} | {per_seed[1]} | | | | | |")
        val = [r["final"].get("validation_exact_accuracy") for r in runs]
        if all(v is not None for v in val):
            val_single = [r["final"]["validation_exact_single_shot_accuracy"] for r in runs]
            print(f"|   validation (100 held-out training points) | {summary(val)} | {summary(val_single)} | | | | | |")
    if args.png is not None and "trained" in table:
        figure(table["trained"][0], args.sizes, args.png)


if __name__ == "__main__":
    main()
