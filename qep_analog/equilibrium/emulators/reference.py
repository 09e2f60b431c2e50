"""Reference emulation with pulser-simulation (QuTiP), through ``QutipBackendV2``.

Solver options are set explicitly (pulser 1.9 exposes no public field for them on
``QutipConfig``, so they are written into the backend's QuTiP option dict before ``run``):
QuTiP ``sesolve`` with its default method ("adams"), ``atol``/``rtol`` as given (QuTiP's defaults
are atol = 1e-8, rtol = 1e-6), ``max_step`` = pulser's own choice (the shortest constant stretch
of the samples) and ``nsteps`` large enough never to stop a run. The state comes back in
pulser's (r, g) order and is reversed into OUR basis (index = int(bitstring, 2), '1' = Rydberg).
Noise models are passed through unchanged (SPAM included); runs with collapse operators or
shot-to-shot noise return pulser's aggregated density matrix, reversed likewise.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from qep_analog.errors import QepValueError

DEFAULT_ATOL = 1e-8
DEFAULT_RTOL = 1e-6


@dataclass(frozen=True, kw_only=True)
class SolverOptions:
    """QuTiP solver options passed to pulser-simulation (explicit, never left implicit)."""

    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    nsteps: int = 1_000_000
    max_step_us: float | None = None  # None: pulser's choice

    def as_dict(self) -> dict:
        out = {"atol": self.atol, "rtol": self.rtol, "nsteps": self.nsteps}
        if self.max_step_us is not None:
            out["max_step"] = self.max_step_us
        return out


@contextlib.contextmanager
def seeded_global_numpy(seed: int | None):
    """Seed numpy's global generator (pulser draws its noise there) for a block, then restore it.
    ``None`` leaves the generator untouched."""
    if seed is None:
        yield
        return
    saved = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        yield
    finally:
        np.random.set_state(saved)


def has_shot_noise(noise_model) -> bool:
    from pulser_simulation.simulation import _has_stochastic_noise

    return bool(noise_model is not None and _has_stochastic_noise(noise_model))


def run_pulser(
    sequence,
    *,
    noise_model=None,
    initial_state: np.ndarray | None = None,
    options: SolverOptions = SolverOptions(),
    n_trajectories: int | None = None,
    with_modulation: bool = False,
    seed: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Emulate ``sequence`` with QutipBackendV2; return (final state in OUR basis, info).

    Pure evolutions return a state vector; with a noise model that needs a density matrix or
    several trajectories the returned state is the (averaged) density matrix. ``with_modulation``
    emulates the channels' modulated (band-limited) samples instead of the programmed ones. Shot-to-shot noise
    requires ``n_trajectories`` explicitly (never a silent single trajectory). Collapse operators
    go to ``mesolve`` (pulser's default would pick an unseeded ``mcsolve``); pulser draws shot-to-shot
    noise from numpy's global generator, which ``seed`` seeds for this run and then restores.
    """
    from pulser.backend.default_observables import StateResult
    from pulser_simulation import QutipBackendV2, QutipConfig, QutipState, Solver

    n_atoms = len(sequence.register.qubit_ids)
    observable = StateResult(evaluation_times=[1.0])
    kwargs: dict = {"observables": [observable], "solver": Solver.MESOLVER, "with_modulation": bool(with_modulation)}
    if noise_model is not None:
        kwargs["noise_model"] = noise_model
        if has_shot_noise(noise_model):
            if n_trajectories is None:
                raise QepValueError(
                    "this noise model has shot-to-shot noise: pass 'n_trajectories' explicitly "
                    "(pulser would otherwise run a single trajectory silently)"
                )
            kwargs["n_trajectories"] = int(n_trajectories)
    if initial_state is not None:
        psi = np.asarray(initial_state, dtype=complex)
        if psi.shape != (2**n_atoms,):
            raise QepValueError(f"'initial_state' must have shape ({2**n_atoms},), not {psi.shape}")
        import qutip

        qobj = qutip.Qobj(psi[::-1].reshape(-1, 1), dims=[[2] * n_atoms, [1] * n_atoms])
        kwargs["initial_state"] = QutipState(qobj, eigenstates=("r", "g"))
    config = QutipConfig(**kwargs)
    with seeded_global_numpy(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        backend = QutipBackendV2(sequence, config=config)
        # Explicit solver options: pulser 1.9 has no public field for them.
        backend._qutip_options.update(options.as_dict())
        results = backend.run()
    res_list = results if isinstance(results, list | tuple) else [results]
    states = []
    for res in res_list:
        state = res.get_result(observable, 1.0)
        states.append(np.asarray(state.to_qobj().full()))
    info = {
        "solver_options": dict(backend._qutip_options),
        "n_results": len(states),
        "noise_types": tuple(noise_model.noise_types) if noise_model is not None else (),
        "n_trajectories": kwargs.get("n_trajectories"),
    }
    if len(states) == 1 and states[0].shape[1] == 1:
        return states[0][::-1, 0].copy(), info
    rhos = [s @ s.conj().T if s.shape[1] == 1 else s for s in states]
    rho = np.mean(rhos, axis=0)
    return rho[::-1, ::-1].copy(), info
