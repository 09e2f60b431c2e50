"""The domain-wall-tolerant label rule of the Rydberg chain (``[chain] correlation_window = L``): the block
structure factor m_k^(L) of qep_analog.tasks.rydberg_chain, against its definition, perfect and walled crystals,
the full-chain rule it must leave untouched, the DMRG route, the key's validation and the label cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qep_analog.cli import main
from qep_analog.device.devices import load_device
from qep_analog.equilibrium.mps import MPSBackend
from qep_analog.errors import QepValueError
from qep_analog.tasks.rydberg_chain import (
    ChainSpec,
    block_weights,
    chain_labels,
    chain_order,
    order_parameters,
    structure_factors,
)
from qep_analog.tasks.rydberg_phases_run import cached_chain_order

MOCK = load_device("MockDevice")
C6 = float(MOCK.interaction_coeff)
MPS = MPSBackend(max_bond=64, cutoff=1e-10, energy_tol=1e-8, variance_tol=1e-4)
PROTOCOL = Path(__file__).resolve().parents[1] / "protocols" / "rydberg_phase_sensor.toml"
K = ((np.pi, 4.0), (2 * np.pi / 3, 9.0))  # (k, c_k) of Z2 and Z3


def _pure(bits) -> tuple[np.ndarray, np.ndarray]:
    """⟨n_j⟩, ⟨n_j n_l⟩ of one bitstring (a product state)."""
    b = np.asarray(bits, dtype=float)
    return b, np.outer(b, b)


def _crystal(n: int, period: int, start: int = 0) -> np.ndarray:
    return ((np.arange(n) - start) % period == 0).astype(float)


def _bits_table(n: int) -> np.ndarray:
    return ((np.arange(2**n)[:, None] >> (n - 1 - np.arange(n))) & 1).astype(float)


def _block_definition(p: np.ndarray, n: int, length: int) -> tuple[float, float]:
    """m_k^(L) = (1/(N − L + 1)) Σ_B c_k Σ_b p(b) |(1/L) Σ_{j∈B} e^{ikj} (b_j − n̄)|², written out (docstring)."""
    bits = _bits_table(n)
    mean = (p @ bits).mean()
    out = []
    for k, norm in K:
        total = 0.0
        for start in range(n - length + 1):
            j = np.arange(start, start + length)
            amp = ((bits[:, j] - mean) @ np.exp(1j * k * j)) / length
            total += norm * float(p @ np.abs(amp) ** 2)
        out.append(total / (n - length + 1))
    return tuple(out)


def test_block_structure_factor_is_its_definition_on_both_routes():
    """Exact route (probability vector) and correlation route equal the Born-averaged block sum, for any state;
    and it is never negative."""
    n = 8
    rng = np.random.default_rng(5)
    bits = _bits_table(n)
    for _ in range(3):
        p = rng.random(2**n) ** 4
        p /= p.sum()
        density, pair = p @ bits, bits.T @ (p[:, None] * bits)
        for length in (3, 4, 6, 7):
            reference = _block_definition(p, n, length)
            assert order_parameters(p, n, length) == pytest.approx(reference, rel=1e-12, abs=1e-14)
            assert structure_factors(density, pair, length) == pytest.approx(reference, rel=1e-12, abs=1e-14)
            assert min(reference) >= 0.0


def test_window_of_the_whole_chain_is_the_old_rule_bit_for_bit():
    n = 9
    rng = np.random.default_rng(7)
    bits = _bits_table(n)
    p = rng.random(2**n) ** 3
    p /= p.sum()
    density, pair = p @ bits, bits.T @ (p[:, None] * bits)
    old = structure_factors(density, pair)
    for length in (n, n + 1, 100):
        assert structure_factors(density, pair, length) == old
        assert order_parameters(p, n, length) == order_parameters(p, n)
    np.testing.assert_array_equal(block_weights(n, n), np.ones((n, n)))  # the weights themselves reduce to 1
    # the weighted route at L = N (bypassing the shortcut) gives the same number to rounding
    mean = density.mean()
    fluct = (pair - mean * (density[:, None] + density[None, :]) + mean**2) * block_weights(n, n)
    sep = np.subtract.outer(np.arange(n), np.arange(n))
    assert [norm * np.sum(np.cos(k * sep) * fluct) / n**2 for k, norm in K] == pytest.approx(old, rel=1e-13)


@pytest.mark.parametrize("n", [24, 25, 26, 51])
def test_perfect_crystals_give_one_and_uniform_states_zero_for_any_window(n: int):
    """Blocks of a multiple of 6 sites: exactly 1 for the crystal's own k, exactly 0 for the other (the uniform
    part and the other period drop out of each block); even L for Z2, L a multiple of 3 for Z3: exactly 1."""
    z2, z3 = _crystal(n, 2), _crystal(n, 3)
    for length in range(3, n + 6):
        m2 = structure_factors(*_pure(z2), length)
        m3 = structure_factors(*_pure(z3), length)
        if length >= n:
            continue  # the full chain: the old rule, with its O(1/N) end effects
        if length % 2 == 0:
            assert m2[0] == pytest.approx(1.0, abs=1e-12)
        if length % 3 == 0:
            assert m3[1] == pytest.approx(1.0, abs=1e-12)
        if length % 6 == 0:
            assert m2[1] == pytest.approx(0.0, abs=1e-12) and m3[0] == pytest.approx(0.0, abs=1e-12)
        for uniform in (np.zeros(n), np.ones(n)):
            assert structure_factors(*_pure(uniform), length) == pytest.approx((0.0, 0.0), abs=1e-12)


def test_one_domain_wall_costs_little_with_a_window_and_the_label_without():
    """51 atoms (≡ 0 mod 3): r g g r g g … crystal with a wall that shifts it by one site (r g r, as the DMRG state at
    R_b/a ≈ 2.35 does), so that both ends are r. Bound with blocks of L = 12: a block holding the wall loses at most
    everything, L − 1 of the N − L + 1 blocks hold it: m ≥ 1 − (L − 1)/(N − L + 1). Without a window the wall in
    the middle leaves |1/2 + (1/2) e^{2πi/3}|² = 1/4 < 0.5."""
    n, length = 51, 12
    bound = 1 - (length - 1) / (n - length + 1)
    states = []
    for wall in range(3, n - 3, 3):  # left crystal on 0 mod 3 up to the wall, then shifted by −1 (r g r at the wall)
        bits = np.zeros(n)
        bits[0:wall + 1:3] = 1
        bits[wall + 2::3] = 1
        assert bits[0] == bits[-1] == 1 and not np.any(bits[:-1] * bits[1:])  # blockade: no r r neighbours
        states.append(bits)
        m_window = structure_factors(*_pure(bits), length)[1]
        assert m_window >= bound
        if abs(wall - n // 2) <= 3:
            assert structure_factors(*_pure(bits))[1] < 0.5
    # the wall delocalised evenly over the chain, as in the DMRG state: correlations are the mixture's
    density = np.mean(states, axis=0)
    pair = np.mean([np.outer(b, b) for b in states], axis=0)
    assert structure_factors(density, pair, length)[1] >= bound
    assert structure_factors(density, pair)[1] < 0.5
    spec = ChainSpec(n_atoms=n, c6=C6, ground_states="mps", correlation_window=length)
    windowed = structure_factors(density, pair, length)
    assert chain_labels(spec, np.zeros((1, 2)), np.array([windowed]))[0] == 2  # Z3
    assert chain_labels(ChainSpec(n_atoms=n, c6=C6, ground_states="mps"), np.zeros((1, 2)),
                        np.array([structure_factors(density, pair)]))[0] == 0


@pytest.mark.parametrize("n_atoms", [9, 10])
def test_mps_labels_with_a_window_match_the_exact_ones(n_atoms: int):
    points = np.array([[-1.0, 1.5], [3.0, 1.5], [3.5, 2.8], [2.0, 2.1], [3.0, 2.5]])
    exact = chain_order(ChainSpec(n_atoms=n_atoms, c6=C6, correlation_window=6), points)
    mps = chain_order(ChainSpec(n_atoms=n_atoms, c6=C6, ground_states="mps", correlation_window=6), points, MPS)
    np.testing.assert_allclose(mps, exact, atol=2e-6)
    assert not np.allclose(exact, chain_order(ChainSpec(n_atoms=n_atoms, c6=C6), points))  # the window matters


@pytest.mark.parametrize("bad", [2, 0, -6, True, 6.0, "12"])
def test_bad_windows_are_refused_naming_the_key(bad):
    with pytest.raises(QepValueError, match="'chain.correlation_window' must be an integer ≥ 3"):
        ChainSpec(n_atoms=7, correlation_window=bad)


def test_protocol_key_is_checked_on_the_command_line(tmp_path: Path, capsys):
    code = main(["train", str(PROTOCOL), "--out", str(tmp_path / "x"), "--no-progress",
                 "--set", "chain.correlation_window=2"])
    err = capsys.readouterr().err
    assert code == 2 and "'chain.correlation_window'" in err and "not 2" in err
    code = main(["train", str(PROTOCOL), "--out", str(tmp_path / "y"), "--no-progress",
                 "--set", "chain.correlation_window=1.5"])
    assert code == 2 and "chain.correlation_window" in capsys.readouterr().err


def test_protocol_with_a_window_labels_by_blocks(tmp_path: Path):
    out = tmp_path / "run"
    code = main(["train", str(PROTOCOL), "--out", str(out), "--no-progress", "--set", "training.steps=1",
                 "--set", "training.eval_every=1", "--set", "data.n_train=6", "--set", "data.n_test=4",
                 "--set", "task.plot_resolution=3", "--set", "gradient.shots=20", "--set", "chain.n_atoms=9",
                 "--set", "chain.correlation_window=6"])
    assert code == 0
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["chain"]["correlation_window"] == 6
    plot = r["plot"]
    grid = np.array([[d, b] for b in plot["rb_over_a"] for d in plot["detuning_over_omega"]])
    spec = ChainSpec(n_atoms=9, omega=r["config"]["device"]["omega"],
                     c6=float(load_device(r["config"]["device"]["name"]).interaction_coeff), correlation_window=6)
    np.testing.assert_allclose(plot["order"], chain_order(spec, grid), rtol=1e-12, atol=1e-14)


def test_label_cache_key_is_unchanged_without_a_window_and_new_with_one(tmp_path):
    spec = ChainSpec(n_atoms=5, c6=C6)
    # the repr the cache hashes: exactly what it was before the key existed
    assert repr(spec) == ("ChainSpec(n_atoms=5, omega=1.6, c6=" + repr(C6) + ", detuning_range=(-1.0, 4.0), "
                          "rb_range=(1.0, 2.8), z2_threshold=0.5, z3_threshold=0.5, ground_states='exact')")
    windowed = ChainSpec(n_atoms=5, c6=C6, correlation_window=4)
    assert repr(windowed) == repr(spec)[:-1] + ", correlation_window=4)"
    points = np.array([[3.0, 2.5], [2.0, 2.1]])
    first = cached_chain_order(spec, points, cache=str(tmp_path))
    second = cached_chain_order(windowed, points, cache=str(tmp_path))
    assert len(list(tmp_path.glob("chain_order_*.npz"))) == 2
    np.testing.assert_array_equal(first, chain_order(spec, points))
    np.testing.assert_array_equal(second, chain_order(windowed, points))
    assert not np.array_equal(first, second)


@pytest.mark.slow
def test_51_atom_z3_point_is_z3_only_with_the_window():
    """DMRG at (Δ/Ω, R_b/a) = (4, 2.35), deep in Bernien et al.'s Z3 region: the full chain holds a domain wall and
    is not labelled Z3; blocks of 12 sites label it Z3."""
    point = np.array([[4.0, 2.35]])
    full = ChainSpec(n_atoms=51, c6=C6, ground_states="mps")
    windowed = ChainSpec(n_atoms=51, c6=C6, ground_states="mps", correlation_window=12)
    assert chain_labels(full, point, backend=MPS)[0] == 0
    assert chain_labels(windowed, point, backend=MPS)[0] == 2
