"""Fast emulation of pulser sequences on Rydberg arrays, selected by name.

    result = emulate(seq, method="krylov" | "subspace" | "pulser", tolerance=1e-7)

All methods integrate the Hamiltonian read from the sequence by pulser's sampler (see
:mod:`.sampled`), in OUR basis (|0⟩ = |g⟩, |1⟩ = |r⟩, qubit 0 = first atom of the register):

    H(t) = Σ_i (Ω_i/2)(cos φ_i X_i + sin φ_i Y_i) − Σ_i δ_i n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j

- "krylov": full space, no physical approximation (a fourth-order splitting with exact diagonal
  and exact single-atom factors, see :mod:`.krylov`); ``error_estimate`` from step doubling,
  ≤ ``tolerance``.
- "subspace": blockade subspace of radius ``blockade_radius_um`` (default (C6/Ω_max)^(1/6)),
  optionally Schrieffer–Wolff corrected (see :mod:`.subspace`); ``tolerance`` bounds only the
  time-integration part, ``error_estimate`` also contains the perturbative physical error.
- "pulser": pulser-simulation through QutipBackendV2 with explicit solver options
  (:mod:`.reference`); ``error_estimate`` is ``nan`` (not estimated).

``error_estimate`` is always an estimate of the infidelity 1 − |⟨ψ_exact|ψ⟩|² against the exact
evolution of the sampled Hamiltonian. Noise: on the fast paths a SPAM-only NoiseModel is recorded in
``info["spam"]`` for the measurement layer; any other channel runs ``n_trajectories`` quantum-jump
trajectories (:func:`.trajectories.run_trajectories` with the same ``method``; "subspace" only for channels
that keep the blockade subspace) and returns their mixture's density matrix as ``state`` (≤ 12 atoms; the
trajectory states themselves, K × 2^N, are in ``info["trajectories"]``); without ``n_trajectories`` such a
model is refused. "pulser" passes the model through (``n_trajectories`` required for shot-to-shot noise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from qep_analog.equilibrium.emulators.sampled import SampledSequence, sample_sequence
from qep_analog.equilibrium.emulators.subspace import (
    SubspaceGroundState,
    default_radius_um,
    subspace_ground_state,
)
from qep_analog.errors import QepValueError

EMULATORS: dict[str, str] = {
    "krylov": "full space, no approximation, error-controlled splitting (fast)",
    "subspace": "blockade subspace (+ Schrieffer–Wolff correction), perturbative error estimate",
    "pulser": "pulser-simulation (QuTiP sesolve/mesolve/mcsolve), the reference",
}
FAST_NOISE_TYPES = frozenset({"SPAM"})


@dataclass(frozen=True, kw_only=True)
class EmulationResult:
    """Final state of an emulation and what we know about its accuracy.

    ``state``: state vector in our basis (a density matrix only for noisy "pulser" runs);
    ``error_estimate``: estimated infidelity against the exact evolution (nan if unknown);
    ``dimension``: size of the space integrated; ``blockade_radius_um``: nan unless "subspace".
    """

    state: np.ndarray
    error_estimate: float
    method: str
    dimension: int
    blockade_radius_um: float
    wall_time_s: float
    info: dict = field(default_factory=dict)

    @property
    def fidelity_lower_estimate(self) -> float:
        return 1.0 - self.error_estimate


def spam_parameters(noise_model) -> dict:
    """SPAM parameters of a pulser NoiseModel (zeros when absent)."""
    return {
        "state_prep_error": float(getattr(noise_model, "state_prep_error", 0.0) or 0.0),
        "p_false_pos": float(getattr(noise_model, "p_false_pos", 0.0) or 0.0),
        "p_false_neg": float(getattr(noise_model, "p_false_neg", 0.0) or 0.0),
    }


def check_fast_noise(noise_model, method: str) -> dict | None:
    """Refuse any channel but SPAM on the fast paths; return the SPAM parameters (or None)."""
    if noise_model is None:
        return None
    types = set(noise_model.noise_types)
    unsupported = sorted(types - FAST_NOISE_TYPES)
    if unsupported:
        raise QepValueError(
            f"emulator {method!r} cannot handle the noise channel(s) {unsupported} of "
            f"'noise_model' (only SPAM, applied by the measurement layer); use method='pulser'"
        )
    return spam_parameters(noise_model) if "SPAM" in types else None


def _initial(initial_state, n_atoms: int) -> np.ndarray:
    dim = 2**n_atoms
    if initial_state is None:
        psi = np.zeros(dim, dtype=complex)
        psi[0] = 1.0
        return psi
    psi = np.asarray(initial_state, dtype=complex)
    if psi.shape != (dim,):
        raise QepValueError(f"'initial_state' must have shape ({dim},), not {psi.shape}")
    norm = np.linalg.norm(psi)
    if not np.isclose(norm, 1.0, atol=1e-8):
        raise QepValueError(f"'initial_state' must be normalised, not of norm {norm:.6g}")
    return psi


def emulate(
    sequence,
    method: str = "krylov",
    *,
    tolerance: float = 1e-7,
    blockade_radius_um: float | None = None,
    correction: bool = True,
    noise_model=None,
    initial_state: np.ndarray | None = None,
    n_trajectories: int | None = None,
    seed: int | None = 0,
) -> EmulationResult:
    """Emulate a pulser ``sequence`` with the emulator ``method`` (see :data:`EMULATORS`).

    ``seed`` fixes the noise draws: pulser's shot-to-shot draws for "pulser" (``None`` leaves numpy's global
    generator as it is), the trajectories' generators (per sequence and trajectory) for "krylov"/"subspace"."""
    if method not in EMULATORS:
        raise QepValueError(f"'method' must be one of {sorted(EMULATORS)}, not {method!r}")
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise QepValueError(f"'tolerance' must be in (0, 1), not {tolerance!r}")
    start = time.perf_counter()
    n_atoms = len(sequence.register.qubit_ids)
    if method == "pulser":
        from qep_analog.equilibrium.emulators.reference import run_pulser

        psi0 = None if initial_state is None else _initial(initial_state, n_atoms)
        state, info = run_pulser(
            sequence, noise_model=noise_model, initial_state=psi0, n_trajectories=n_trajectories, seed=seed
        )
        if noise_model is not None and "SPAM" in noise_model.noise_types:
            info["spam"] = spam_parameters(noise_model)
        return EmulationResult(
            state=state,
            error_estimate=float("nan"),
            method=method,
            dimension=2**n_atoms,
            blockade_radius_um=float("nan"),
            wall_time_s=time.perf_counter() - start,
            info=info,
        )
    if noise_model is not None and set(noise_model.noise_types) - FAST_NOISE_TYPES:
        return _emulate_trajectories(sequence, method, noise_model, n_trajectories, seed, tolerance,
                                     initial_state, blockade_radius_um, correction, start)
    spam = check_fast_noise(noise_model, method)
    sampled = sample_sequence(sequence)
    psi0 = _initial(initial_state, n_atoms)
    if method == "krylov":
        from qep_analog.equilibrium.emulators.krylov import propagate as full_propagate

        state, estimate, info = full_propagate(sampled, psi0, tolerance=tolerance, scheme="suzuki4")
        dimension, radius = 2**n_atoms, float("nan")
    else:
        from qep_analog.equilibrium.emulators.subspace import propagate as sub_propagate

        radius = blockade_radius_um
        if radius is None:
            omega_max = sampled.max_omega()
            radius = default_radius_um(sampled.c6, omega_max) if omega_max > 0 else 0.0
        if not radius >= 0:
            raise QepValueError(f"'blockade_radius_um' must be ≥ 0, not {radius}")
        state, estimate, info = sub_propagate(
            sampled, psi0, radius_um=float(radius), correction=correction, tolerance=tolerance
        )
        dimension = info["dimension"]
        info["correction"] = correction
    info["with_modulation"] = False
    if spam is not None:
        info["spam"] = spam
    return EmulationResult(
        state=state,
        error_estimate=float(estimate),
        method=method,
        dimension=int(dimension),
        blockade_radius_um=float(radius),
        wall_time_s=time.perf_counter() - start,
        info=info,
    )


MAX_DENSE_ATOMS = 12


def _emulate_trajectories(sequence, method, noise_model, n_trajectories, seed, tolerance, initial_state,
                          blockade_radius_um, correction, start) -> EmulationResult:
    """Noise beyond SPAM on "krylov"/"subspace": quantum-jump trajectories, averaged to a density matrix."""
    from qep_analog.equilibrium.emulators.trajectories import run_trajectories

    channels = sorted(set(noise_model.noise_types) - FAST_NOISE_TYPES)
    if not n_trajectories:
        raise QepValueError(f"emulator {method!r} runs the noise channel(s) {channels} of 'noise_model' as "
                            f"quantum-jump trajectories: set 'n_trajectories' (or use method='pulser')")
    n_atoms = len(sequence.register.qubit_ids)
    if n_trajectories > 1 and n_atoms > MAX_DENSE_ATOMS:
        raise QepValueError(f"emulate() returns a dense density matrix, not affordable at {n_atoms} atoms "
                            f"(> {MAX_DENSE_ATOMS}): call trajectories.run_trajectories(...) for the trajectory states")
    psi0 = None if initial_state is None else _initial(initial_state, n_atoms)
    result = run_trajectories(sequence, noise_model, n_trajectories=int(n_trajectories),
                              seed=0 if seed is None else int(seed), tolerance=tolerance, initial_state=psi0,
                              method=method, blockade_radius_um=blockade_radius_um, correction=correction)
    info = dict(result.info)
    info["trajectories"] = result
    if "SPAM" in noise_model.noise_types:
        info["spam"] = spam_parameters(noise_model)
    state = result.density_matrix() if result.n_trajectories > 1 else result.states[0]
    return EmulationResult(
        state=state,
        error_estimate=float(result.error_estimate),
        method=method,
        dimension=int(info.get("dimension", 2**n_atoms)),
        blockade_radius_um=float(info.get("blockade_radius_um", float("nan"))),
        wall_time_s=time.perf_counter() - start,
        info=info,
    )


__all__ = [
    "EMULATORS",
    "EmulationResult",
    "SampledSequence",
    "SubspaceGroundState",
    "check_fast_noise",
    "emulate",
    "sample_sequence",
    "subspace_ground_state",
]
