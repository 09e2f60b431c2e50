"""Gap-aware schedules, the after-preparation nudge and the preparation-quality estimate (issue 14).

Target: the 4-atom MockDevice model of test_adiabatic (rhombus of side 9 µm plus one atom, Ω = 10 rad/µs,
δ = (3, 4, 2, 3) rad/µs, input on q0, output n_3), ramped from δ₀ = −20 rad/µs.
"""

import numpy as np
import pytest
import scipy.linalg

from qep_analog.device.rydberg import RydbergModel, pair_couplings
from qep_analog.device.sequences import RampSpec, model_sequence
from qep_analog.equilibrium import get_backend
from qep_analog.equilibrium.schedules import (
    PathSpectrum,
    cosine_samples,
    local_adiabatic_samples,
    path_spectrum,
)
from qep_analog.errors import QepValueError
from qep_analog.models.pauli import PauliSum

POSITIONS = [[0.0, 0.0], [9.0, 0.0], [4.5, 7.8], [13.5, 7.8]]
X = [1.0]


def _model(**kw):
    base = dict(positions_um=POSITIONS, device="MockDevice", omega=10.0, detunings=[3.0, 4.0, 2.0, 3.0],
                input_atoms=(0,), output_atoms=(3,))
    base.update(kw)
    return RydbergModel(**base)


def _spectrum(model, points=21):
    c = model.controls(model.theta(), X)
    return path_spectrum(pair_couplings(c["positions_um"], model.c6), c["omega"], c["phase"], c["detunings"], -20.0,
                         points=points), c


def _symmetric_gradient(backend, model, beta):
    """(⟨∂H/∂θ⟩_{+β} − ⟨∂H/∂θ⟩_{−β})/(2β) for the cost nudge β n_3 (target 0), from exact expectations."""
    h = model.hamiltonian()
    nudge = [PauliSum.from_spec([[s * beta, "n3"]], 4) for s in (1, -1)]
    means = [h.derivative_expectations(_vector(backend.prepare(h, model.theta(), X, n).state)) for n in nudge]
    return (means[0] - means[1]) / (2 * beta)


def _vector(state):
    assert state.ndim == 1
    return state


def test_path_spectrum_end_points_are_exact():
    """At s = 0 (Ω = 0, δ = δ₀) the gap is −δ₀ (one Rydberg excitation); at s = 1 it is that of the model."""
    model = _model()
    spec, _ = _spectrum(model)
    assert np.isclose(spec.gap[0], 20.0) and np.isclose(spec.coupled_gap[0], 20.0)
    w = scipy.linalg.eigvalsh(model.hamiltonian().dense(model.theta(), X))
    assert np.isclose(spec.gap[-1], w[1] - w[0], rtol=1e-10)
    assert np.all(spec.coupled_gap >= spec.gap - 1e-12) and np.all(spec.metric > 0)


def test_local_adiabatic_schedule_is_monotone_from_zero_to_one_and_smooth_at_the_ends():
    spec, _ = _spectrum(_model())
    s = local_adiabatic_samples(spec, 2000, boundary=0.3)
    assert s[0] == 0.0 and s[-1] == 1.0 and np.all(np.diff(s) >= 0)
    speed = np.diff(s)
    assert speed[0] < 0.05 * speed.max() and speed[-1] < 0.05 * speed.max()  # ṡ → 0: no sudden switch


def test_boundary_one_is_the_cosine_ramp():
    spec, _ = _spectrum(_model())
    assert np.allclose(local_adiabatic_samples(spec, 1001, boundary=1.0), cosine_samples(1001), atol=1e-6)


def test_local_adiabatic_schedule_slows_where_the_metric_is_large():
    """dt/ds ∝ m(s): with m ten times larger on s ∈ [0.4, 0.6], that fifth of the path takes ≈ 10/14 of the
    local-adiabatic part of the time (boundary → 0)."""
    grid = np.linspace(0, 1, 101)
    metric = np.where((grid >= 0.4) & (grid <= 0.6), 10.0, 1.0)
    spec = PathSpectrum(s=grid, gap=np.ones_like(grid), coupled_gap=np.ones_like(grid), metric=metric)
    s = local_adiabatic_samples(spec, 100_000, boundary=1e-6)
    fraction = np.mean((s >= 0.4) & (s <= 0.6))
    assert fraction == pytest.approx(2.0 / 2.8, abs=0.03)


def test_eigenstate_hellmann_feynman_behind_the_after_preparation_estimate():
    """The derivation of docs/adiabatic_qep.md: for every eigenstate n of H(θ) followed in β,
    d/dβ ⟨n_β|∂H/∂θ_k|n_β⟩ = ∂/∂θ_k ⟨n|C|n⟩ (checked by central differences, C = n_3)."""
    model = _model()
    h = model.hamiltonian()
    theta = model.theta()
    c = PauliSum.from_spec([[1.0, "n3"]], 4).matrix(4).toarray()
    eps = 1e-5

    def eig(theta_, beta):
        return scipy.linalg.eigh(h.matrix(theta_, X).toarray() + beta * c)

    w0, v0 = eig(theta, 0.0)
    for n in range(4):
        def follow(v, n=n):
            return v[:, int(np.argmax(np.abs(v.conj().T @ v0[:, n])))]

        d_beta = (h.derivative_expectations(follow(eig(theta, eps)[1]))
                  - h.derivative_expectations(follow(eig(theta, -eps)[1]))) / (2 * eps)
        d_theta = np.empty(len(theta))
        for k in range(len(theta)):
            step = np.zeros_like(theta)
            step[k] = eps
            up, down = follow(eig(theta + step, 0)[1]), follow(eig(theta - step, 0)[1])
            d_theta[k] = (np.real(up.conj() @ c @ up) - np.real(down.conj() @ c @ down)) / (2 * eps)
        assert np.allclose(d_beta, d_theta, atol=1e-5 * max(1.0, np.abs(d_theta).max()))


def test_after_preparation_nudge_matches_the_exact_backend_when_slow():
    """Prepared free state (3 µs cosine, 1 − F ≲ 1e-4) plus a 3 µs nudge ramp: the symmetric gradient agrees
    with the exact backend's at the same β to ≤ 0.1 relative error."""
    model = _model()
    beta = 1.0
    exact = _symmetric_gradient(get_backend("exact"), model, beta)
    backend = get_backend("adiabatic", model=model, duration_ns=6000, nudge="after-preparation", nudge_ramp_ns=3000,
                          emulator="krylov")
    g = _symmetric_gradient(backend, model, beta)
    assert np.linalg.norm(g - exact) <= 0.1 * np.linalg.norm(exact)


def test_local_adiabatic_backend_matches_the_exact_backend():
    model = _model()
    beta = 1.0
    exact = _symmetric_gradient(get_backend("exact"), model, beta)
    backend = get_backend("adiabatic", model=model, duration_ns=3000, schedule="local-adiabatic", emulator="krylov")
    g = _symmetric_gradient(backend, model, beta)
    assert np.linalg.norm(g - exact) <= 0.1 * np.linalg.norm(exact)


def test_after_preparation_sequences_share_the_preparation():
    """Free and nudged sequences have the same total duration and identical controls until the nudge ramp."""
    model = _model()
    ramp = RampSpec(duration_ns=1200, nudge="after-preparation", nudge_ramp_ns=400, hold_ns=200)
    c = model.controls(model.theta(), X)
    free, _ = model_sequence(model, c, ramp)
    nudged, _ = model_sequence(model, c, ramp, nudge_detunings=np.array([0, 0, 0, -1.0]))
    assert free.get_duration() == nudged.get_duration() == 1200
    r = ramp.nudge_samples()
    assert r.shape == (1200,) and np.all(r[:600] == 0) and np.all(r[1000:] == 1) and np.all(np.diff(r) >= 0)
    from pulser.sampler import sample

    amp = [sample(seq).channel_samples["rydberg_global"].amp for seq in (free, nudged)]
    det = [sample(seq).to_nested_dict(all_local=True)["Local"]["ground-rydberg"] for seq in (free, nudged)]
    assert np.allclose(amp[0], amp[1])  # Ω(t) identical: the nudge is a detuning
    for q in free.register.qubit_ids:
        diff = det[1][q]["det"] - det[0][q]["det"]
        assert np.allclose(diff[:600], 0, atol=1e-9)  # identical preparations
        assert np.isclose(diff[-1], -1.0 if q == "q3" else 0.0, atol=1e-6)  # the change −1 on q3 at the end


def test_after_preparation_needs_a_second_detuning_map():
    model = _model(device="qep_lab_device", omega=8.0)
    ramp = RampSpec(duration_ns=2000, nudge="after-preparation", nudge_ramp_ns=500)
    c = model.controls(model.theta(), X)
    with pytest.raises(QepValueError, match="second detuning map"):
        model_sequence(model, c, ramp, nudge_detunings=np.array([0, 0, 0, -1.0]))


def test_ramp_spec_refuses_inconsistent_after_preparation_settings():
    with pytest.raises(QepValueError, match="leaves"):
        RampSpec(duration_ns=1000, nudge="after-preparation", nudge_ramp_ns=900, hold_ns=100)
    with pytest.raises(QepValueError, match="nudge_delay_ns"):
        RampSpec(duration_ns=3000, nudge="after-preparation", hold_ns=100, nudge_delay_ns=200)
    with pytest.raises(QepValueError, match="'nudge'"):
        RampSpec(nudge="cached")
    with pytest.raises(QepValueError, match="schedule"):
        get_backend("adiabatic", model=_model(), schedule="roland")
    with pytest.raises(QepValueError, match="dephase"):
        get_backend("adiabatic", model=_model(), dephase="hold-pair")


def test_hold_pair_returns_the_average_of_two_equal_length_sequences():
    model = _model()
    h = model.hamiltonian()
    backend = get_backend("adiabatic", model=model, duration_ns=2000, nudge="after-preparation", nudge_ramp_ns=300,
                          hold_ns=600, dephase="hold-pair", emulator="krylov")
    state = backend.prepare(h, model.theta(), X, PauliSum.from_spec([[0.5, "n3"]], 4))
    rho = state.state
    assert rho.ndim == 2 and np.isclose(np.trace(rho).real, 1.0) and np.allclose(rho, rho.conj().T)
    delay = state.info["dephasing_delay_ns"]
    assert 0 < delay <= 600 and delay % 4 == 0
    assert state.info["second_sequence"].get_duration() == state.info["sequence"].get_duration() == 2000


def test_second_ramp_quality_estimate_separates_fast_from_slow_ramps():
    """The Z-distribution moves when a non-adiabatic ramp is shortened, hardly when an adiabatic one is
    (cosine ramps, whose infidelity falls ~T⁻⁴ on this target)."""
    model = _model()
    h = model.hamiltonian()
    quality = {}
    for duration in (400, 3000):
        backend = get_backend("adiabatic", model=model, duration_ns=duration, schedule="cosine",
                              quality_check="second-ramp",
                              quality_threshold=0.05, emulator="krylov")
        state = backend.prepare(h, model.theta(), X)
        quality[duration] = state.info["preparation"]
        # a failed preparation is its own per-sample flag, not an uncertified state (which counts as a crossing)
        assert not state.flagged
        assert bool(state.info.get("preparation_flag")) == (quality[duration]["second_ramp_distance"] > 0.05)
    assert quality[3000]["second_ramp_distance"] < 0.1 * quality[400]["second_ramp_distance"]
    assert quality[3000]["variance_infidelity"] < quality[400]["variance_infidelity"]


def test_arc_cosine_is_the_cosine_ramp_for_a_flat_metric_and_slows_where_it_peaks():
    grid = np.linspace(0, 1, 51)
    flat = PathSpectrum(s=grid, gap=np.ones_like(grid), coupled_gap=np.ones_like(grid), metric=np.ones_like(grid))
    assert np.allclose(local_adiabatic_samples(flat, 1001, arc=True), cosine_samples(1001), atol=1e-6)
    peaked = PathSpectrum(s=grid, gap=np.ones_like(grid), coupled_gap=np.ones_like(grid),
                          metric=1 + 10 * np.exp(-(((grid - 0.5) / 0.05) ** 2)))
    s = local_adiabatic_samples(peaked, 10_000, arc=True)
    assert s[0] == 0 and s[-1] == 1 and np.all(np.diff(s) >= 0)
    near = np.mean(np.abs(s - 0.5) < 0.05)
    assert near > 2 * np.mean(np.abs(cosine_samples(10_000) - 0.5) < 0.05)  # more time where m peaks
