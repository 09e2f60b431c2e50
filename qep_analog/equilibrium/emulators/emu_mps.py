"""emu-mps (Pasqal's TDVP matrix-product-state emulator) as an emulator of pulser sequences, returning an MPS.

    H(t) = Σ_i (Ω_i/2)(cos φ_i X_i + sin φ_i Y_i) − Σ_i δ_i n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j    (rad/µs, ns)

is integrated by emu-mps (``emu_mps.MPSBackend``, TDVP, time step ``dt_ns``, truncation ``precision``,
bond ≤ ``max_bond``) from |g…g⟩; the final MPS is returned as a
:class:`~qep_analog.equilibrium.mps_state.MPSState` in our basis (|0⟩ = |g⟩, |1⟩ = |r⟩, site k = atom k of
the register: emu-mps's own qubit reordering is switched off so that sites stay in register order).
``info`` records the bond dimensions, the emu-mps ``precision`` (its truncation criterion) and the time.

Noise: a pulser NoiseModel is passed to emu-mps. SPAM is left to our measurement layer (``info["spam"]``);
any other channel makes emu-mps run one quantum-jump trajectory, so one call is one noisy preparation
(seeded by ``seed``). Needs emu-mps (``pip install emu-mps``, CPU torch first).

:func:`prepare_emu_mps` is the ``emulator="emu-mps"`` path of the adiabatic backend: the same pulser
sequence as every other emulator, the final MPS kept as an MPS (no 2^N array above 16 atoms); its energy
⟨H(θ, x) + nudge⟩ is contracted with the ``mps`` backend's MPO of the model.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from qep_analog.equilibrium.emulators import spam_parameters
from qep_analog.equilibrium.mps_state import MPSState, right_canonical
from qep_analog.errors import QepValueError

DT_CHOICES_NS = (10, 8, 5, 4, 2, 1)  # emu-mps's time step must divide the sequence duration


def run_emu_mps(sequence, *, max_bond: int = 128, precision: float = 1e-5, dt_ns: int = 10, noise_model=None,
                seed: int = 0, torch_threads: int = 1) -> MPSState:
    """Final state of ``sequence`` by emu-mps (see the module docstring)."""
    try:
        import torch
        from emu_mps import MPSBackend, MPSConfig
        from pulser.backend import StateResult
    except ImportError as exc:
        raise QepValueError(f"emulator 'emu-mps' needs the emu-mps package ({exc})") from None
    if not (isinstance(max_bond, int) and max_bond >= 1):
        raise QepValueError(f"'max_bond' must be a positive integer, not {max_bond!r}")
    if not (isinstance(dt_ns, int) and dt_ns >= 1):
        raise QepValueError(f"'dt_ns' must be a positive integer (ns), not {dt_ns!r}")
    if not (isinstance(torch_threads, int) and torch_threads >= 1):
        raise QepValueError(f"'torch_threads' must be a positive integer, not {torch_threads!r}")
    if not 0 < precision < 1:
        raise QepValueError(f"'precision' must be in (0, 1), not {precision!r}")
    duration = sequence.get_duration()
    if duration % dt_ns:
        raise QepValueError(f"the sequence duration {duration} ns is not a multiple of 'dt_ns' = {dt_ns}")
    options = dict(dt=dt_ns, precision=precision, max_bond_dim=max_bond, gpu=False, optimize_qubit_ordering=False,
                   observables=[StateResult(evaluation_times=[1.0])], log_level=logging.WARN)
    if noise_model is not None:
        options["noise_model"] = noise_model
    # emu-mps draws its quantum jumps from torch's and Python's generators: seed both for reproducibility
    torch.manual_seed(seed)
    random.seed(seed)
    # one torch thread: emu-mps's small tensors gain nothing from threads, and on a shared 2-core machine the
    # default (2 threads) ran a 6-atom 1 µs sweep in 50 s instead of 6 s (measured, see docs/notes/issue-13*.md)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(torch_threads))
    try:
        start = time.perf_counter()
        result = MPSBackend(sequence, config=MPSConfig(**options)).run()
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    final = result.final_state
    tensors = [np.asarray(f.detach().cpu().numpy(), dtype=complex) for f in final.factors]
    n = len(tensors)
    info = dict(emulator="emu-mps", bond_dims=[int(t.shape[2]) for t in tensors[:-1]],
                max_bond_reached=max(int(t.shape[2]) for t in tensors), max_bond=max_bond, precision=precision,
                dt_ns=dt_ns, time_s=elapsed, torch_threads=int(torch_threads), flags=[])
    if noise_model is not None:
        info["noise"] = sorted(noise_model.noise_types)
        if "SPAM" in noise_model.noise_types:
            info["spam"] = spam_parameters(noise_model)
    if info["max_bond_reached"] >= max_bond:
        info["flags"].append("truncation")  # the bond hit its cap: the truncation is not bounded by precision
    return MPSState(tensors=right_canonical(tensors), order=tuple(range(n)), kind="pure-prepared", info=info)


def step_ns(duration_ns: int, largest_ns: int = 10) -> int:
    """The largest time step in :data:`DT_CHOICES_NS` (≤ ``largest_ns``) that divides ``duration_ns``."""
    return next(d for d in DT_CHOICES_NS if d <= largest_ns and duration_ns % d == 0)


def model_energy(hamiltonian, theta, x, nudge, state: MPSState) -> float:
    """⟨ψ|H(θ, x) + nudge|ψ⟩ (rad/µs) of an MPS whose site k is qubit k, with the ``mps`` backend's MPO."""
    from qep_analog.equilibrium.mps import MPSBackend, expectation

    if tuple(state.order) != tuple(range(state.n_qubits)):
        raise QepValueError("model_energy needs an MPS in register order (site k = qubit k)")
    mpo, constant, _, _ = MPSBackend(order="given").mpo(hamiltonian, theta, x, nudge)
    psi = state.to_quimb()
    return float(np.real(expectation(psi.H, mpo, psi))) + constant


def prepare_emu_mps(backend, hamiltonian, theta: np.ndarray, x: np.ndarray, nudge, *, max_bond: int = 128,
                    dense_limit: int = 16) -> MPSState:
    """The adiabatic backend's ramp to H(θ, x) + nudge (``backend.sequence``), emulated by emu-mps.

    emu-mps's ``precision`` is the backend's ``emulator_tolerance`` (its per-step truncation criterion:
    discarded weight per bond); the time step is 10 ns, or the largest of :data:`DT_CHOICES_NS` that divides
    the duration. A noise model runs one quantum-jump trajectory per preparation, seeded by (``seed``,
    sequence). ``info`` adds the bond dimensions and precision to the adiabatic backend's keys; up to
    ``dense_limit`` atoms (and ``compare_exact``) also the fidelity to the exact ground state and the gap.
    """
    from qep_analog.equilibrium.adiabatic import _derived_seed

    if backend.with_modulation:
        raise QepValueError("emulator 'emu-mps' does not emulate channel modulation ('with_modulation' = True)")
    if backend.dephase != "none" or backend.quality_check != "none":
        raise QepValueError(f"emulator 'emu-mps' supports dephase = 'none' and quality_check = 'none', not "
                            f"{backend.dephase!r} / {backend.quality_check!r}")
    seq, plan = backend.sequence(theta, x, nudge)
    seed = backend.seed if backend.noise_model is None else _derived_seed(backend.seed, seq.to_abstract_repr())
    state = run_emu_mps(seq, max_bond=max_bond, precision=backend.emulator_tolerance,
                        dt_ns=step_ns(int(seq.get_duration())), noise_model=backend.noise_model, seed=seed)
    energy = model_energy(hamiltonian, theta, x, nudge, state)
    info = state.info
    info.update(sequence=seq, detuning_plan=plan, duration_ns=backend.ramp.duration_ns,
                nudge_switch=backend.ramp.nudge_switch, noise=backend.noise_model is not None,
                schedule=backend.schedule, nudge_mode=backend.ramp.nudge, nudge_ramp_ns=backend.ramp.nudge_ramp_ns,
                hold_ns=backend.ramp.hold_ns, dephase=backend.dephase)
    # the bonds at the cap: their smallest kept Schmidt weight (0 when no bond hit max_bond; precision bounds the rest)
    saturated = [s for s in state.schmidt_spectra() if s.size >= max_bond]
    info["truncation"] = max((float(s[-1] ** 2) for s in saturated), default=0.0)
    gap = float("nan")
    n = hamiltonian.n_qubits
    if backend.compare_exact and n <= dense_limit:
        extra = None if nudge is None else nudge.matrix(n)
        h = hamiltonian.matrix(theta, x, extra=extra)
        if n <= 10:
            w, v = scipy.linalg.eigh(h.toarray())
        else:
            w, v = scipy.sparse.linalg.eigsh(h, k=2, which="SA", tol=1e-10)
            idx = np.argsort(w)
            w, v = w[idx], v[:, idx]
        fid = float(abs(np.vdot(v[:, 0], state.to_dense())) ** 2)
        gap = float(w[1] - w[0])
        info.update(fidelity=fid, infidelity=1 - fid, energy_above_ground=energy - float(w[0]),
                    ground_energy=float(w[0]), degenerate=bool(gap < 1e-9))
    return dataclasses.replace(state, energy=energy, gap=gap, info=info)
