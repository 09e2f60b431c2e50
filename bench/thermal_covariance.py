"""Thermal QEP: covariance rule (Massar eq. 43) against the exact Kubo–Mori response.

Prints, and plots against Ω/T:
  1. the discrepancy between the covariance rule's mean −(1/T)·Cov_plain and the exact
     gradient −(1/T)·Cov_KM on an Ising chain with a transverse field Ω (it vanishes at Ω = 0
     and grows like 1/T at low T, where T·(plain − exact) → −Cov_ground);
  2. the shot cost of the covariance rule at Ω = 0: the empirical variance of the estimate over
     repeated draws of M bitstrings, fitted as Var ∝ M^a T^b, against the prediction
     (μ₂₂ − Cov²)/(M T²);
  3. for comparison, the thermal symmetric nudged estimator's bias at the same points.

    python bench/thermal_covariance.py [--repeats 200] [--out bench/results]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from qep_analog.learning.thermal import (
    covariance_rule_from_bits,
    covariance_rule_mean,
    covariance_rule_variance,
    gibbs,
    nudged_gradient,
    plain_covariance,
    thermal_response,
)
from qep_analog.measurement.sampling import sample_bitstrings
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum


def ising_chain(n: int, omega: float) -> Hamiltonian:
    """H = Σ J_i Z_i Z_{i+1} + Σ b_i Z_i + Ω Σ X_i; trainable J, b (Z-diagonal), fixed Ω."""
    terms = [dict(name=f"J{i}", operator=f"Z{i} Z{i + 1}", role="trainable", parameter=f"J{i}") for i in range(n - 1)]
    terms += [dict(name=f"b{i}", operator=f"Z{i}", role="trainable", parameter=f"b{i}") for i in range(n)]
    terms += [dict(name=f"x{i}", operator=f"X{i}", coefficient=omega) for i in range(n)]
    return Hamiltonian.build(n, terms, outputs={"z": f"Z{n - 1}"})


def discrepancy_scan(n: int, theta: np.ndarray, cost: PauliSum, omegas, temperatures) -> list[dict]:
    rows = []
    for omega in omegas:
        h = ising_chain(n, omega)
        hd = h.dense(theta)
        _, v = np.linalg.eigh(hd)
        ground = np.outer(v[:, 0], v[:, 0].conj())
        cg = np.array(
            [
                -plain_covariance(ground, h.derivative(k).matrix(n).toarray(), cost.matrix(n).toarray())
                for k in h.parameter_names
            ]
        )
        for t in temperatures:
            exact = thermal_response(h, theta, None, cost, t)
            plain = covariance_rule_mean(h, theta, None, cost, t)
            nudged = nudged_gradient(h, theta, None, cost, beta=0.05 * t, temperature=t)
            rows.append(
                dict(
                    omega=omega,
                    temperature=t,
                    exact=exact,
                    plain=plain,
                    abs_disc=float(np.linalg.norm(plain - exact)),
                    rel_disc=float(np.linalg.norm(plain - exact) / np.linalg.norm(exact)),
                    t_times_disc=float(t * np.linalg.norm(plain - exact)),
                    ground_limit=float(np.linalg.norm(cg)),
                    nudged_rel_err=float(np.linalg.norm(nudged - exact) / np.linalg.norm(exact)),
                )
            )
    return rows


def shot_cost(
    n: int, theta: np.ndarray, cost: PauliSum, temperatures, shots_list, repeats: int, seed: int
) -> list[dict]:
    h = ising_chain(n, 0.0)
    rng = np.random.default_rng(seed)
    basis = "Z" * n
    rows = []
    for t in temperatures:
        rho = gibbs(h.dense(theta), t)
        exact = thermal_response(h, theta, None, cost, t)
        for m in shots_list:
            draws = np.array(
                [
                    covariance_rule_from_bits(h, sample_bitstrings(rho, basis, m, rng), cost, t).gradient
                    for _ in range(repeats)
                ]
            )
            var = draws.var(axis=0, ddof=1)
            pred = covariance_rule_variance(h, theta, None, cost, t, m)
            bias = np.abs(draws.mean(axis=0) - exact) / np.sqrt(var / repeats)
            rows.append(
                dict(
                    temperature=t,
                    shots=m,
                    var=var,
                    predicted=pred,
                    exact=exact,
                    ratio=var / pred,
                    max_bias_z=float(bias.max()),
                )
            )
    return rows


def fit_power_law(rows: list[dict], k: int) -> tuple[float, float]:
    """Least squares log Var_k = a log M + b log T + c over the rows."""
    x = np.array([[np.log(r["shots"]), np.log(r["temperature"]), 1.0] for r in rows])
    y = np.log([r["var"][k] for r in rows])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(coef[0]), float(coef[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qubits", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    n = args.qubits
    rng = np.random.default_rng(args.seed)
    theta = rng.normal(size=2 * n - 1)
    cost = PauliSum.from_spec(f"Z{n - 1}")
    start = time.perf_counter()

    omegas = (0.0, 0.25, 0.5, 1.0, 2.0)
    temperatures = np.geomspace(0.05, 5.0, 13)
    rows = discrepancy_scan(n, theta, cost, omegas, temperatures)
    print(
        f"# 1. covariance rule vs exact Kubo–Mori response ({n}-qubit Ising chain, C = Z{n - 1}, "
        f"theta seed {args.seed})"
    )
    print(
        f"{'Omega':>6} {'T':>7} {'Omega/T':>8} {'|g_exact|':>10} {'|g_cov-g_exact|':>16} {'rel':>8} "
        f"{'T*disc':>8} {'->':>3} {'|Cov_ground|':>12} {'nudged rel err (beta=0.05T)':>28}"
    )
    for r in rows:
        print(
            f"{r['omega']:6.2f} {r['temperature']:7.3f} {r['omega'] / r['temperature']:8.2f} "
            f"{np.linalg.norm(r['exact']):10.4f} {r['abs_disc']:16.3e} {r['rel_disc']:8.3f} "
            f"{r['t_times_disc']:8.4f} {'':>3} {r['ground_limit']:12.4f} {r['nudged_rel_err']:28.2e}"
        )
    check = [r for r in rows if r["omega"] == 2.0 and abs(r["temperature"] - 0.1) < 0.02]
    for r in check:
        k = int(np.argmax(np.abs(r["plain"] - r["exact"])))
        print(
            f"Omega=2, T={r['temperature']:.3f}: worst parameter {k}: exact {r['exact'][k]:.3f} vs "
            f"plain covariance {r['plain'][k]:.3f}"
        )

    temps = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    shots_list = (100, 400, 1600)
    srows = shot_cost(n, theta, cost, temps, shots_list, args.repeats, args.seed + 1)
    print(f"\n# 2. shot cost of the covariance rule at Omega = 0 ({args.repeats} repeats per point)")
    print(
        f"{'T':>6} {'M':>6} {'Var (param J0)':>15} {'predicted':>12} {'ratio':>7} {'M*T^2*Var':>10} "
        f"{'max |bias|/se':>13}"
    )
    for r in srows:
        print(
            f"{r['temperature']:6.2f} {r['shots']:6d} {r['var'][0]:15.4e} {r['predicted'][0]:12.4e} "
            f"{r['ratio'][0]:7.3f} {r['shots'] * r['temperature'] ** 2 * r['var'][0]:10.4f} "
            f"{r['max_bias_z']:13.2f}"
        )
    ratios = np.concatenate([r["ratio"] for r in srows])
    print(
        f"empirical/predicted variance over all parameters and points: median {np.median(ratios):.3f}, "
        f"range [{ratios.min():.3f}, {ratios.max():.3f}]"
    )
    for k, name in enumerate(ising_chain(n, 0.0).parameter_names):
        a, b = fit_power_law(srows, k)
        hi = fit_power_law([r for r in srows if r["temperature"] >= 2.0], k)
        print(
            f"fit Var ∝ M^a T^b for {name}: a = {a:.3f}, b = {b:.3f} (all T); "
            f"a = {hi[0]:.3f}, b = {hi[1]:.3f} for T ≥ 2"
        )
    print(f"\nwall time {time.perf_counter() - start:.1f} s")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for omega in omegas[1:]:
        sel = [r for r in rows if r["omega"] == omega]
        x = [omega / r["temperature"] for r in sel]
        axes[0].loglog(x, [r["rel_disc"] for r in sel], "o-", label=f"Ω = {omega:g}")
        axes[1].loglog([1 / r["temperature"] for r in sel], [r["abs_disc"] for r in sel], "o-", label=f"Ω = {omega:g}")
    axes[0].set_xlabel("Ω / T")
    axes[0].set_ylabel("‖g_cov − g_exact‖ / ‖g_exact‖")
    axes[0].set_title("covariance rule vs Kubo–Mori response (Ω = 0: exact)")
    inv_t = 1 / temperatures
    anchor = max(r["abs_disc"] for r in rows)
    axes[1].loglog(inv_t, anchor * inv_t / inv_t.max(), "k--", label="∝ 1/T")
    axes[1].set_xlabel("1 / T")
    axes[1].set_ylabel("‖g_cov − g_exact‖")
    axes[1].set_title("absolute discrepancy grows like 1/T at low T")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = out / "thermal_covariance.png"
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
