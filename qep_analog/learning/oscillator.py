"""QEP gradients of the oscillator network and their exact references (Scellier 2024, eqs. 19-21).

Model: :class:`qep_analog.models.oscillator.OscillatorNetwork`, H = Σ p²/2m + ½ Σ k_e (r_i − r_j)²,
trainables k_e, ∂H/∂k_e = ½ (r_i − r_j)². Every estimator names the objective it differentiates:

- ``"mean-loss"``: L(⟨r_out⟩) = Σ_ℓ (μ_ℓ − y_ℓ)², reached by **error-signal nudging**
  H + Σ_ℓ ν_ℓ r_ℓ with ν = β ∂L/∂μ = 2β (μ − y). The linear force only shifts the mean, so
  ⟨∂H/∂k⟩_β is exactly quadratic in β: the symmetric estimator is exact at every β (up to the
  shot noise and the noise of an error signal estimated from shots), the one-sided has bias ∝ β.
- ``"cost-expectation"``: ⟨C⟩ = Σ_ℓ ⟨(r_ℓ − y_ℓ)²⟩ = Σ_ℓ [(μ_ℓ − y_ℓ)² + Var r_ℓ], reached by
  **cost-operator nudging** H + β C, i.e. springs of constant 2β from each output to y_ℓ
  (Scellier's "nudge springs of constant β" are (β/2) C). Biases: one-sided ∝ β, symmetric ∝ β².
  Pitfall: scaling every k by λ leaves μ unchanged and shrinks Var as λ^{-1/2}, so descent on ⟨C⟩
  drives k → ∞. Train the mean, or bound k (``k_max``).

QEP theorem used: d/dβ|₀ ⟨∂H/∂k⟩_β = ∂(objective)/∂k (sign: H^β = H + β·nudge, descent uses −g).

Counting (PHYSICS.md §1): positions of all nodes commute, so there is one measurement setting and
every shot (one preparation) gives all ∂H/∂k_e and all outputs. M shots per phase:
one-sided = free + nudged (2M; the free shots also give the error signal); symmetric =
±β (2M) plus, for error-signal nudging, a free phase for the error signal (3M); central finite
differences = 2 phases per parameter (2PM). ``shots=None`` is the ideal mode (exact expectations,
preparations counted as 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from qep_analog.errors import QepValueError
from qep_analog.models.oscillator import OscillatorNetwork, OutputNudge

OBJECTIVES: dict[str, str] = {
    "mean-loss": "L(<r_out>) = sum_l (<r_l> - y_l)^2",
    "cost-expectation": "<C> = sum_l <(r_l - y_l)^2>",
}
NUDGE_OBJECTIVE: dict[str, str] = {"error-signal": "mean-loss", "cost-operator": "cost-expectation"}
ESTIMATORS = ("one-sided", "symmetric")


def _check_choice(value: str, allowed, what: str) -> str:
    if value not in allowed:
        raise QepValueError(f"'{what}' must be one of {tuple(allowed)}, not {value!r}")
    return value


def _check_shots(shots, rng=False) -> int | None:
    if shots is None:
        return None
    if not isinstance(shots, int | np.integer) or isinstance(shots, bool) or shots < 1:
        raise QepValueError(f"'shots' must be an integer ≥ 1 (or None for ideal), not {shots!r}")
    if rng is None:
        raise QepValueError("'rng' (a numpy Generator) is required when 'shots' is given")
    return int(shots)


def _check_positive(value, what: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise QepValueError(f"'{what}' must be a finite number > 0, not {value!r}")
    return v


@dataclass(frozen=True, kw_only=True, eq=False)
class OscillatorGradient:
    """A gradient estimate: per-parameter ``gradient`` ± ``stderr`` of the named ``objective``.

    ``preparations`` counts state preparations (shots over all phases; 0 in ideal mode).
    ``stderr`` of QEP estimates is conditional on the error signal (ε from free-phase shots is
    treated as given).
    """

    gradient: np.ndarray
    stderr: np.ndarray
    preparations: int
    objective: str
    parameter_names: tuple[str, ...]
    estimator: str
    nudge: str | None = None
    beta: float | None = None
    shots: int | None = None

    def __str__(self) -> str:
        rows = [f"{self.estimator} gradient of {OBJECTIVES[self.objective]}"]
        rows += [f"  {n}: {g:.6g} ± {s:.2g}" for n, g, s in
                 zip(self.parameter_names, self.gradient, self.stderr, strict=True)]
        return "\n".join(rows)

    def to_dict(self) -> dict:
        return dict(parameter_names=list(self.parameter_names), gradient=self.gradient.tolist(),
                    stderr=self.stderr.tolist(), preparations=int(self.preparations),
                    objective=self.objective, estimator=self.estimator, nudge=self.nudge,
                    beta=self.beta, shots=self.shots)


def combine(results: Sequence[OscillatorGradient]) -> OscillatorGradient:
    """Batch mean of per-sample estimates (stderr √Σse²/n, preparations summed)."""
    if not results:
        raise QepValueError("'results' must hold at least one gradient estimate")
    n, first = len(results), results[0]
    return OscillatorGradient(
        gradient=np.mean([r.gradient for r in results], axis=0),
        stderr=np.sqrt(np.sum([r.stderr**2 for r in results], axis=0)) / n,
        preparations=sum(r.preparations for r in results),
        objective=first.objective, parameter_names=first.parameter_names,
        estimator=first.estimator, nudge=first.nudge, beta=first.beta, shots=first.shots,
    )


# ---------------------------------------------------------------------- exact references
def _target(net: OscillatorNetwork, y) -> np.ndarray:
    arr = np.asarray(y, dtype=float).reshape(-1)
    if arr.shape != (len(net.output_nodes),) or not np.all(np.isfinite(arr)):
        raise QepValueError(f"'y' must hold {len(net.output_nodes)} finite values, "
                            f"not {arr.tolist()}")
    return arr


def objective_value(net: OscillatorNetwork, theta, x, y, objective: str) -> float:
    """Exact value of ``objective`` ("mean-loss" or "cost-expectation") at (θ, x, y)."""
    _check_choice(objective, OBJECTIVES, "objective")
    y = _target(net, y)
    state = net.ground_state(theta, x)
    out = list(net.output_nodes)
    value = float(np.sum((state.mean[out] - y) ** 2))
    if objective == "cost-expectation":
        value += float(np.sum(np.diag(state.covariance)[out]))
    return value


def exact_gradient(net: OscillatorNetwork, theta, x, y, objective: str) -> OscillatorGradient:
    """Closed-form ∂(objective)/∂k_e.

    Mean part (adjoint): with λ = K_ff⁻¹ ε, ε = 2(μ − y) on the outputs (0 elsewhere, 0 on
    clamped nodes), ∂L/∂k_e = −(λ_i − λ_j)(μ_i − μ_j). Variance part (``cost-expectation``):
    Σ = ½ S A^{-1/2} S with S = M^{-1/2}, A = S K_ff S; the derivative of A^{-1/2} along
    E_e = S L_e S is U (F ∘ UᵀE_eU) Uᵀ with the Daleckii–Krein divided differences
    F_ab = (w_a^{-1/2} − w_b^{-1/2})/(w_a − w_b), F_aa = −½ w_a^{-3/2}.
    """
    _check_choice(objective, OBJECTIVES, "objective")
    y = _target(net, y)
    theta = net.theta_vector(theta)
    state = net.ground_state(theta, x)
    K = net.stiffness(theta)
    free, out = list(net.free_nodes), list(net.output_nodes)
    Kff = K[np.ix_(free, free)]
    eps = np.zeros(net.n_nodes)
    eps[out] = 2.0 * (state.mean[out] - y)
    lam = np.zeros(net.n_nodes)
    lam[free] = np.linalg.solve(Kff, eps[free])
    i, j = np.asarray(net.edges, dtype=int).reshape(-1, 2).T
    grad = -(lam[i] - lam[j]) * (state.mean[i] - state.mean[j])
    if objective == "cost-expectation":
        s = 1.0 / np.sqrt(np.asarray(net.masses)[free])
        w, U = np.linalg.eigh(s[:, None] * Kff * s[None, :])
        f = w**-0.5
        dw = w[:, None] - w[None, :]
        same = np.abs(dw) <= 1e-12 * np.max(w)
        F = np.where(same, -0.5 * w[:, None] ** -1.5,
                     (f[:, None] - f[None, :]) / np.where(same, 1, dw))
        weight = np.zeros(len(free))
        weight[[free.index(o) for o in out]] = 1.0
        G = U.T @ ((weight * s**2)[:, None] * U)  # Uᵀ S P_out S U
        for e, L in enumerate(net.edge_matrices()):
            E = s[:, None] * L[np.ix_(free, free)] * s[None, :]
            grad[e] += 0.5 * float(np.sum(G * F * (U.T @ E @ U)))
    return OscillatorGradient(
        gradient=grad, stderr=np.zeros_like(grad), preparations=0, objective=objective,
        parameter_names=net.parameter_names, estimator="exact",
    )


def _objective_from_shots(net, state, y, objective, shots, rng) -> tuple[float, float]:
    """Objective estimated from ``shots`` position samples, with its standard error."""
    r = state.sample_positions(shots, rng)[:, list(net.output_nodes)]
    if objective == "cost-expectation":
        per_shot = np.sum((r - y) ** 2, axis=1)
        return float(per_shot.mean()), float(per_shot.std(ddof=1) / np.sqrt(shots))
    mean = r.mean(axis=0)
    se = r.std(axis=0, ddof=1) / np.sqrt(shots)
    return float(np.sum((mean - y) ** 2)), float(np.sqrt(np.sum((2 * (mean - y) * se) ** 2)))


def finite_difference_gradient(
    net: OscillatorNetwork, theta, x, y, objective: str, *, step: float,
    shots: int | None = None, rng: np.random.Generator | None = None,
) -> OscillatorGradient:
    """Central finite differences [O(k_e + h) − O(k_e − h)]/(2h) of ``objective``.

    With ``shots``, each of the 2P phases estimates the objective from M shots (mean-loss from the
    sample means, cost-expectation from per-shot costs): 2PM preparations.
    """
    _check_choice(objective, OBJECTIVES, "objective")
    step = _check_positive(step, "step")
    shots = _check_shots(shots, rng)
    y = _target(net, y)
    theta = net.theta_vector(theta)
    grad, se = np.zeros(theta.size), np.zeros(theta.size)
    for e in range(theta.size):
        values, errors = [], []
        for sign in (1.0, -1.0):
            th = theta.copy()
            th[e] += sign * step
            if shots is None:
                values.append(objective_value(net, th, x, y, objective))
                errors.append(0.0)
            else:
                v, s = _objective_from_shots(net, net.ground_state(th, x), y, objective, shots, rng)
                values.append(v)
                errors.append(s)
        grad[e] = (values[0] - values[1]) / (2 * step)
        se[e] = np.hypot(*errors) / (2 * step)
    return OscillatorGradient(
        gradient=grad, stderr=se, preparations=0 if shots is None else 2 * theta.size * shots,
        objective=objective, parameter_names=net.parameter_names, estimator="finite-difference",
        beta=step, shots=shots,
    )


# ---------------------------------------------------------------------- QEP estimators
def qep_gradient(
    net: OscillatorNetwork, theta, x, y, *, nudge: str, estimator: str, beta: float,
    shots: int | None = None, rng: np.random.Generator | None = None,
) -> OscillatorGradient:
    """QEP estimate of the gradient of the objective that ``nudge`` differentiates.

    ``nudge="error-signal"``: phases H + β Σ ε_ℓ r_ℓ with ε = 2(⟨r_out⟩ − y) taken from the free
    phase (exact, or the free-phase shot means). ``nudge="cost-operator"``: phases H + β C.
    ``estimator="one-sided"``: (h(β) − h(0))/β; ``"symmetric"``: (h(β) − h(−β))/(2β), where
    h = ⟨∂H/∂k⟩ (exact, or per-shot ½(r_i − r_j)² averaged over M shots).
    """
    _check_choice(nudge, NUDGE_OBJECTIVE, "nudge")
    _check_choice(estimator, ESTIMATORS, "estimator")
    beta = _check_positive(beta, "beta")
    shots = _check_shots(shots, rng)
    y = _target(net, y)
    theta = net.theta_vector(theta)
    out = list(net.output_nodes)
    preparations = 0

    def measure(state) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(h, stderr of h, output means) from the state, exactly or from shots."""
        nonlocal preparations
        if shots is None:
            return state.pair_expectations(net.edges), np.zeros(len(net.edges)), state.mean[out]
        preparations += shots
        r = state.sample_positions(shots, rng)
        d = net.derivative_samples(r)
        return d.mean(0), d.std(0, ddof=1) / np.sqrt(shots), r[:, out].mean(0)

    free_needed = estimator == "one-sided" or nudge == "error-signal"
    h0 = se0 = None
    if free_needed:
        h0, se0, mu_out = measure(net.ground_state(theta, x))
    eps = 2.0 * (mu_out - y) if nudge == "error-signal" else None  # ∂L/∂μ from the free phase

    def nudge_for(b: float) -> OutputNudge:
        return OutputNudge.linear(b * eps) if eps is not None else OutputNudge.cost(b, y)

    hp, sep, _ = measure(net.ground_state(theta, x, nudge_for(beta)))
    if estimator == "one-sided":
        grad, se = (hp - h0) / beta, np.hypot(sep, se0) / beta
    else:
        hm, sem, _ = measure(net.ground_state(theta, x, nudge_for(-beta)))
        grad, se = (hp - hm) / (2 * beta), np.hypot(sep, sem) / (2 * beta)
    return OscillatorGradient(
        gradient=grad, stderr=se, preparations=preparations, objective=NUDGE_OBJECTIVE[nudge],
        parameter_names=net.parameter_names, estimator=estimator, nudge=nudge, beta=beta,
        shots=shots,
    )


# ---------------------------------------------------------------------- data-set references
def mean_loss_and_gradient(net: OscillatorNetwork, theta, xs, ys) -> tuple[float, np.ndarray]:
    """Exact data-set mean of L = Σ_ℓ (μ_ℓ − y_ℓ)² and its gradient (adjoint, vectorised)."""
    theta = net.theta_vector(theta)
    K = net.stiffness(theta)
    free, clamped, out = list(net.free_nodes), list(net.clamped_nodes), list(net.output_nodes)
    xs, ys = np.atleast_2d(xs), np.atleast_2d(ys)
    n = xs.shape[0]
    mean = np.zeros((net.n_nodes, n))
    mean[clamped] = np.vstack([xs.T, np.tile(np.asarray(net.anchor_positions)[:, None], (1, n))])
    Kff = K[np.ix_(free, free)]
    mean[free] = -np.linalg.solve(Kff, K[np.ix_(free, clamped)] @ mean[clamped])
    resid = mean[out] - ys.T
    eps = np.zeros_like(mean)
    eps[out] = 2.0 * resid
    lam = np.zeros_like(mean)
    lam[free] = np.linalg.solve(Kff, eps[free])
    i, j = np.asarray(net.edges, dtype=int).reshape(-1, 2).T
    grad = -np.mean((lam[i] - lam[j]) * (mean[i] - mean[j]), axis=1)
    return float(np.mean(np.sum(resid**2, axis=0))), grad


def optimum_mean_loss(
    net: OscillatorNetwork, xs, ys, *, k_min: float, k_max: float | None,
    restarts: int, rng: np.random.Generator, starts: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, float]:
    """Analytic optimum of the constrained problem min_{k_min ≤ k ≤ k_max} mean L(⟨r_out⟩).

    L-BFGS-B on the exact loss and gradient, from ``restarts`` log-uniform random starts plus the
    given ``starts``; returns the best (θ*, loss*). A local method: the restarts guard against
    local minima but do not prove global optimality.
    """
    bounds = [(k_min, k_max)] * net.n_parameters
    hi = k_max if k_max is not None else 10.0
    candidates = [np.clip(np.asarray(s, float), k_min, k_max) for s in starts]
    candidates += [np.exp(rng.uniform(np.log(max(k_min, 1e-3)), np.log(hi), net.n_parameters))
                   for _ in range(restarts)]
    best_theta, best = None, np.inf
    for start in candidates:
        res = minimize(lambda th: mean_loss_and_gradient(net, th, xs, ys), start, jac=True,
                       method="L-BFGS-B", bounds=bounds,
                       options=dict(maxiter=20_000, ftol=1e-15, gtol=1e-12))
        if res.fun < best:
            best_theta, best = res.x, float(res.fun)
    return best_theta, best
