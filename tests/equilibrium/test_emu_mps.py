"""emu-mps as an emulator of pulser sequences (slow: emu-mps's TDVP takes about a minute here)."""

import numpy as np
import pytest

pytest.importorskip("emu_mps")

import pulser  # noqa: E402
from pulser.devices import MockDevice  # noqa: E402

from qep_analog.equilibrium.emulators import emulate  # noqa: E402
from qep_analog.equilibrium.emulators.emu_mps import run_emu_mps  # noqa: E402
from qep_analog.models.pauli import PauliProduct  # noqa: E402


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_emu_mps_sweep_matches_krylov():
    n = 6
    reg = pulser.Register.from_coordinates(np.c_[np.arange(n) * 6.5, np.zeros(n)], prefix="q")
    seq = pulser.Sequence(reg, MockDevice)
    seq.declare_channel("g", "rydberg_global")
    seq.add(pulser.Pulse(pulser.waveforms.InterpolatedWaveform(1000, [0, 8, 0]),
                         pulser.waveforms.InterpolatedWaveform(1000, [-10, 10, 8]), 0.0), "g")
    reference = emulate(seq, "krylov").state
    state = run_emu_mps(seq, precision=1e-8)
    assert state.n_qubits == n and state.info["emulator"] == "emu-mps" and not state.flagged
    assert 1 - abs(np.vdot(reference, state.to_dense())) ** 2 <= 1e-3
    products = [PauliProduct.parse(f"n{i}") for i in range(n)] + [PauliProduct.parse("n0 n1")]
    exact = [np.vdot(reference, p.matrix(n) @ reference).real for p in products]
    np.testing.assert_allclose(state.expect(products), exact, atol=1e-3)
