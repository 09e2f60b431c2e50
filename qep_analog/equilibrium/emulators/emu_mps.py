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
"""

from __future__ import annotations

import logging
import random
import time

import numpy as np

from qep_analog.equilibrium.emulators import spam_parameters
from qep_analog.equilibrium.mps_state import MPSState, right_canonical
from qep_analog.errors import QepValueError


def run_emu_mps(sequence, *, max_bond: int = 128, precision: float = 1e-5, dt_ns: int = 10, noise_model=None,
                seed: int = 0) -> MPSState:
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
    start = time.perf_counter()
    result = MPSBackend(sequence, config=MPSConfig(**options)).run()
    elapsed = time.perf_counter() - start
    final = result.final_state
    tensors = [np.asarray(f.detach().cpu().numpy(), dtype=complex) for f in final.factors]
    n = len(tensors)
    info = dict(emulator="emu-mps", bond_dims=[int(t.shape[2]) for t in tensors[:-1]],
                max_bond_reached=max(int(t.shape[2]) for t in tensors), max_bond=max_bond, precision=precision,
                dt_ns=dt_ns, time_s=elapsed, flags=[])
    if noise_model is not None:
        info["noise"] = sorted(noise_model.noise_types)
        if "SPAM" in noise_model.noise_types:
            info["spam"] = spam_parameters(noise_model)
    if info["max_bond_reached"] >= max_bond:
        info["flags"].append("truncation")  # the bond hit its cap: the truncation is not bounded by precision
    return MPSState(tensors=right_canonical(tensors), order=tuple(range(n)), kind="pure-prepared", info=info)
