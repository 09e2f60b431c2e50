"""Deterministic check of the quantum-jump integrator against the exact density matrix (qutip mesolve on our
own Hamiltonian), without statistical error.

A trajectory is a deterministic map from its uniform numbers (waiting thresholds r₁, r₂, … and operator choices
u₁, …) to a final state. Splitting the master-equation solution by the number of jumps (Dyson expansion in the
jump superoperator J ρ = Σ L ρ L†),

    ρ(T) = ρ₀ + ρ₁ + ρ_{≥2},   ρ₀ = |ψ̃(T)⟩⟨ψ̃(T)|,   ρ₁ = ∫₀ᵀ dt Σ_j |φ_j(t)⟩⟨φ_j(t)|,
    ψ̃(t) = Ũ(t, 0) ψ₀,  φ_j(t) = Ũ(T, t) L_j ψ̃(t),  Ũ the no-jump propagator of H_eff = H − (i/2) Σ L†L,

and ρ_{≥2} ⪰ 0 with trace P(≥ 2 jumps). The test runs OUR trajectory code with scripted numbers: r₁ = 0 (no
jump) gives ψ̃(T)/‖ψ̃(T)‖; r₁ = ‖ψ̃(t)‖² (the first-jump law: P(t_jump ≤ t) = 1 − ‖ψ̃(t)‖²), u₁ in the middle
of operator j's probability interval and r₂ = 0 give φ_j(t)/‖φ_j(t)‖. An independent reference (Magnus
exponentials of our own H_eff(t)) supplies the weights ‖ψ̃(T)‖², ‖φ_j(t)‖² and the expected states;
Gauss–Legendre quadrature over t assembles ρ₀ + ρ₁. Then ρ_mesolve − (ρ₀ + ρ₁) must be positive semidefinite
with trace P(≥ 2): its trace norm equals its trace, so ‖ρ_mesolve − ρ₀ − ρ₁‖₁ ≤ P(≥ 2) ≤ 1e-3 (the "to 1e-3"
check), and any error of the one-jump part larger than the eigenvalue tolerance (1e-5) would show up as a
negative eigenvalue.

What it proves: for every jump time and operator the code's trajectory is the exact conditional state (jump
time located to ~1e-7 µs, operator picked by ‖L_j ψ‖², post-jump no-jump evolution), and these conditional
states average to the master equation in the zero- and one-jump sectors. Not covered here: sectors with ≥ 2
jumps (the same loop iterates; the statistical tests in test_trajectories.py cover them) and the uniformity of
numpy's generator.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from pulser import Pulse, Register, Sequence
from pulser.noise_model import NoiseModel
from pulser.waveforms import InterpolatedWaveform

from qep_analog.device.devices import load_device
from qep_analog.equilibrium.emulators.krylov import interaction_diagonal
from qep_analog.equilibrium.emulators.noise import decay_operator, prepare_noisy_sequence
from qep_analog.equilibrium.emulators.sampled import hamiltonian_matrix
from qep_analog.equilibrium.emulators.trajectories import _Problem, _run_one, control_steps

LAB = load_device("qep_lab_device")


def ramp(n_atoms: int, duration_ns: int) -> Sequence:
    """A 1D ramp at 6 µm on qep_lab_device with a DMM map and φ = 0.7 (as in test_trajectories.py)."""
    reg = Register.from_coordinates([(6.0 * i, 0.0) for i in range(n_atoms)], prefix="q")
    seq = Sequence(reg, LAB)
    seq.declare_channel("ryd", "rydberg_global")
    weights = {f"q{i}": float(w) for i, w in enumerate(np.linspace(0.2, 1.0, n_atoms))}
    seq.config_detuning_map(reg.define_detuning_map(weights), "dmm_0")
    seq.add_dmm_detuning(InterpolatedWaveform(duration_ns, [0.0, -4.0, -2.0]), "dmm_0")
    seq.add(Pulse(InterpolatedWaveform(duration_ns, [0.0, 6.0, 6.0, 0.0]),
                  InterpolatedWaveform(duration_ns, [-12.0, -4.0, 3.0, 8.0]), 0.7), "ryd", protocol="no-delay")
    return seq


def _single(op: np.ndarray, i: int, n: int) -> np.ndarray:
    out = np.eye(1)
    for j in range(n):
        out = np.kron(out, op if j == i else np.eye(2))
    return out


class Scripted:
    """Stands in for the trajectory's generator: returns the given uniforms, then 0 (never another jump)."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0) if self.values else 0.0


def _magnus_propagators(sampled, k_total: np.ndarray, grid_us: np.ndarray) -> list[np.ndarray]:
    """Fourth-order commutator-free Magnus exponentials of H_eff(t) on each grid interval."""
    a1, a2 = 0.25 + np.sqrt(3) / 6, 0.25 - np.sqrt(3) / 6
    out = []
    for t0, t1 in zip(grid_us[:-1], grid_us[1:], strict=True):
        h = t1 - t0
        g1, g2 = t0 + (0.5 - np.sqrt(3) / 6) * h, t0 + (0.5 + np.sqrt(3) / 6) * h
        h1 = hamiltonian_matrix(sampled, g1) - 0.5j * k_total
        h2 = hamiltonian_matrix(sampled, g2) - 0.5j * k_total
        out.append(scipy.linalg.expm(-1j * h * (a2 * h1 + a1 * h2)) @ scipy.linalg.expm(-1j * h * (a1 * h1 + a2 * h2)))
    return out


def _phase_free(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.sqrt(max(0.0, 2 - 2 * abs(np.vdot(a, b)))))


def _mesolve(sampled, ops, n: int) -> np.ndarray:
    import qutip

    dims = [[2] * n, [2] * n]
    h = qutip.QobjEvo(lambda t: qutip.Qobj(hamiltonian_matrix(sampled, t), dims=dims))
    c_ops = [qutip.Qobj(_single(op, i, n), dims=dims) for op in ops for i in range(n)]
    times = np.linspace(0, sampled.duration_us, 2 * sampled.duration_ns + 1)
    result = qutip.mesolve(h, qutip.basis([2] * n, [0] * n), times, c_ops=c_ops,
                           options={"atol": 1e-11, "rtol": 1e-9, "max_step": 5e-4, "store_states": False,
                                    "store_final_state": True})
    return result.final_state.full()


def check_sectors(n_atoms: int, duration_ns: int, nm: NoiseModel, panels: int, order: int, p_max: float):
    seq = ramp(n_atoms, duration_ns=duration_ns)
    noisy = prepare_noisy_sequence(seq, nm)
    ops = list(noisy.ops)
    n = noisy.n_atoms
    psi0 = np.zeros(2**n, dtype=complex)
    psi0[0] = 1.0
    n_steps, _, noiseless = control_steps(noisy, psi0, 1e-11)
    problem = _Problem(noisy=noisy, seed=0, n_steps=n_steps, decay=decay_operator(ops), psi0=psi0,
                       noiseless=noiseless)
    sampled = noiseless[0]
    np.testing.assert_allclose(noiseless[1], interaction_diagonal(sampled.interaction_matrix()))
    big = [_single(op, i, n) for i in range(n) for op in ops]  # channel j = (atom i, operator k), the code's order
    k_total = sum(op.conj().T @ op for op in big)

    # Quadrature nodes (composite Gauss–Legendre) inserted into a 0.5 ns grid aligned with the 1 ns knots.
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(0.0, sampled.duration_us, panels + 1)
    nodes = np.concatenate([0.5 * (b - a) * x + 0.5 * (a + b) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    weights = np.concatenate([0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:], strict=True)])
    grid = np.unique(np.concatenate([np.linspace(0, sampled.duration_us, 2 * sampled.duration_ns + 1), nodes]))
    props = _magnus_propagators(sampled, k_total, grid)
    forward = [psi0]
    for u in props:
        forward.append(u @ forward[-1])
    backward = [np.eye(2**n, dtype=complex)]  # Ũ(T, grid[m]) for m from the end
    for u in props[::-1]:
        backward.append(backward[-1] @ u)
    backward = backward[::-1]
    index = {float(t): m for m, t in enumerate(grid)}

    survival = float(np.vdot(forward[-1], forward[-1]).real)
    final0, jumps0, _ = _run_one(problem, 0, Scripted([0.0]))
    assert jumps0 == 0 and _phase_free(final0, forward[-1]) < 1e-5
    rho = survival * np.outer(final0, final0.conj())
    worst_time, worst_state = 0.0, 0.0
    for t, wt in zip(nodes, weights, strict=True):
        m = index[float(t)]
        psi_t = forward[m]
        s_t = float(np.vdot(psi_t, psi_t).real)
        rates = np.array([float(np.vdot(op @ psi_t, op @ psi_t).real) for op in big])
        cum = np.concatenate([[0.0], np.cumsum(rates)])
        for j, op in enumerate(big):
            if rates[j] <= 1e-14 * rates.sum():
                continue
            phi = backward[m] @ (op @ psi_t)
            u = (cum[j] + 0.5 * rates[j]) / cum[-1]
            final, n_jumps, record = _run_one(problem, 0, Scripted([s_t, u]))
            assert n_jumps == 1 and record[0][1:] == divmod(j, len(ops))
            worst_time = max(worst_time, abs(record[0][0] - t))
            worst_state = max(worst_state, _phase_free(final, phi))
            rho += wt * float(np.vdot(phi, phi).real) * np.outer(final, final.conj())
    assert worst_time < 1e-6  # the code's first-jump time is S⁻¹(r₁)
    assert worst_state < 1e-5  # its conditional final state is the exact one
    p_two = 1.0 - float(np.trace(rho).real)
    assert 0 < p_two <= p_max
    exact = _mesolve(sampled, ops, n)
    rest = exact - rho
    eig = np.linalg.eigvalsh(0.5 * (rest + rest.conj().T))
    assert eig.min() >= -1e-5, f"ρ_mesolve − ρ₀ − ρ₁ has eigenvalue {eig.min():.2e} < 0"
    trace_norm = float(np.abs(eig).sum())
    assert trace_norm <= p_two + 2e-5 and trace_norm <= 1e-3
    return dict(p_two=p_two, trace_norm=trace_norm, min_eig=float(eig.min()), worst_time_us=worst_time,
                worst_state=worst_state)


def test_zero_and_one_jump_sectors_reproduce_mesolve_exactly():
    """3 atoms, 1 µs DMM ramp with φ = 0.7; dephasing + relaxation + depolarizing (15 channels)."""
    nm = NoiseModel(dephasing_rate=0.01, relaxation_rate=0.01, depolarizing_rate=0.006)
    check_sectors(3, 1000, nm, panels=5, order=6, p_max=1e-3)


@pytest.mark.slow
def test_zero_and_one_jump_sectors_with_eff_noise_on_four_atoms():
    nm = NoiseModel(dephasing_rate=0.004, relaxation_rate=0.004, depolarizing_rate=0.003,
                    eff_noise_rates=(0.002,), eff_noise_opers=(np.array([[0.3, 1j], [0.5, -0.2]]),))
    check_sectors(4, 1200, nm, panels=8, order=8, p_max=1e-3)
