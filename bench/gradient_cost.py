"""Cost of a QEP gradient against central finite differences, and wall time per sensor sample.

Part 1 — state preparations to reach a mean batch-gradient cosine ≥ 0.9 against the exact
gradient (objective: L(⟨O⟩) = Σ(⟨O_ℓ⟩ − t_ℓ)², error-signal nudging), counted as in
PHYSICS.md §1: M shots per (phase, setting), one preparation per shot; the error signal comes
from the free phase's shots.
  * QEP: symmetric, honest grouped measurement; β tuned on a grid at every M.
  * FD:  central differences of L(ȳ), ȳ from M shots of the output setting at θ ± h e_k;
         h tuned on a grid at every M.
For each random (θ, batch) draw, the mean cosine over noise repetitions is interpolated in log M
to find the M where it first reaches 0.9; the ratio of preparations FD/QEP is reported per draw,
then its median and spread.
  Models: the 51-parameter phase sensor (9 settings) and a 12-qubit Ising network whose
  trainables (couplings, longitudinal biases) and outputs are all Z-diagonal (1 setting).

Part 2 — wall time per phase-sensor training sample (free + two nudged ground states + all 51
term expectations, Lanczos tolerance 1e-8): the named baseline is cold-started ARPACK
(``scipy.sparse.linalg.eigsh``), measured in the same run against warm-started ARPACK and the
package's compiled Lanczos (:mod:`qep_analog.equilibrium.lanczos`), cold and warm. For comparison
only, the issue quotes 28 ms per sample for the authors' public code on this machine (not
re-measured here).

Run:  python bench/gradient_cost.py [--draws 20] [--reps 4] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from qep_analog.datasets import two_blobs
from qep_analog.equilibrium import get_backend
from qep_analog.learning import GradientConfig, estimate_gradient, measurement_plan
from qep_analog.models.pauli import ProductTable
from qep_analog.models.spin_models import cluster_phase_sensor, phase_targets, sample_triangle, transverse_field_ising

TARGET_COSINE = 0.9


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def shots_to_reach(shots: np.ndarray, cosines: np.ndarray) -> float:
    """Smallest M (log-interpolated) where the mean cosine reaches the target; inf if never."""
    above = np.flatnonzero(cosines >= TARGET_COSINE)
    if above.size == 0:
        return float("inf")
    i = above[0]
    if i == 0:
        return float(shots[0])
    x0, x1 = np.log(shots[i - 1]), np.log(shots[i])
    y0, y1 = cosines[i - 1], cosines[i]
    return float(np.exp(x0 + (TARGET_COSINE - y0) * (x1 - x0) / (y1 - y0)))


def fd_probabilities(h, backend, theta, inputs, step):
    """Z-basis probabilities at θ ± step e_k for every sample (exact states, computed once)."""
    probs = np.empty((len(inputs), len(theta), 2, h.dim))
    for i, x in enumerate(inputs):
        for k in range(len(theta)):
            for j, sign in enumerate((1, -1)):
                shifted = theta.copy()
                shifted[k] += sign * step
                probs[i, k, j] = backend.prepare(h, shifted, x).probabilities()
    return probs


def fd_cosines(h, probs, targets, step, exact, shots_grid, reps, rng):
    """Mean cosine of shot-noisy central differences of L(ȳ) for each M."""
    outs = [o.observable for o in h.outputs]
    assert all(o.is_diagonal for o in outs), "FD benchmark reads outputs in the Z setting"
    values = np.array([o.constant + sum(c * ProductTable([p], h.n_qubits).values[0].real for c, p in o.terms)
                       for o in outs])  # (n_outputs, dim): output value of every bitstring
    n_samples, n_params = probs.shape[:2]
    result = []
    for m in shots_grid:
        cos = []
        for _ in range(reps):
            counts = rng.multinomial(m, probs.reshape(-1, h.dim)).reshape(probs.shape)
            y = counts @ values.T / m  # (samples, params, 2, outputs)
            loss = np.sum((y - targets[:, None, None, :]) ** 2, axis=-1)
            grad = ((loss[:, :, 0] - loss[:, :, 1]) / (2 * step)).mean(axis=0)
            cos.append(cosine(grad, exact))
        result.append(np.mean(cos))
    return np.array(result)


def qep_cosines(h, backend, theta, inputs, targets, beta, exact, shots_grid, reps, seed):
    result = []
    for m in shots_grid:
        cfg = GradientConfig(estimator="symmetric", beta=beta, shots=int(m))
        cos = [cosine(estimate_gradient(h, backend, theta, inputs, targets, cfg, seed=[seed, int(m), r]).gradient,
                      exact) for r in range(reps)]
        result.append(np.mean(cos))
    return np.array(result)


def study(name, h, backend, draw, n_draws, reps, shots_grid, betas, steps, settings_fd):
    print(f"\n== {name}: {len(h.parameter_names)} parameters, {h.n_qubits} qubits")
    ratios, qep_preps, fd_preps = [], [], []
    rng = np.random.default_rng(12345)
    t0 = time.time()
    for d in range(n_draws):
        theta, inputs, targets = draw(rng)
        exact = estimate_gradient(h, backend, theta, inputs, targets, GradientConfig(estimator="exact")).gradient
        per_m_qep = 1 + 2 * len(measurement_plan(h).derivative_settings)  # per sample per shot
        qep_all = np.array([qep_cosines(h, backend, theta, inputs, targets, b, exact, shots_grid, reps, d)
                            for b in betas])
        fd_all = np.array([fd_cosines(h, fd_probabilities(h, backend, theta, inputs, s), targets, s, exact,
                                      shots_grid, reps, rng) for s in steps])
        qep, fd = qep_all.max(axis=0), fd_all.max(axis=0)
        m_qep, m_fd = shots_to_reach(shots_grid, qep), shots_to_reach(shots_grid, fd)
        best_beta = [betas[i] for i in qep_all.argmax(axis=0)]
        best_step = [steps[i] for i in fd_all.argmax(axis=0)]
        p_qep = m_qep * per_m_qep * len(targets)
        p_fd = m_fd * 2 * len(theta) * settings_fd * len(targets)
        qep_preps.append(p_qep)
        fd_preps.append(p_fd)
        ratios.append(p_fd / p_qep)
        print(f"  draw {d + 1:2d}/{n_draws}: QEP M*={m_qep:8.1f} ({p_qep:10.3g} preps)  "
              f"FD M*={m_fd:8.1f} ({p_fd:10.3g} preps)  ratio {p_fd / p_qep:6.2f}   "
              f"[{time.time() - t0:6.0f} s]", flush=True)
        print(f"      best β per M {best_beta}; best FD step per M {best_step}; "
              f"best cosines QEP {np.round(qep, 2).tolist()} FD {np.round(fd, 2).tolist()}", flush=True)
    r = np.array(ratios)
    finite = np.isfinite(r)
    print(f"  preparations to reach cosine {TARGET_COSINE}: QEP median {np.median(qep_preps):.3g}, "
          f"FD median {np.median(fd_preps):.3g}")
    print(f"  ratio FD/QEP over {n_draws} draws: median {np.median(r):.2f}, "
          f"IQR {np.percentile(r[finite], 25):.2f}–{np.percentile(r[finite], 75):.2f}, "
          f"min {np.min(r):.2f}, max {np.max(r):.2f}  (baseline: central finite differences)")
    return r


def sensor_draw(h):
    def draw(rng):
        points = sample_triangle(10, rng)
        return 0.3 * rng.standard_normal(51), points, phase_targets(points)
    return draw


def ising_draw(h):
    n_in = len(h.input_names)

    def draw(rng):
        theta = 0.3 * rng.standard_normal(len(h.parameter_names))
        x, t = two_blobs(10, n_in, rng, separation=1.5)
        return theta, x, np.hstack([t, -t])
    return draw


def sample_time(h, n_batches=10, seed=0):
    """Seconds per training sample, and eigensolver calls per sample, for each solver/start."""
    rng = np.random.default_rng(seed)
    points = sample_triangle(10 * n_batches, rng)
    targets = phase_targets(points)
    theta = 0.3 * rng.standard_normal(51)
    cfg = GradientConfig(estimator="symmetric", beta=0.4, shots=10, measurement="gaussian")
    out = {}
    variants = (("cold ARPACK eigsh (baseline)", "arpack", False), ("warm ARPACK eigsh", "arpack", True),
                ("cold compiled Lanczos", "lanczos", False), ("warm compiled Lanczos (default)", "lanczos", True))
    for label, solver, warm in variants:
        backend = get_backend("exact", tol=1e-8, warm_start=warm, solver=solver)
        counter = _CountingBackend(backend)
        estimate_gradient(h, backend, theta, points[:2], targets[:2], cfg)  # warm caches and compiled code
        t0 = time.perf_counter()
        for b in range(n_batches):
            sl = slice(10 * b, 10 * b + 10)
            estimate_gradient(h, counter, theta, points[sl], targets[sl], cfg, seed=b)
        out[label] = ((time.perf_counter() - t0) / (10 * n_batches), counter.calls / (10 * n_batches),
                      counter.methods)
    return out


class _CountingBackend:
    """Passes through to an equilibrium backend, counting solves and the method that served them."""

    def __init__(self, backend):
        self.backend, self.calls, self.methods = backend, 0, {}
        self.name = backend.name

    def prepare(self, *args, **kwargs):
        state = self.backend.prepare(*args, **kwargs)
        self.calls += 1
        method = state.info.get("method", "?")
        self.methods[method] = self.methods.get(method, 0) + 1
        return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 draws, 2 reps (a smoke run)")
    parser.add_argument("--skip", choices=("sensor", "ising", "timing"), action="append", default=[])
    args = parser.parse_args()
    draws, reps = (2, 2) if args.quick else (args.draws, args.reps)
    backend = get_backend("exact", tol=1e-8)
    with threadpool_limits(limits=1):
        if "timing" not in args.skip:
            sensor = cluster_phase_sensor()
            times = sample_time(sensor)
            base = times["cold ARPACK eigsh (baseline)"][0]
            cold = {"arpack": times["cold ARPACK eigsh (baseline)"][0],
                    "lanczos": times["cold compiled Lanczos"][0]}
            print("== wall time per phase-sensor training sample (free + 2 nudged + 51 expectations, tol 1e-8,")
            print("   symmetric β = 0.4, θ ~ 0.3·N(0,1), 100 samples; solves include crossing re-preparations)")
            for label, (t, solves, methods) in times.items():
                solver = "arpack" if "ARPACK" in label else "lanczos"
                print(f"  {label:34s} {1e3 * t:7.2f} ms   vs baseline {base / t:5.2f}×   "
                      f"warm-start vs cold (same solver) {cold[solver] / t:5.2f}×   "
                      f"{solves:.2f} solves/sample  methods {methods}")
            print("  (issue quotes 28 ms/sample for the authors' public code on this machine; target ≤ 12 ms)")
        shots_grid = np.array([10, 30, 100, 300, 1000, 3000, 10000, 30000])
        if "sensor" not in args.skip:
            sensor = cluster_phase_sensor()
            study("phase sensor (symmetric QEP, 9 settings) vs central FD", sensor, backend, sensor_draw(sensor),
                  draws, reps, shots_grid, betas=(0.1, 0.2, 0.4, 0.8), steps=(0.05, 0.1, 0.2, 0.4), settings_fd=1)
        if "ising" not in args.skip:
            ising = transverse_field_ising(12, input_qubits=[0, 1], output_qubits=[10, 11], trainable_fields=False,
                                           transverse_field=1.0, trainable_biases=True,
                                           edges=[(i, j) for i in range(12) for j in range(i + 1, min(i + 5, 12))])
            study("12-qubit Ising network, all trainables Z-diagonal (1 setting) vs central FD", ising, backend,
                  ising_draw(ising), draws, reps, shots_grid, betas=(0.1, 0.2, 0.4, 0.8), steps=(0.05, 0.1, 0.2, 0.4),
                  settings_fd=1)


if __name__ == "__main__":
    main()
