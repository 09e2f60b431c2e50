"""Shot allocation by measured variance (Neyman) and adaptive β (learning/shots.py, issue 17 part 4)."""

from dataclasses import replace

import numpy as np
import pytest

from qep_analog.device.devices import load_device
from qep_analog.device.rydberg import RydbergModel
from qep_analog.equilibrium import get_backend
from qep_analog.errors import QepValueError
from qep_analog.learning import GradientConfig, estimate_gradient
from qep_analog.learning import shots as shots_module
from qep_analog.learning.shots import adaptive_beta, allocate_shots, allocation_variance, check_budget
from qep_analog.measurement.sampling import ReadoutError

EXACT = get_backend("exact")
STAGED = [dict(shot_allocation="even", pilot_shots=5), dict(shot_allocation="variance", pilot_shots=5),
          dict(adaptive_beta=True, pilot_shots=5), dict(adaptive_beta=True, shot_allocation="variance", pilot_shots=5)]


@pytest.fixture(scope="module")
def rydberg_batch():
    """4 atoms on qep_lab_device (DMM), inputs on atoms 0, 1, output atom 3: one Z setting for every parameter."""
    model = RydbergModel(positions_um=np.array([[0.0, 0.0], [0.0, 8.0], [6.0, 4.0], [12.0, 4.0]]),
                         device=load_device("qep_lab_device"), omega=4.0, detunings=np.full(4, 2.0),
                         input_atoms=(0, 1), output_atoms=(3,))
    rng = np.random.default_rng(3)
    x = np.array([model.inputs(v) for v in rng.normal(scale=3.0, size=(6, 2))])
    t = np.array([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]])
    config = GradientConfig(nudge="cost-operator", beta=1.0, shots=40,
                            readout=ReadoutError(p_false_pos=0.01, p_false_neg=0.05))
    return model.hamiltonian(), model.theta(), x, t, config


# ------------------------------------------------------------------ allocation (pure)
@pytest.mark.parametrize("mode", ["variance", "even"])
def test_allocation_sums_to_the_budget_keeps_the_floors_and_is_deterministic(mode):
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        scales = rng.exponential(size=n) * (rng.random(n) > 0.2)
        floors = rng.integers(0, 4, size=n)
        total = int(floors.sum() + rng.integers(0, 500))
        m = allocate_shots(scales, total, floors=floors, mode=mode)
        assert m.sum() == total and np.all(m >= floors) and m.dtype.kind == "i"
        np.testing.assert_array_equal(m, allocate_shots(scales, total, floors=floors, mode=mode))
        if mode == "even":
            assert np.ptp(m - floors) <= 1


def test_neyman_allocation_minimises_the_variance_of_a_known_estimator():
    """Σ a_j ĥ_j with per-shot σ_j: Neyman m_j ∝ |a_j| σ_j reaches (Σ c)²/R and no single-shot move improves it."""
    a = np.array([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])
    sigma = np.array([0.1, 0.5, 0.4, 0.4, 0.05, 0.3])
    c, total = np.abs(a) * sigma, 6000
    neyman = allocate_shots(c, total, mode="variance")
    even = allocate_shots(c, total, mode="even")
    v_neyman, v_even = allocation_variance(c, neyman), allocation_variance(c, even)
    assert v_neyman < v_even
    assert v_neyman == pytest.approx(c.sum() ** 2 / total, rel=1e-3)
    assert v_even == pytest.approx(len(c) * np.sum(c**2) / total, rel=1e-3)
    for i in range(len(c)):  # local optimality against moving one shot from leg i to leg j
        for j in range(len(c)):
            if i != j:
                moved = neyman.copy()
                moved[i] -= 1
                moved[j] += 1
                assert allocation_variance(c, moved) >= v_neyman * (1 - 1e-9)
    # and the variances are those of the estimator: Monte Carlo with Gaussian shots
    rng = np.random.default_rng(1)
    draws = [sum(a[j] * rng.normal(0.0, sigma[j], size=(m, 4000)).mean(axis=0) for j, m in enumerate(neyman))]
    assert np.var(draws[0]) == pytest.approx(v_neyman, rel=0.1)


def test_allocation_refuses_floors_above_the_total_and_bad_scales():
    with pytest.raises(QepValueError, match="floors"):
        allocate_shots([1.0, 1.0], 3, floors=[2, 2])
    with pytest.raises(QepValueError, match="scales"):
        allocate_shots([1.0, np.nan], 10)


# ------------------------------------------------------------------ adaptive β (pure)
def test_adaptive_beta_is_the_minimiser_of_the_bias_variance_model():
    """MSE(β) = b²β⁴ + K/(β²R): β* = (K/(2b²R))^{1/6} is its argmin; clipped; no bias ⇒ β_max."""
    grid = np.geomspace(1e-3, 10.0, 200001)
    for b2, k, r in ((1e-2, 2.0, 1000), (4.0, 0.3, 50), (1e-4, 10.0, 10**5)):
        mse = b2 * grid**4 + k / (grid**2 * r)
        best = adaptive_beta(b2, k, r, beta_min=1e-3, beta_max=10.0)
        assert best == pytest.approx(grid[np.argmin(mse)], rel=1e-3)
        assert best == pytest.approx((k / (2 * b2 * r)) ** (1 / 6), rel=1e-12)
    assert adaptive_beta(0.0, 1.0, 100, beta_min=0.1, beta_max=2.0) == 2.0
    assert adaptive_beta(1e9, 1.0, 100, beta_min=0.1, beta_max=2.0) == 0.1
    with pytest.raises(QepValueError, match="beta_min"):
        adaptive_beta(1.0, 1.0, 100, beta_min=3.0, beta_max=2.0)


def test_an_undetected_bias_is_not_read_as_bias():
    """Pure noise b̄ ~ N(0, se²): the 2σ detection keeps |b|² = 0 in most draws; a real bias is detected."""
    rng = np.random.default_rng(2)
    se2 = np.full(20, 0.01)
    zero = [shots_module._detected(rng.normal(0, 0.1, 20), se2) == 0.0 for _ in range(400)]
    assert np.mean(zero) > 0.9
    assert shots_module._detected(np.full(20, 0.5), se2) == pytest.approx(20 * (0.25 - 0.01))


# ------------------------------------------------------------------ through the estimator
@pytest.mark.parametrize("staged", STAGED)
def test_a_staged_step_spends_exactly_its_budget_and_is_reproducible(rydberg_batch, staged):
    h, theta, x, t, config = rydberg_batch
    cfg = replace(config, **staged)
    a = estimate_gradient(h, EXACT, theta, x, t, cfg, seed=11)
    b = estimate_gradient(h, EXACT, theta, x, t, cfg, seed=11)
    c = estimate_gradient(h, EXACT, theta, x, t, cfg, seed=12)
    assert a.preparations == config.shots * len(t) * 3  # the default budget is the uniform bill
    np.testing.assert_array_equal(a.gradient, b.gradient)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert a.beta == b.beta and not np.array_equal(a.gradient, c.gradient)
    budget = estimate_gradient(h, EXACT, theta, x, t, replace(cfg, shot_budget=2000), seed=11)
    assert budget.preparations == 2000


def test_staged_estimates_are_unbiased_against_the_exact_finite_beta_gradient(rydberg_batch):
    """Noise only: the mean of many variance-allocated estimates is the exact-expectation β = 1 gradient."""
    h, theta, x, t, config = rydberg_batch
    config = replace(config, readout=None)
    exact_beta = estimate_gradient(h, EXACT, theta, x, t, replace(config, shots=None)).gradient
    cfg = replace(config, shot_allocation="variance", pilot_shots=5)
    runs = [estimate_gradient(h, EXACT, theta, x, t, cfg, seed=s) for s in range(60)]
    g = np.array([r.gradient for r in runs])
    se = g.std(axis=0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(g.mean(axis=0) - exact_beta) < 4.5 * se + 1e-12)
    # the reported standard error describes the spread of the estimates
    ratio = np.mean([r.stderr for r in runs], axis=0) / g.std(axis=0, ddof=1)
    assert np.all((ratio > 0.6) & (ratio < 1.6))


def test_the_default_is_the_uniform_path(rydberg_batch, monkeypatch):
    """Defaults never enter the staged path: the estimate is that of the per-sample pipeline, bit for bit."""
    h, theta, x, t, config = rydberg_batch
    assert GradientConfig().shot_allocation == "uniform" and not GradientConfig().adaptive_beta
    before = estimate_gradient(h, EXACT, theta, x, t, config, seed=3)

    def refuse(*args, **kwargs):
        raise AssertionError("the staged path ran on a default config")

    monkeypatch.setattr(shots_module, "allocated_results", refuse)
    after = estimate_gradient(h, EXACT, theta, x, t, replace(config, shot_allocation="uniform"), seed=3)
    np.testing.assert_array_equal(before.gradient, after.gradient)
    np.testing.assert_array_equal(before.stderr, after.stderr)
    assert before.preparations == after.preparations == config.shots * len(t) * 3 and before.beta == config.beta


def test_adaptive_beta_stays_within_its_bounds(rydberg_batch):
    h, theta, x, t, config = rydberg_batch
    cfg = replace(config, beta=2.0, adaptive_beta=True, pilot_shots=5, beta_min=0.5)
    betas = [estimate_gradient(h, EXACT, theta, x, t, cfg, seed=s).beta for s in range(4)]
    assert all(0.5 <= b <= 2.0 for b in betas)


@pytest.mark.parametrize("kwargs, match", [
    (dict(shot_allocation="neyman"), "shot_allocation"),
    (dict(shots=100, pilot_shots=10), "pilot_shots"),
    (dict(shots=100, shot_budget=1000), "shot_budget"),
    (dict(shots=100, shot_allocation="variance"), "pilot_shots"),
    (dict(shot_allocation="variance", pilot_shots=10), "finite 'shots'"),
    (dict(shots=100, estimator="one-sided", shot_allocation="variance", pilot_shots=10), "symmetric"),
    (dict(shots=100, measurement="gaussian", adaptive_beta=True, pilot_shots=10), "grouped"),
    (dict(shots=100, beta_min=0.1), "beta_min"),
    (dict(shots=100, adaptive_beta=True, pilot_shots=10, beta=0.5, beta_min=1.0), "beta_min"),
    (dict(shots=100, shot_allocation="even", pilot_shots=0), "pilot_shots"),
])
def test_inconsistent_allocation_keys_are_refused(kwargs, match):
    with pytest.raises(QepValueError, match=match):
        GradientConfig(**kwargs)


def test_a_budget_below_the_pilot_is_refused_naming_the_keys(rydberg_batch):
    h, theta, x, t, config = rydberg_batch
    cfg = replace(config, shot_allocation="variance", pilot_shots=10, shot_budget=100)
    with pytest.raises(QepValueError, match="shot_budget.*pilot_shots"):
        estimate_gradient(h, EXACT, theta, x, t, cfg)
    assert check_budget(replace(cfg, shot_budget=None), 6, 1, 1) == 40 * 6 * 3


def test_protocol_keys_reach_the_config(tmp_path):
    from qep_analog.protocol import load_protocol
    from qep_analog.tasks.build import build_gradient_config

    path = tmp_path / "p.toml"
    path.write_text('[protocol]\nname = "x"\ntask = "supervised"\n[model]\nkind = "tfim"\nn_qubits = 3\n'
                    '[gradient]\nnudge = "cost-operator"\nshots = 50\nshot_allocation = "variance"\n'
                    'pilot_shots = 5\nadaptive_beta = true\nbeta = 1.5\nbeta_min = 0.2\nshot_budget = 900\n')
    cfg = build_gradient_config(load_protocol(path))
    assert (cfg.shot_allocation, cfg.pilot_shots, cfg.adaptive_beta, cfg.beta_min, cfg.shot_budget) == (
        "variance", 5, True, 0.2, 900)
    path.write_text(path.read_text().replace("pilot_shots = 5\n", ""))
    with pytest.raises(QepValueError, match=r"\[gradient\].*pilot_shots"):
        build_gradient_config(load_protocol(path))


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_staged_steps_are_bitwise_equal_serial_and_on_dask(rydberg_batch):
    """Pilot per (sample, phase) on workers (whole samples or one task per phase), the rest here: serial bits."""
    from qep_analog.distributed import DaskExecutor

    h, theta, x, t, config = rydberg_batch
    configs = [replace(config, **STAGED[1]), replace(config, **STAGED[3], beta=2.0)]
    serial = [estimate_gradient(h, EXACT, theta, x, t, c, seed=21) for c in configs]
    with DaskExecutor(workers=2) as cluster:
        for granularity in ("sample", "phase"):
            cluster.granularity = granularity
            for c, s in zip(configs, serial, strict=True):
                d = estimate_gradient(h, EXACT, theta, x, t, c, seed=21, executor=cluster)
                np.testing.assert_array_equal(d.gradient, s.gradient)
                np.testing.assert_array_equal(d.stderr, s.stderr)
                assert (d.beta, d.preparations, d.crossings) == (s.beta, s.preparations, s.crossings)
