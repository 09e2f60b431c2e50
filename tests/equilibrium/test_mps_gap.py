"""The ``mps`` backend's gap (``gap=True``: penalty DMRG2 for the first excited state) against exact diagonalisation."""

import numpy as np
import pytest
import scipy.sparse.linalg

from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend

TIGHT = dict(cutoff=1e-12, energy_tol=1e-11, local_eig_tol=1e-10)


def _model(kind: str, seed: int) -> RydbergModel:
    rng = np.random.default_rng(seed)
    if kind == "chain12":
        pos = np.c_[np.arange(12) * 6.0, np.zeros(12)]
    else:  # a 2 × 5 ladder, listed row by row
        pos = np.array([[6.5 * i, 7.0 * j] for j in range(2) for i in range(5)], dtype=float)
    pos = pos + rng.uniform(-0.4, 0.4, size=pos.shape)
    n = len(pos)
    return RydbergModel(positions_um=pos, device="AnalogDevice", omega=2 * np.pi,
                        detunings=2 * np.pi * rng.uniform(0.8, 2.0, size=n), input_atoms=(0,), output_atoms=(n - 1,))


def _lowest_two(h, theta, x) -> np.ndarray:
    w = scipy.sparse.linalg.eigsh(h.matrix(theta, x), k=2, which="SA", tol=1e-13, return_eigenvectors=False)
    return np.sort(w)


@pytest.mark.parametrize("kind, seed", [("chain12", 1), ("ladder", 2)])
def test_gap_matches_exact(kind, seed):
    model = _model(kind, seed)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.6])
    w = _lowest_two(h, theta, x)
    plain = get_backend("mps", model=model, **TIGHT).prepare(h, theta, x)
    state = get_backend("mps", model=model, gap=True, **TIGHT).prepare(h, theta, x)
    assert np.isnan(plain.gap)
    assert state.gap == pytest.approx(w[1] - w[0], rel=1e-6)
    assert state.info["gap"]["energy"] == pytest.approx(w[1], rel=1e-9)
    assert state.info["gap"]["overlap"] < 1e-6 and state.info["gap"]["flags"] == []
    assert state.energy == plain.energy and not state.flagged  # the ground state is untouched


def test_gap_flags_a_penalty_below_the_gap():
    model = _model("ladder", 3)
    h, theta, x = model.hamiltonian(), model.theta(), model.inputs([0.0])
    w = _lowest_two(h, theta, x)
    weight = 0.5 * (w[1] - w[0])  # then H + w|ψ₀⟩⟨ψ₀| has ψ₀ itself as ground state (⟨H⟩ = E₀)
    state = get_backend("mps", model=model, gap=True, gap_weight=weight, **TIGHT).prepare(h, theta, x)
    assert abs(state.gap) < 1e-6 * abs(state.energy) and state.info["gap"]["overlap"] > 1 - 1e-6
    assert any("overlaps the ground state" in f for f in state.info["gap"]["flags"])


def test_gap_weight_is_validated():
    with pytest.raises(ValueError, match="gap_weight"):
        get_backend("mps", gap=True, gap_weight=-1.0)
