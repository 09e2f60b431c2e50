"""Published phase-boundary points (qep_analog.tasks.rydberg_published): invariants, the unit conversion, and
the project's exact labels on either side of the published Z2 points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qep_analog.errors import QepValueError
from qep_analog.tasks.rydberg_chain import PHASES, ChainSpec, chain_labels
from qep_analog.tasks.rydberg_published import (
    BLOCKADE_LIMITS,
    KINDS,
    PUBLISHED_POINTS,
    PublishedLimit,
    PublishedPoint,
    from_interaction_units,
    symmetric_line_delta_over_omega,
)

GOOD = dict(delta_over_omega=1.0, rb_over_a=1.5, kind="Z2-Ising", source="s", where="w", note="n")


def test_every_point_is_finite_positive_and_cited():
    assert PUBLISHED_POINTS
    for point in PUBLISHED_POINTS:
        assert math.isfinite(point.delta_over_omega)
        assert math.isfinite(point.rb_over_a) and point.rb_over_a > 0
        assert point.kind in KINDS
        assert point.source.strip() and point.where.strip() and point.note.strip()
    for limit in BLOCKADE_LIMITS:
        assert math.isfinite(limit.delta_over_omega) and limit.kind in KINDS
        assert limit.source.strip() and limit.where.strip() and limit.note.strip()


@pytest.mark.parametrize("bad", [dict(delta_over_omega=math.nan), dict(rb_over_a=0.0), dict(rb_over_a=math.inf),
                                 dict(kind="Z4"), dict(source=" "), dict(where=""), dict(note=None)])
def test_point_refuses_bad_fields(bad):
    with pytest.raises(QepValueError):
        PublishedPoint(**{**GOOD, **bad})


def test_limit_refuses_bad_fields():
    good = {k: v for k, v in GOOD.items() if k != "rb_over_a"}
    PublishedLimit(**good)
    with pytest.raises(QepValueError):
        PublishedLimit(**{**good, "delta_over_omega": math.inf})
    with pytest.raises(QepValueError):
        PublishedLimit(**{**good, "kind": "ordered"})


def test_conversion_matches_the_chain_geometry():
    # a point given as (Ω/V1, Δ/V1), V1 = C6/a⁶, is the chain at spacing a with R_b = (C6/Ω)^{1/6}
    spec = ChainSpec()
    for spacing_um in (4.0, 5.5, 9.0):
        v1 = spec.c6 / spacing_um**6
        detuning = 0.7 * spec.omega
        d_over_o, rb_over_a = from_interaction_units(omega_over_v1=spec.omega / v1, delta_over_v1=detuning / v1)
        assert rb_over_a == pytest.approx(spec.blockade_radius_um / spacing_um, rel=1e-12)
        assert d_over_o == pytest.approx(0.7, rel=1e-12)
    with pytest.raises(QepValueError):
        from_interaction_units(omega_over_v1=0.0, delta_over_v1=1.0)


def _ring_hamiltonian(n: int, omega: float, delta: float, v1: float) -> np.ndarray:
    """H = Σ (Ω/2) X_j − Δ Σ n_j + Σ_{i<j} V1/d_ij⁶ n_i n_j on a ring of n (d = min(|i − j|, n − |i − j|)), dense."""
    x = np.array([[0.0, 1.0], [1.0, 0.0]])
    num = np.diag([0.0, 1.0])

    def site(op, k):
        return np.kron(np.kron(np.eye(2**k), op), np.eye(2 ** (n - k - 1)))

    h = sum(0.5 * omega * site(x, k) - delta * site(num, k) for k in range(n))
    for i in range(n):
        for j in range(i + 1, n):
            d = min(j - i, n - j + i)
            h = h + v1 / d**6 * site(num, i) @ site(num, j)
    return h


def test_symmetric_line_is_where_the_spin_flip_leaves_h_unchanged():
    """Flipping every atom (F = ⊗X, n → 1 − n) changes H by a constant only where Δ = Σ_{j≠i} V_ij/2, the zero of
    the longitudinal field; that sum over a ring of n tends to the infinite chain's 2 V1 ζ(6) (within 2.2e-4 at
    n = 8), so in the plane the line is Δ/Ω = ζ(6) (R_b/a)⁶ (V1/Ω = (R_b/a)⁶)."""
    n, omega, rb = 8, 1.0, 1.2
    v1 = omega * rb**6
    ring_sum = sum(1.0 / min(d, n - d) ** 6 for d in range(1, n))  # Σ_{j≠i} V_ij / V1
    flip = np.ones(1)
    for _ in range(n):
        flip = np.kron(flip, np.array([[0.0, 1.0], [1.0, 0.0]]))

    def offset(delta):
        h = _ring_hamiltonian(n, omega, delta, v1)
        diff = flip @ h @ flip - h
        return np.linalg.norm(diff - np.trace(diff) / 2**n * np.eye(2**n))

    assert offset(v1 * ring_sum / 2) < 1e-9
    assert offset(v1 * ring_sum / 2 + 0.05) > 1.0  # any other Δ leaves a field Σ_i (…) Z_i
    assert offset(-v1 * ring_sum / 2) > 1.0
    assert v1 * ring_sum / 2 / omega == pytest.approx(symmetric_line_delta_over_omega(rb), rel=3e-4)
    big = sum(1.0 / min(d, 400 - d) ** 6 for d in range(1, 400))  # a ring of 400: the infinite-chain limit
    assert v1 * big / 2 / omega == pytest.approx(symmetric_line_delta_over_omega(rb), rel=1e-12)
    tip = PUBLISHED_POINTS[1]  # the draft's tip is on that line
    assert tip.delta_over_omega == pytest.approx(symmetric_line_delta_over_omega(tip.rb_over_a), rel=1e-12)


@pytest.mark.parametrize("n_atoms", [9, 11])  # odd N: an open even chain cannot hold the Z2 crystal (end frustration)
def test_project_labels_cross_the_published_z2_points(n_atoms):
    """The project's exact labels (structure factors, τ₂ = 0.5) are disordered well below and Z2 well above each
    published point on the Z2 Ising line. Margins: 0.5 in Δ/Ω on the ring-experiment point (lower branch of the
    lobe, crossed by raising Δ/Ω), 0.1 in R_b/a along the symmetric line through the lobe's tip."""
    spec = ChainSpec(n_atoms=n_atoms, detuning_range=(-10.0, 20.0), rb_range=(0.5, 3.0))
    lower, tip = PUBLISHED_POINTS
    points = [(lower.delta_over_omega - 0.5, lower.rb_over_a), (lower.delta_over_omega + 0.5, lower.rb_over_a)]
    for rb in (tip.rb_over_a - 0.1, tip.rb_over_a + 0.1):
        points.append((symmetric_line_delta_over_omega(rb), rb))
    labels = [PHASES[i] for i in chain_labels(spec, points)]
    assert labels == ["disordered", "Z2", "disordered", "Z2"]


def test_draw_published_marks_exactly_the_points_inside_the_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qep_analog.tasks.rydberg_published import draw_published

    fig, ax = plt.subplots()
    ax.set_xlim(-1.0, 4.0)
    ax.set_ylim(1.0, 2.8)
    drawn = draw_published(ax)
    assert drawn  # both points lie in the phase sensor's box
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in drawn] == [
        (p.delta_over_omega, p.rb_over_a) for p in PUBLISHED_POINTS
        if -1.0 <= p.delta_over_omega <= 4.0 and 1.0 <= p.rb_over_a <= 2.8]
    assert ax.get_xlim() == (-1.0, 4.0) and ax.get_ylim() == (1.0, 2.8)
    ax.set_xlim(-1.0, 0.0)  # a box that holds none of them
    assert draw_published(ax) == []
    plt.close(fig)
