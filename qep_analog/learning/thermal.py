"""Thermal QEP (Massar–Mognetti Sec. IV): gradients of ⟨C⟩_T in the Gibbs state at temperature T.

Conventions (k_B = 1, T in the units of H): ρ_T(θ) = e^{−H(θ)/T}/Z, A_k = ∂H/∂θ_k, and the
nudged state ρ_{T,β} = e^{−(H + βC)/T}/Z_β. The theorem we implement (PHYSICS.md §1) is

    ∇_θk ⟨C⟩_T = d/dβ ⟨A_k⟩_{T,β} |_{β=0} = −(1/T) Cov_KM(A_k, C),

with the Kubo–Mori (Bogoliubov) covariance Cov_KM(A, C) = ∫₀¹ Tr(ρ^s A ρ^{1−s} C) ds − ⟨A⟩⟨C⟩.
Both sides carry the same sign: nudging *towards* larger C (β > 0) lowers ⟨A_k⟩ exactly when
raising θ_k lowers ⟨C⟩. (Massar's eq. 42 as printed has the opposite sign, i.e. ascent; we do
not use it.)

* :func:`nudged_gradient` — one-sided [⟨A⟩_β − ⟨A⟩_0]/β or symmetric [⟨A⟩_β − ⟨A⟩_{−β}]/(2β)
  with states from any backend returning density matrices ("gibbs", "cooling");
* :func:`thermal_response` — the exact β → 0 value, −(1/T) Cov_KM;
* :func:`finite_difference_gradient` — central differences of Tr(ρ_T(θ) C), the reference;
* the **covariance rule** (Massar eq. 43): −(1/T) Cov[A_k, C] from free-phase bitstrings alone
  (:func:`covariance_rule`). It needs A_k and C diagonal in one product basis; its mean is the
  *plain* (symmetrised) covariance −(1/T)(½⟨{A, C}⟩ − ⟨A⟩⟨C⟩) (:func:`covariance_rule_mean`),
  which equals the exact response only when A, C commute with H (e.g. Ω = 0). Its variance is
  ≈ (μ₂₂ − Cov²)/(M T²) with μ₂₂ = E[(a − ā)²(c − c̄)²] (:func:`covariance_rule_variance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.equilibrium.exact import GibbsBackend
from qep_analog.errors import QepValueError
from qep_analog.measurement.sampling import sample_bitstrings
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise QepValueError(f"'temperature' must be > 0, not {temperature}")
    return t


def _dense(op, n_qubits: int) -> np.ndarray:
    return op.matrix(n_qubits).toarray() if isinstance(op, PauliSum) else np.asarray(op)


def expectation(rho: np.ndarray, op: np.ndarray) -> float:
    return float(np.real(np.vdot(op.conj().T, rho)))  # Tr(ρ O)


# ---------------------------------------------------------------------------------- exact parts
def log_mean_weights(energies: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(p, W) with p the Boltzmann weights and W_ab = (p_a − p_b)/(ln p_a − ln p_b) (W_aa = p_a),
    computed without cancellation: W_ab = p_hi (1 − e^{−x})/x with x = |E_a − E_b|/T ≥ 0."""
    t = _check_temperature(temperature)
    w = np.exp(-(energies - energies.min()) / t)
    p = w / w.sum()
    x = np.abs(energies[:, None] - energies[None, :]) / t
    factor = np.where(x < 1e-12, 1.0, -np.expm1(-x) / np.where(x < 1e-12, 1.0, x))
    return p, np.maximum(p[:, None], p[None, :]) * factor


def kubo_mori_covariance(h: np.ndarray, a: np.ndarray, c: np.ndarray, temperature: float) -> float:
    """Cov_KM(A, C) = ∫₀¹ Tr(ρ^s A ρ^{1−s} C) ds − ⟨A⟩⟨C⟩ in the Gibbs state of dense H."""
    energies, v = np.linalg.eigh(h)
    p, w = log_mean_weights(energies, temperature)
    ae = v.conj().T @ a @ v
    ce = v.conj().T @ c @ v
    km = float(np.real(np.sum(ae * ce.T * w)))
    return km - float(np.real(np.diag(ae) @ p)) * float(np.real(np.diag(ce) @ p))


def plain_covariance(rho: np.ndarray, a: np.ndarray, c: np.ndarray) -> float:
    """½⟨{A, C}⟩ − ⟨A⟩⟨C⟩: what the covariance of bitstring outcomes estimates."""
    return 0.5 * (expectation(rho, a @ c) + expectation(rho, c @ a)) - expectation(rho, a) * expectation(rho, c)


def gibbs(h: np.ndarray, temperature: float) -> np.ndarray:
    energies, v = np.linalg.eigh(h)
    w = np.exp(-(energies - energies[0]) / _check_temperature(temperature))
    return (v * (w / w.sum())) @ v.conj().T


def thermal_expectation(hamiltonian: Hamiltonian, theta, x, observable: PauliSum, temperature: float) -> float:
    """Tr(ρ_T C) in the exact Gibbs state of H(θ, x)."""
    rho = gibbs(hamiltonian.dense(theta, x), temperature)
    return expectation(rho, _dense(observable, hamiltonian.n_qubits))


def thermal_response(hamiltonian: Hamiltonian, theta, x, observable: PauliSum, temperature: float) -> np.ndarray:
    """Exact ∇θ⟨C⟩_T = −(1/T) Cov_KM(∂H/∂θ_k, C) for every trainable parameter."""
    t = _check_temperature(temperature)
    n = hamiltonian.n_qubits
    h = hamiltonian.dense(theta, x)
    c = _dense(observable, n)
    return np.array(
        [-kubo_mori_covariance(h, _dense(hamiltonian.derivative(k), n), c, t) / t for k in hamiltonian.parameter_names]
    )


def finite_difference_gradient(
    hamiltonian: Hamiltonian,
    theta,
    x,
    observable: PauliSum,
    temperature: float | None,
    step: float = 1e-4,
    backend: EquilibriumBackend | None = None,
    warm_start: bool = False,
) -> np.ndarray:
    """Central differences of Tr(ρ(θ) C), with ρ from ``backend`` (default: exact Gibbs at T).

    ``warm_start`` passes the state at θ as ``reference`` to every shifted preparation (a
    time-evolving backend then starts close to the answer).

    With a non-thermal backend (e.g. sympathetic cooling) this is the reference against which
    the QEP estimate's bias is measured — no reciprocity is assumed.
    """
    theta = hamiltonian.theta_vector(theta)
    c = _dense(observable, hamiltonian.n_qubits)
    backend = backend or GibbsBackend(temperature=_check_temperature(temperature))

    reference = backend.prepare(hamiltonian, theta, x) if warm_start else None

    def value(th):
        state = backend.prepare(hamiltonian, th, x, reference=reference)
        return expectation(_as_density(state.state), c)

    out = np.empty(theta.size)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = step
        out[k] = (value(theta + e) - value(theta - e)) / (2 * step)
    return out


def _as_density(state: np.ndarray) -> np.ndarray:
    return np.outer(state, state.conj()) if state.ndim == 1 else state


def nudged_gradient(
    hamiltonian: Hamiltonian,
    theta,
    x,
    observable: PauliSum,
    *,
    beta: float,
    estimator: str = "symmetric",
    temperature: float | None = None,
    backend: EquilibriumBackend | None = None,
) -> np.ndarray:
    """Thermal QEP: d/dβ⟨∂H/∂θ_k⟩_{T,β} by a one-sided or symmetric difference (exact expectations).

    ``backend`` prepares the (nudged) states; the default is the exact Gibbs state at
    ``temperature``. The nudge is +β C. Bias O(β) one-sided, O(β²) symmetric, against
    :func:`thermal_response`.
    """
    if estimator not in ("one-sided", "symmetric"):
        raise QepValueError(f"'estimator' must be 'one-sided' or 'symmetric', not {estimator!r}")
    if not (np.isfinite(beta) and beta > 0):
        raise QepValueError(f"'beta' must be > 0, not {beta}")
    if backend is None:
        if temperature is None:
            raise QepValueError("give 'temperature' (exact Gibbs states) or a 'backend'")
        backend = GibbsBackend(temperature=_check_temperature(temperature))
    free = backend.prepare(hamiltonian, theta, x)

    def derivs(sign):
        st = backend.prepare(hamiltonian, theta, x, observable.scaled(sign * beta), reference=free)
        return hamiltonian.derivative_expectations(st.state)

    if estimator == "one-sided":
        return (derivs(1) - hamiltonian.derivative_expectations(free.state)) / beta
    return (derivs(1) - derivs(-1)) / (2 * beta)


# ---------------------------------------------------------------------------------- covariance rule
@dataclass(frozen=True, kw_only=True)
class CovarianceEstimate:
    """Covariance-rule gradient −(1/T) Cov[A_k, C] from M free-phase shots in one basis."""

    parameter_names: tuple[str, ...]
    gradient: np.ndarray
    stderr: np.ndarray
    shots: int
    basis: str
    temperature: float

    def __str__(self) -> str:
        return ", ".join(
            f"{n}: {g:.3f} ± {s:.3f}" for n, g, s in zip(self.parameter_names, self.gradient, self.stderr, strict=True)
        )


def common_basis(observables: Sequence[PauliSum], n_qubits: int) -> str:
    """The one product basis (a letter per qubit) diagonalising every observable, or raise."""
    basis: dict[int, str] = {}
    for obs in observables:
        for p in obs.products:
            for q, letter in p.basis.items():
                if basis.setdefault(q, letter) != letter:
                    raise QepValueError(
                        f"the covariance rule needs ∂H/∂θ and C diagonal in one product basis; "
                        f"qubit {q} is read in both {basis[q]} and {letter} (product '{p}')"
                    )
    return "".join(basis.get(q, "Z") for q in range(n_qubits))


def _selected(hamiltonian: Hamiltonian, parameters: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(parameters) if parameters is not None else hamiltonian.parameter_names
    unknown = [n for n in names if n not in hamiltonian.parameter_names]
    if unknown:
        raise QepValueError(f"unknown trainable parameter(s) {unknown}; known {list(hamiltonian.parameter_names)}")
    return names


def _outcomes(obs: PauliSum, bits: np.ndarray) -> np.ndarray:
    out = np.full(bits.shape[0], obs.constant, dtype=float)
    for c, p in obs.terms:
        out += c * p.outcome_values(bits)
    return out


def covariance_rule_from_bits(
    hamiltonian: Hamiltonian,
    bits: np.ndarray,
    observable: PauliSum,
    temperature: float,
    parameters: Sequence[str] | None = None,
    basis: str = "",
) -> CovarianceEstimate:
    """−(1/T) × sample covariance of per-shot values of ∂H/∂θ_k and C (bits measured in their
    common basis). Standard error from the per-shot products (a − ā)(c − c̄)."""
    t = _check_temperature(temperature)
    names = _selected(hamiltonian, parameters)
    m = bits.shape[0]
    if m < 2:
        raise QepValueError(f"'shots' must be ≥ 2 for a covariance, not {m}")
    c = _outcomes(observable, bits)
    dc = c - c.mean()
    grads, ses = [], []
    for name in names:
        a = _outcomes(hamiltonian.derivative(name), bits)
        prod = (a - a.mean()) * dc
        grads.append(-prod.sum() / (m - 1) / t)
        ses.append(prod.std(ddof=1) / np.sqrt(m) / t)
    return CovarianceEstimate(
        parameter_names=names,
        gradient=np.array(grads),
        stderr=np.array(ses),
        shots=m,
        basis=basis,
        temperature=t,
    )


def covariance_rule(
    hamiltonian: Hamiltonian,
    theta,
    x,
    observable: PauliSum,
    temperature: float,
    *,
    shots: int,
    seed: int | np.random.Generator = 0,
    backend: EquilibriumBackend | None = None,
    parameters: Sequence[str] | None = None,
) -> CovarianceEstimate:
    """Massar eq. 43 from free-phase bitstrings only: no nudged phase at all.

    The free state comes from ``backend`` (default: exact Gibbs at ``temperature``; a "cooling"
    backend works the same). Raises if ∂H/∂θ_k (for the selected ``parameters``) and C are not
    diagonal in one product basis.
    """
    names = _selected(hamiltonian, parameters)
    basis = common_basis([observable, *(hamiltonian.derivative(k) for k in names)], hamiltonian.n_qubits)
    backend = backend or GibbsBackend(temperature=_check_temperature(temperature))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    state = backend.prepare(hamiltonian, theta, x)
    bits = sample_bitstrings(state.state, basis, shots, rng)
    return covariance_rule_from_bits(hamiltonian, bits, observable, temperature, names, basis)


def covariance_rule_mean(
    hamiltonian: Hamiltonian,
    theta,
    x,
    observable: PauliSum,
    temperature: float,
    parameters: Sequence[str] | None = None,
) -> np.ndarray:
    """What the covariance rule converges to: −(1/T) × the plain covariance in the Gibbs state."""
    t = _check_temperature(temperature)
    n = hamiltonian.n_qubits
    rho = gibbs(hamiltonian.dense(theta, x), t)
    c = _dense(observable, n)
    return np.array(
        [
            -plain_covariance(rho, _dense(hamiltonian.derivative(k), n), c) / t
            for k in _selected(hamiltonian, parameters)
        ]
    )


def covariance_rule_variance(
    hamiltonian: Hamiltonian,
    theta,
    x,
    observable: PauliSum,
    temperature: float,
    shots: int,
    parameters: Sequence[str] | None = None,
) -> np.ndarray:
    """Large-M variance of the covariance rule, (μ₂₂ − Cov²)/(M T²), from the exact outcome law."""
    t = _check_temperature(temperature)
    names = _selected(hamiltonian, parameters)
    n = hamiltonian.n_qubits
    basis = common_basis([observable, *(hamiltonian.derivative(k) for k in names)], n)
    from qep_analog.measurement.sampling import basis_probabilities

    probs = basis_probabilities(gibbs(hamiltonian.dense(theta, x), t), basis)
    idx = np.arange(probs.size)
    bits = ((idx[:, None] >> (n - 1 - np.arange(n))) & 1).astype(np.uint8)
    c = _outcomes(observable, bits)
    dc = c - probs @ c
    out = []
    for k in names:
        a = _outcomes(hamiltonian.derivative(k), bits)
        da = a - probs @ a
        cov = probs @ (da * dc)
        out.append((probs @ (da**2 * dc**2) - cov**2) / (shots * t**2))
    return np.array(out)
