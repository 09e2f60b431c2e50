"""The ``mps`` backend's variance refinement: at large R_b/a a bond cutoff that discards weight on blockade-
violating configurations (ΔE ≈ J_nn ≈ 1,200 rad/µs) leaves a variance far above the tolerance; the backend must
sweep on with a smaller cutoff until the state is an eigenstate to the tolerance, and match ``exact``."""

import numpy as np
import pytest

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.measurement.observables import derivative_expectations


def _chain(n: int = 10, rb_over_a: float = 2.6, omega: float = 4.0) -> RydbergModel:
    """A Rydberg chain on AnalogDevice (C6 of n = 60) at spacing R_b / rb_over_a, Δ = 3Ω (the Z3 side)."""
    c6 = float(RydbergModel(positions_um=[[0.0, 0.0], [10.0, 0.0]], device="AnalogDevice", omega=omega,
                            detunings=[0.0, 0.0]).c6)
    spacing = (c6 / omega) ** (1 / 6) / rb_over_a
    pos = np.c_[np.arange(n) * spacing, np.zeros(n)]
    return RydbergModel(positions_um=pos, device="AnalogDevice", omega=omega, detunings=np.full(n, 3.0 * omega))


def test_cutoff_limited_variance_is_refined_to_an_eigenstate():
    model = _chain()
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([])
    exact = get_backend("exact").prepare(h, theta, x)
    tol = 1e-6 * h.n_qubits
    coarse = get_backend("mps", model=model, variance_refinements=0).prepare(h, theta, x)
    refined = get_backend("mps", model=model).prepare(h, theta, x)
    # the default cutoff alone is not enough here (the case the refinement exists for), and it is flagged
    assert coarse.info["variance"] > tol and "variance" in coarse.info["flags"]
    assert coarse.info["truncation"] == 0.0  # no bond at max_bond: the cutoff, not the bond cap, truncated
    assert refined.info["refinements"] >= 1 and refined.info["cutoff_used"] < coarse.info["cutoff_used"]
    assert refined.info["variance"] <= tol and not refined.flagged
    # the certificate holds against the exact ground state: |E − E₀| ≤ Var / gap
    assert 0 <= refined.energy - exact.energy <= refined.info["variance"] / exact.gap + 1e-9
    assert abs(abs(np.vdot(refined.to_dense(), exact.state)) - 1) < 1e-6
    np.testing.assert_allclose(derivative_expectations(h, refined), derivative_expectations(h, exact), atol=1e-5)


def test_not_converged_state_is_refined_until_it_converges():
    # max_sweeps = 3 does not converge from a random MPS here: the first pass ends not converged, with no bond at
    # max_bond, and the refinement sweeps on from it (the 36-atom inverse-design grid at cutoff 1e-8 cycled
    # above energy_tol for 60 sweeps the same way, and its flag dropped every sample of a training step)
    model = _chain(rb_over_a=1.7)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([])
    exact = get_backend("exact").prepare(h, theta, x)
    options = dict(model=model, max_sweeps=3, energy_tol=1e-9)
    unrefined = get_backend("mps", variance_refinements=0, **options).prepare(h, theta, x)
    assert "not-converged" in unrefined.info["flags"] and "variance" not in unrefined.info["flags"]
    refined = get_backend("mps", **options).prepare(h, theta, x)
    assert refined.info["converged"] and not refined.flagged and refined.info["refinements"] >= 1
    assert 0 <= refined.energy - exact.energy <= refined.info["variance"] / exact.gap + 1e-9
    np.testing.assert_allclose(derivative_expectations(h, refined), derivative_expectations(h, exact), atol=1e-5)


def test_refinement_is_not_run_when_the_tolerance_is_met():
    model = _chain(rb_over_a=1.2, omega=2 * np.pi)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([])
    state = get_backend("mps", model=model).prepare(h, theta, x)
    assert state.info["refinements"] == 0 and state.info["cutoff_used"] == state.info["cutoff"]


@pytest.mark.parametrize("key, value", [("variance_refinements", -1), ("variance_refinements", 1.5),
                                        ("refine_factor", 1.0), ("refine_factor", 0.0)])
def test_refinement_options_are_checked(key, value):
    with pytest.raises(QepValueError, match=key):
        get_backend("mps", **{key: value})
