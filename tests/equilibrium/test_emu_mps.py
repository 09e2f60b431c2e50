"""emu-mps as an emulator of pulser sequences, and as the adiabatic backend's ``emulator="emu-mps"``.

The slow tests run emu-mps's TDVP (5–20 s per sequence here) against the full-space ``krylov`` emulator on
the same sequences: infidelity ≤ 1e-3, and every observable P (‖P‖ ≤ 1) within the trace-distance bound
|Δ⟨P⟩| ≤ 2 √(1 − F) implied by the measured fidelity.
"""

import numpy as np
import pytest

pytest.importorskip("emu_mps")

import pulser  # noqa: E402
from pulser.devices import MockDevice  # noqa: E402

from qep_analog.device.rydberg import RydbergModel  # noqa: E402
from qep_analog.equilibrium import get_backend  # noqa: E402
from qep_analog.equilibrium.emulators import emulate  # noqa: E402
from qep_analog.equilibrium.emulators.emu_mps import run_emu_mps, step_ns  # noqa: E402
from qep_analog.equilibrium.mps_state import MPSState  # noqa: E402
from qep_analog.errors import QepValueError  # noqa: E402
from qep_analog.models.pauli import PauliProduct, PauliSum  # noqa: E402


def _model(positions, seed=0):
    rng = np.random.default_rng(seed)
    n = len(positions)
    return RydbergModel(positions_um=positions, device="MockDevice", omega=2 * np.pi,
                        detunings=2 * np.pi * (1.2 + 0.3 * rng.random(n)), input_atoms=(0,),
                        output_atoms=(n - 2, n - 1), train_positions=False)


def test_step_divides_duration():
    assert step_ns(4000) == 10 and step_ns(1004) == 4 and step_ns(1001) == 1 and step_ns(1000, largest_ns=5) == 5


def test_emu_mps_refuses_what_it_cannot_emulate():
    model = _model(np.c_[np.arange(3) * 6.0, np.zeros(3)])
    h = model.hamiltonian()
    for options in (dict(dephase="hold-pair", nudge="after-preparation"), dict(with_modulation=True),
                    dict(quality_check="second-ramp")):
        backend = get_backend("adiabatic", model=model, emulator="emu-mps", schedule="cosine", duration_ns=2000,
                              **options)
        with pytest.raises(QepValueError):
            backend.prepare(h, model.theta(), [0.1])


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


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("geometry", ["chain8", "ladder5x2"])
def test_adiabatic_emu_mps_matches_krylov(geometry):
    rng = np.random.default_rng(3)
    if geometry == "chain8":
        positions = np.c_[np.arange(8) * 6.0, np.zeros(8)]
    else:  # 10 atoms, listed along a snake so that MPS neighbours are spatial neighbours
        positions = np.array([[6.0 * i, 0.0] for i in range(5)] + [[6.0 * i, 6.5] for i in range(4, -1, -1)])
    positions = positions + rng.uniform(-0.3, 0.3, positions.shape)
    model = _model(positions, seed=1)
    h = model.hamiltonian()
    n = h.n_qubits
    theta, x = model.theta(), [0.4]
    nudge = PauliSum.from_spec([[0.3, f"n{n - 1}"], [-0.2, f"n{n - 2}"]])
    options = dict(model=model, duration_ns=1000, schedule="cosine")
    krylov = get_backend("adiabatic", emulator="krylov", **options)
    emu = get_backend("adiabatic", emulator="emu-mps", emulator_tolerance=1e-8, **options)
    products = ([PauliProduct.parse(f"n{i}") for i in range(n)] + [PauliProduct.parse(f"X{i}") for i in range(n)]
                + [PauliProduct.parse(f"n{i} n{i + 1}") for i in range(n - 1)] + [PauliProduct.parse("Z0 Y3 X5")])
    for phase in (None, nudge):
        ref = krylov.prepare(h, theta, x, phase)
        state = emu.prepare(h, theta, x, phase)
        assert isinstance(state, MPSState) and state.info["emulator"] == "emu-mps"
        assert state.info["bond_dims"] and state.info["truncation"] == 0.0 and not state.flagged
        psi = state.to_dense()
        infidelity = 1 - abs(np.vdot(ref.state, psi)) ** 2
        assert infidelity <= 1e-3
        # the energy from the mps backend's MPO is the dense ⟨ψ|H + nudge|ψ⟩ of the same MPS
        extra = None if phase is None else phase.matrix(n)
        dense_energy = np.vdot(psi, h.matrix(theta, x, extra=extra) @ psi).real
        assert state.energy == pytest.approx(dense_energy, rel=1e-9)
        assert state.info["fidelity"] == pytest.approx(ref.info["fidelity"], abs=4 * np.sqrt(infidelity))
        bound = 2 * np.sqrt(infidelity) + 1e-9
        assert np.max(np.abs(state.expect(products) - ref.expect(products))) <= bound
