"""Adiabatic QEP within the hardware's time budget (issue 14): gradient error and fidelity per protocol.

Instances
  * the Rydberg classifier's own training samples (protocols/rydberg_classifier.toml: its register,
    Ω, detunings, inputs and targets; β = 1 as in the protocol);
  * random 4–8-atom registers on qep_lab_device (its C6, limits; positions ≥ 5.5 µm apart in a 20 µm
    box, Ω ∈ [3, 10] rad/µs, δ_i ∈ [−2, 8] rad/µs, one output atom, target 0 or 1, β = 0.5) whose
    minimum gap along the cosine path (free and both nudged paths, 41 points) is ≥ 1 rad/µs.

For every instance and protocol: the symmetric cost-operator QEP gradient
g = (⟨∂H/∂θ⟩_{+β} − ⟨∂H/∂θ⟩_{−β})/(2β), nudge β Σ(1 − 2t) n_ℓ, from the emulated sequences (krylov,
noiseless, no shots), against the same estimator on exact ground states (the `exact` backend) at the
same β; relative error ‖g − g_exact‖/‖g_exact‖ and 1 − F of the free preparation. The device used is
qep_lab_device with a second DMM (after-preparation nudges need a second detuning map; for the
simultaneous protocols the sequences are the same as on qep_lab_device itself).

    flock /tmp/qep_cpu.lock python bench/adiabatic_qep.py [--random 24] [--classifier 16] [--quick]

Prints the table (median and quartiles of the relative error, median 1 − F) at T = 4 and 6 µs total
sequence time, ratios to the cosine baseline of the same run, the gap distribution, the correlation
of the preparation-quality estimates with the error, and writes bench/results/adiabatic_qep.png
(error vs min gap × T) and bench/results/adiabatic_qep.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import tomllib
from pathlib import Path

import numpy as np

from qep_analog.device.devices import load_device
from qep_analog.device.rydberg import RydbergModel, pair_couplings
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.schedules import path_spectrum
from qep_analog.models.pauli import PauliSum

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DURATIONS_NS = (4000, 6000)
PROTOCOLS = {
    "cosine": dict(schedule="cosine"),
    "local-adiabatic": dict(schedule="local-adiabatic"),
    "arc-cosine": dict(schedule="arc-cosine"),
    "cosine + after-prep": dict(schedule="cosine", nudge="after-preparation", nudge_ramp_ns=1000),
    "LA + after-prep": dict(schedule="local-adiabatic", nudge="after-preparation", nudge_ramp_ns=1000),
    "LA + after-prep + hold-pair": dict(schedule="local-adiabatic", nudge="after-preparation", nudge_ramp_ns=500,
                                        hold_ns=1000, dephase="hold-pair"),
}


def lab_device_two_dmms():
    dev = load_device("qep_lab_device")
    return dataclasses.replace(dev, dmm_objects=(dev.dmm_objects[0],) * 2)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Instance:
    name: str
    model: RydbergModel
    x: np.ndarray
    target: float
    beta: float


def classifier_instances(device, n: int) -> list[Instance]:
    from qep_analog.datasets import two_blobs

    spec = tomllib.loads((ROOT / "protocols" / "rydberg_classifier.toml").read_text())
    dev_s, data = spec["device"], spec["data"]
    model = RydbergModel(positions_um=dev_s["positions_um"], device=device, omega=dev_s["omega"],
                         detunings=dev_s["detunings"], phase=dev_s.get("phase", 0.0),
                         input_atoms=tuple(dev_s["input_atoms"]), output_atoms=tuple(dev_s["output_atoms"]))
    rng = np.random.default_rng(data["seed"])  # the protocol's own data generator (protocol.build_data)
    x, t = two_blobs(data["n_train"] + data["n_test"], 2, rng, separation=data["separation"], noise=data["noise"],
                     scale=data["input_scale"])
    beta = float(spec["gradient"]["beta"])
    return [Instance(name=f"classifier-{k}", model=model, x=x[k], target=float(t[k, 0] > 0), beta=beta)
            for k in range(min(n, data["n_train"]))]


def nudge_for(inst: Instance, sign: float) -> PauliSum:
    out = inst.model.output_atoms[0]
    return PauliSum.from_spec([[sign * inst.beta * (1.0 - 2.0 * inst.target), f"n{out}"]], inst.model.n_atoms)


def cosine_path_gap(inst: Instance, start_detuning: float = -20.0) -> float:
    """Min coupled gap along the cosine (linear-in-s) path to the free and both nudged targets."""
    model = inst.model
    controls = model.controls(model.theta(), model.inputs(inst.x) if model.input_atoms else None)
    couplings = pair_couplings(np.asarray(controls["positions_um"]), model.c6)
    gaps = []
    for sign in (0.0, 1.0, -1.0):
        det = controls["detunings"].copy()
        det[model.output_atoms[0]] -= sign * inst.beta * (1.0 - 2.0 * inst.target)
        spec = path_spectrum(couplings, controls["omega"], controls["phase"], det, start_detuning, points=41)
        gaps.append(spec.min_gap)
    return float(min(gaps))


def random_instances(device, n: int, seed: int = 14, hard: bool = False) -> tuple[list[Instance], int]:
    """``hard``: Ω ∈ [2, 10], δ_i ∈ [0, 14] rad/µs, spacing ≥ 5 µm (smaller gaps; still ≥ 1 rad/µs)."""
    rng = np.random.default_rng(seed)
    omega_range, det_range, spacing = ((2, 10), (0, 14), 5.0) if hard else ((3, 10), (-2, 8), 5.5)
    out, tried = [], 0
    while len(out) < n:
        tried += 1
        n_atoms = int(rng.integers(4, 9))
        pos = []
        while len(pos) < n_atoms:
            p = rng.uniform(0, 20, size=2)
            if all(np.linalg.norm(p - q) >= spacing for q in pos):
                pos.append(p)
        model = RydbergModel(positions_um=np.array(pos), device=device, omega=float(rng.uniform(*omega_range)),
                             detunings=rng.uniform(*det_range, size=n_atoms), input_atoms=(),
                             output_atoms=(int(rng.integers(n_atoms)),))
        if model.violations():
            continue
        inst = Instance(name=f"random-{tried}", model=model, x=np.zeros(0), target=float(rng.integers(2)), beta=0.5)
        if cosine_path_gap(inst) >= 1.0:
            out.append(inst)
    return out, tried


def derivative_diagonals(h) -> np.ndarray:
    """(K, 2^N) diagonals of the Z-diagonal ∂H/∂θ_k (every Rydberg parameter is Z-diagonal)."""
    return np.array([np.real(h.derivative(name).matrix(h.n_qubits).diagonal()) for name in h.parameter_names])


def probabilities(state: np.ndarray) -> np.ndarray:
    return np.abs(state) ** 2 if state.ndim == 1 else np.real(np.diag(state))


def symmetric_gradient(backend, inst: Instance, h, diags) -> tuple[np.ndarray, object]:
    theta = inst.model.theta()
    x = inst.model.inputs(inst.x) if inst.model.input_atoms else None
    free = backend.prepare(h, theta, x)
    means = [diags @ probabilities(backend.prepare(h, theta, x, nudge_for(inst, s)).state) for s in (1.0, -1.0)]
    return (means[0] - means[1]) / (2 * inst.beta), free


def run(instances, durations, protocols, quality_protocol: str) -> list[dict]:
    rows = []
    exact = get_backend("exact")
    for k, inst in enumerate(instances):
        h = inst.model.hamiltonian()
        diags = derivative_diagonals(h)
        g_exact, _ = symmetric_gradient(exact, inst, h, diags)
        gap = cosine_path_gap(inst)
        for duration in durations:
            for name, opts in protocols.items():
                extra = dict(quality_check="second-ramp") if name == quality_protocol else {}
                backend = get_backend("adiabatic", model=inst.model, duration_ns=duration, emulator="krylov",
                                      **opts, **extra)
                t0 = time.perf_counter()
                g, free = symmetric_gradient(backend, inst, h, diags)
                rel = float(np.linalg.norm(g - g_exact) / np.linalg.norm(g_exact))
                row = dict(instance=inst.name, n_atoms=inst.model.n_atoms, protocol=name, duration_ns=duration,
                           rel_error=rel, infidelity=float(free.info["infidelity"]), min_gap=gap,
                           wall_s=time.perf_counter() - t0)
                row.update({f"quality_{key}": v for key, v in free.info.get("preparation", {}).items()})
                rows.append(row)
        print(f"  [{k + 1}/{len(instances)}] {inst.name} N={inst.model.n_atoms} gap={gap:.2f}: "
              + ", ".join(f"{r['protocol']}@{r['duration_ns'] // 1000}µs {r['rel_error']:.3f}"
                          for r in rows if r["instance"] == inst.name),
              flush=True)
    return rows


def table(rows, label: str) -> None:
    print(f"\n### {label}: median relative gradient error [quartiles], median 1 − F (ratio of medians to cosine)")
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    durations = sorted({r["duration_ns"] for r in rows})
    print("| protocol | " + " | ".join(f"T = {d / 1000:g} µs: rel. error | 1 − F" for d in durations) + " |")
    print("|---|" + "---|---|" * len(durations))
    for p in protocols:
        cells = []
        for d in durations:
            sel = [r for r in rows if r["protocol"] == p and r["duration_ns"] == d]
            base = [r for r in rows if r["protocol"] == "cosine" and r["duration_ns"] == d]
            err = np.array([r["rel_error"] for r in sel])
            ratio = np.median(err) / np.median([r["rel_error"] for r in base])
            q1, q3 = np.percentile(err, [25, 75])
            cells.append(f"{np.median(err):.3f} [{q1:.3f}, {q3:.3f}] (×{ratio:.2f}) | "
                         f"{np.median([r['infidelity'] for r in sel]):.1e}")
        print(f"| {p} | " + " | ".join(cells) + " |")


def quality_report(rows, protocol: str) -> None:
    sel = [r for r in rows if r["protocol"] == protocol and "quality_second_ramp_distance" in r]
    if not sel:
        return
    err = np.array([r["rel_error"] for r in sel])
    print(f"\n### preparation-quality estimates ({protocol}, {len(sel)} runs): Spearman rank correlation with the "
          f"relative gradient error")
    from scipy.stats import spearmanr

    for key in ("quality_second_ramp_distance", "quality_output_shift", "quality_variance_infidelity"):
        vals = np.array([r.get(key, np.nan) for r in sel])
        print(f"  {key[8:]}: rho = {spearmanr(vals, err).statistic:.2f}")
    inf = np.array([r["infidelity"] for r in sel])
    print(f"  (true 1 − F: rho = {spearmanr(inf, err).statistic:.2f})")
    dist = np.array([r["quality_second_ramp_distance"] for r in sel])
    for thr in (0.01, 0.03, 0.1):
        keep = dist <= thr
        if keep.any() and (~keep).any():
            print(f"  flag at second_ramp_distance > {thr}: flags {int((~keep).sum())}/{len(sel)}; median error "
                  f"kept {np.median(err[keep]):.3f}, flagged {np.median(err[~keep]):.3f}")


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {4000: "o", 6000: "s"}
    for k, p in enumerate(dict.fromkeys(r["protocol"] for r in rows)):
        for d, m in markers.items():
            sel = [r for r in rows if r["protocol"] == p and r["duration_ns"] == d]
            if sel:
                ax.scatter([r["min_gap"] * d / 1000 for r in sel], [r["rel_error"] for r in sel], marker=m,
                           color=f"C{k}", s=14, alpha=0.7, label=f"{p}, {d / 1000:g} µs")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(0.1, color="grey", lw=0.8, ls="--")
    ax.axhline(0.05, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("min gap along the cosine path × T (rad)")
    ax.set_ylabel("relative gradient error vs exact (same β)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def eigenstate_gradients(inst: Instance, h, diags, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E_n, |n⟩, g_n) for the ``levels`` lowest free eigenstates: g_n the symmetric finite-β QEP gradient of
    eigenstate n followed by overlap into H ± βD (the per-eigenstate Hellmann–Feynman gradient ∂⟨C⟩_n/∂θ)."""
    import scipy.linalg

    theta = inst.model.theta()
    x = inst.model.inputs(inst.x) if inst.model.input_atoms else None
    w, v = scipy.linalg.eigh(h.matrix(theta, x).toarray())
    means = []
    for sign in (1.0, -1.0):
        extra = nudge_for(inst, sign).matrix(h.n_qubits)
        _, vb = scipy.linalg.eigh(h.matrix(theta, x, extra=extra).toarray())
        follow = np.argmax(np.abs(vb.conj().T @ v[:, :levels]) ** 2, axis=0)
        means.append(np.array([diags @ np.abs(vb[:, i]) ** 2 for i in follow]))
    return w[:levels], v[:, :levels], (means[0] - means[1]) / (2 * inst.beta)


def decompose(instances, duration_ns: int = 4000, ramps_ns=(248, 500, 1000, 2000, 3000)) -> None:
    """Where the after-preparation error comes from (docs/adiabatic_qep.md):
    (a) the nudge ramp alone, started from the exact free ground state (no preparation error);
    (b) with the LA preparation: ĝ vs the population-weighted target Σ p_n g_n vs the ground-state g_0."""
    from qep_analog.device.sequences import RampSpec, model_sequence
    from qep_analog.equilibrium.emulators import emulate

    print("\n### (a) nudge ramp alone from the exact free ground state: relative error of the symmetric gradient")
    print("| instance | coupled end gap (rad/µs) | " + " | ".join(f"τ = {r} ns" for r in ramps_ns) + " |")
    print("|---|---|" + "---|" * len(ramps_ns))
    for inst in instances:
        h = inst.model.hamiltonian()
        diags = derivative_diagonals(h)
        w, v, g = eigenstate_gradients(inst, h, diags, 6)
        theta = inst.model.theta()
        x = inst.model.inputs(inst.x) if inst.model.input_atoms else None
        controls = inst.model.controls(theta, x)
        backend = get_backend("adiabatic", model=inst.model, emulator="krylov")
        end_gap = float(backend.path_spectrum(controls).coupled_gap[-1])
        cells = []
        for tau in ramps_ns:
            ramp = RampSpec(duration_ns=16 + tau, nudge="after-preparation", nudge_ramp_ns=tau)
            means = []
            for sign in (1.0, -1.0):
                change = np.zeros(inst.model.n_atoms)
                change[inst.model.output_atoms[0]] = -sign * inst.beta * (1.0 - 2.0 * inst.target)
                seq, _ = model_sequence(inst.model, controls, ramp, nudge_detunings=change, profile=np.ones(16))
                psi = emulate(seq, "krylov", initial_state=v[:, 0].astype(complex), tolerance=1e-9).state
                means.append(diags @ np.abs(psi) ** 2)
            est = (means[0] - means[1]) / (2 * inst.beta)
            cells.append(f"{np.linalg.norm(est - g[0]) / np.linalg.norm(g[0]):.3f}")
        print(f"| {inst.name} | {end_gap:.2f} | " + " | ".join(cells) + " |")
    print(f"\n### (b) LA preparation + after-preparation nudge (T = {duration_ns} ns, nudge ramp 1000 ns): "
          "relative to ‖g_0‖")
    print("| instance | 1 − p_0 | ‖Σp_n g_n − g_0‖ | ‖ĝ − Σp_n g_n‖ | ‖ĝ − g_0‖ | ‖ĝ − g_0‖ hold-pair (500, 1000) |")
    print("|---|---|---|---|---|---|")
    for inst in instances:
        h = inst.model.hamiltonian()
        diags = derivative_diagonals(h)
        w, v, g = eigenstate_gradients(inst, h, diags, 12)
        cells = []
        for opts in (dict(nudge_ramp_ns=1000), dict(nudge_ramp_ns=500, hold_ns=1000, dephase="hold-pair")):
            backend = get_backend("adiabatic", model=inst.model, duration_ns=duration_ns, emulator="krylov",
                                  schedule="local-adiabatic", nudge="after-preparation", **opts)
            est, free = symmetric_gradient(backend, inst, h, diags)
            p = np.abs(v.conj().T @ free.state) ** 2
            target = (p[:, None] * g).sum(axis=0) / p.sum()
            cells.append((1 - p[0], target, est))
        norm = np.linalg.norm(g[0])
        (p_exc, target, est), (_, _, est_pair) = cells
        print(f"| {inst.name} | {p_exc:.3f} | {np.linalg.norm(target - g[0]) / norm:.3f} | "
              f"{np.linalg.norm(est - target) / norm:.3f} | {np.linalg.norm(est - g[0]) / norm:.3f} | "
              f"{np.linalg.norm(est_pair - g[0]) / norm:.3f} |")


def noise_row(instances, protocols: dict, n_trajectories: int, durations=DURATIONS_NS) -> None:
    """The protocols with qep_lab_device's noise model (quantum-jump trajectories, emulator "trajectories";
    SPAM readout flips are left to the measurement layer, so not included): per-sample relative error and
    the batch-mean gradient's relative error and cosine against the noiseless exact gradient."""
    noise = load_device("qep_lab_device").noise_model
    print(f"\n### noise: qep_lab_device noise model {sorted(noise.noise_types)}, {n_trajectories} trajectories, "
          f"{len(instances)} samples")
    print("| protocol | T | median per-sample rel. error | batch-mean rel. error | batch-mean cosine | median 1 − F |")
    print("|---|---|---|---|---|---|")
    exact = get_backend("exact")
    refs = {}
    for inst in instances:
        h = inst.model.hamiltonian()
        refs[inst.name] = symmetric_gradient(exact, inst, h, derivative_diagonals(h))[0]
    for name, opts in protocols.items():
        for duration in durations:
            errs, grads, infid = [], [], []
            for inst in instances:
                h = inst.model.hamiltonian()
                backend = get_backend("adiabatic", model=inst.model, duration_ns=duration, noise_model=noise,
                                      n_trajectories=n_trajectories, **opts)
                g, free = symmetric_gradient(backend, inst, h, derivative_diagonals(h))
                ref = refs[inst.name]
                errs.append(np.linalg.norm(g - ref) / np.linalg.norm(ref))
                grads.append(g)
                infid.append(free.info["infidelity"])
            mean, ref = np.mean(grads, axis=0), np.mean([refs[i.name] for i in instances], axis=0)
            cos = float(mean @ ref / (np.linalg.norm(mean) * np.linalg.norm(ref)))
            print(f"| {name} | {duration / 1000:g} µs | {np.median(errs):.3f} | "
                  f"{np.linalg.norm(mean - ref) / np.linalg.norm(ref):.3f} | {cos:.3f} | {np.median(infid):.1e} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=24)
    parser.add_argument("--classifier", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="4 random, 4 classifier samples")
    parser.add_argument("--hard", action="store_true", help="random registers with smaller gaps (see random_instances)")
    parser.add_argument("--seed", type=int, default=14, help="seed of the random registers")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help="comma-separated subset of: " + ", ".join(PROTOCOLS))
    parser.add_argument("--scan-boundary", action="store_true",
                        help="instead: local-adiabatic with boundary λ = 0.1, 0.2, 0.3, 0.5, 1 (= cosine)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--decompose", action="store_true",
                        help="instead: decompose the after-preparation error on 4 classifier samples")
    parser.add_argument("--noise", type=int, default=0, metavar="K",
                        help="instead: cosine vs local-adiabatic with qep_lab_device's noise, K trajectories, "
                             "on the --classifier samples")
    args = parser.parse_args()
    if args.noise:
        noise_row(classifier_instances(load_device("qep_lab_device"), args.classifier),
                  {k: PROTOCOLS[k] for k in ("cosine", "local-adiabatic")}, args.noise)
        return
    if args.decompose:
        decompose(classifier_instances(lab_device_two_dmms(), 4))
        return
    if args.quick:
        args.random, args.classifier = 4, 4
    protocols = {name: PROTOCOLS[name] for name in args.protocols.split(",")}
    if "cosine" not in protocols:
        protocols = {"cosine": PROTOCOLS["cosine"], **protocols}  # the baseline of every ratio
    if args.scan_boundary:
        protocols = {"cosine": PROTOCOLS["cosine"]}
        protocols.update({f"LA λ={lam:g}": dict(schedule="local-adiabatic", schedule_boundary=lam)
                          for lam in (0.1, 0.2, 0.3, 0.5)})
    device = lab_device_two_dmms()
    start = time.perf_counter()
    clf = classifier_instances(device, args.classifier)
    rnd, tried = random_instances(device, args.random, seed=args.seed, hard=args.hard)
    print(f"instances: {len(clf)} classifier samples, {len(rnd)} random registers ({tried} drawn, kept those with "
          f"min cosine-path gap ≥ 1 rad/µs)")
    gaps = {"classifier": [cosine_path_gap(i) for i in clf], "random": [cosine_path_gap(i) for i in rnd]}
    for key, g in gaps.items():
        if not g:
            continue
        print(f"  min gap ({key}): min {np.min(g):.2f}, quartiles {np.percentile(g, 25):.2f} / "
              f"{np.median(g):.2f} / {np.percentile(g, 75):.2f}, max {np.max(g):.2f} rad/µs")
    print("  random N:", dict(zip(*np.unique([i.model.n_atoms for i in rnd], return_counts=True), strict=True)))
    quality_protocol = "local-adiabatic"
    rows = run(clf + rnd, DURATIONS_NS, protocols, quality_protocol)
    for prefix, label in (("classifier", "classifier training samples"), ("random", "random registers")):
        if any(r["instance"].startswith(prefix) for r in rows):
            table([r for r in rows if r["instance"].startswith(prefix)], label)
    table(rows, "all instances")
    quality_report(rows, quality_protocol)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "adiabatic_qep" + (f"_{args.tag}" if args.tag else "")
    plot(rows, RESULTS / f"{stem}.png")
    (RESULTS / f"{stem}.json").write_text(json.dumps(dict(rows=rows, gaps=gaps), indent=1, default=float))
    print(f"\nwrote {RESULTS / stem}.png and .json; wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
