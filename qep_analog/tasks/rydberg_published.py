"""Published points on the Rydberg chain's phase boundaries, in the phase sensor's plane (Δ/Ω, R_b/a).

The project's chain (:mod:`qep_analog.tasks.rydberg_chain`, pulser's convention; ħ = 1):

    H = Σ_j (Ω/2) X_j − Δ Σ_j n_j + Σ_{i<j} C6/|r_i − r_j|⁶ n_i n_j,   R_b = (C6/Ω)^{1/6},

so a point is (Δ/Ω, R_b/a), a the spacing. Only numbers printed in a source read through the search tools
count here (issue 17 part 1); none is read off a figure. What was found (details, searches that gave
nothing, caveats: docs/notes/issue-17-published-boundaries.md):

* An unpublished draft, "Direct tests of conformal symmetry with Rydberg atoms: assessment and proposals"
  (TeXmacs source in a public GitHub repository; the search index returned its text, id 59394343261, but not
  the repository's name; its authors appear only as initials, SR and JR). Its Eq. (model) is the Hamiltonian
  above with the same (Ω/2) X term; it divides by U = C6/a⁶ and writes Ω' = Ω/U, Δ' = Δ/U (Eq. modelp).
  Its Table "tab:params" lists two points on the Z2–disordered (Ising) critical line:

  - point 1, Ω' = 0.133, Δ' = 0.129: the point of the 24-atom ring experiment of Fang et al., Science 390,
    adq0278 (2025), arXiv:2402.15376 (a secondary citation: Fang et al. themselves could not be read here);
  - point 3, Ω' ≈ 0.488, Δ' = ζ(6) ≈ 1.017: the draft's own DMRG on a ring of N = 24 ("0.488 (critical
    point)" in the caption of its Fig. ZZ2pt). Δ' = ζ(6) is the line where the longitudinal field of the
    spin form vanishes for the infinite chain with all 1/r⁶ tails kept (:func:`symmetric_line_delta_over_omega`);
    the point is the tip of the Z2 lobe on that line ("tip" in the draft's notes).

  Conversion: V1 = U = C6/a⁶ = Ω (R_b/a)⁶, so R_b/a = (Ω')^{-1/6} and Δ/Ω = Δ'/Ω' (:func:`from_interaction_units`).
  No uncertainty is given for either point.
* The nearest-neighbour blockade (PXP + detuning) limit of Fendley, Sengupta & Sachdev, PRB 69, 075106 (2004):
  the V = 0 Ising transition at U/w ≃ −1.308 in their hard-boson convention H = Σ [−w (d_i + d_i†) + U n_i],
  as quoted in a public review note (GitHub, linked to QuantumBFS/quantum.harness issue #233; index id
  61926481489) — the primary paper could not be read. With w = Ω/2 and Δ = −U: Δ/Ω = −U/(2w) ≃ 0.654. That model
  has V1 = ∞ and no interaction beyond nearest neighbours, which no single R_b/a of a 1/r⁶ chain realises, so
  it is kept apart in :data:`BLOCKADE_LIMITS` without an R_b/a.

Nothing numeric was found for the Z3 boundary, the floating phases, the Lifshitz points or the Z2–Z3 boundary
(Bernien 2017, Keesling 2019, Rader & Läuchli 2019, Samajdar 2018, Chepiga & Mila 2019/2021, Maceira et al. 2022,
Giudici 2019, Slagle 2021): the stored copies of those papers hold only their first page, whose abstracts
give exponents, not locations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qep_analog.errors import QepValueError

KINDS = ("Z2-Ising", "Z3-boundary", "floating", "Lifshitz", "Z2-Z3")
ZETA6 = math.pi**6 / 945  # ζ(6) = Σ_{j≥1} 1/j⁶ = 1.01734…


def _check_text(owner: str, **texts: str) -> None:
    for key, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            raise QepValueError(f"'{owner}.{key}' must be a non-empty string, not {value!r}")


def _check_kind(owner: str, kind: str) -> None:
    if kind not in KINDS:
        raise QepValueError(f"'{owner}.kind' must be one of {KINDS}, not {kind!r}")


@dataclass(frozen=True, kw_only=True)
class _Cited:
    """A published transition detuning Δ/Ω with its citation; checks shared by the two record types below."""

    delta_over_omega: float
    kind: str
    source: str
    where: str
    note: str

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not math.isfinite(self.delta_over_omega):
            raise QepValueError(f"'{owner}.delta_over_omega' must be finite, not {self.delta_over_omega!r}")
        _check_kind(owner, self.kind)
        _check_text(owner, source=self.source, where=self.where, note=self.note)


@dataclass(frozen=True, kw_only=True)
class PublishedPoint(_Cited):
    """A point (Δ/Ω, R_b/a) on a published phase boundary, in the project's convention (module docstring).

    ``source``: the paper (and, for a secondary citation, where it was read); ``where``: equation, table,
    sentence or caption; ``note``: model, size, method, uncertainty if given, conversion.
    """

    rb_over_a: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.rb_over_a) and self.rb_over_a > 0):
            raise QepValueError(f"'PublishedPoint.rb_over_a' must be a positive number, not {self.rb_over_a!r}")


@dataclass(frozen=True, kw_only=True)
class PublishedLimit(_Cited):
    """A published transition detuning Δ/Ω of a truncated model with no single R_b/a (e.g. nearest-neighbour
    blockade only: V1 = ∞, V2 = 0), in the project's (Ω/2) X convention."""


def from_interaction_units(*, omega_over_v1: float, delta_over_v1: float) -> tuple[float, float]:
    """(Δ/Ω, R_b/a) of a point given as Ω/V1 and Δ/V1, V1 = C6/a⁶ the nearest-neighbour interaction, for a
    Hamiltonian with the same (Ω/2) X and −Δ n terms: V1/Ω = (R_b/a)⁶, so R_b/a = (Ω/V1)^{-1/6}."""
    if not (math.isfinite(omega_over_v1) and omega_over_v1 > 0):
        raise QepValueError(f"'omega_over_v1' must be a positive number, not {omega_over_v1!r}")
    if not math.isfinite(delta_over_v1):
        raise QepValueError(f"'delta_over_v1' must be finite, not {delta_over_v1!r}")
    return delta_over_v1 / omega_over_v1, omega_over_v1 ** (-1 / 6)


def symmetric_line_delta_over_omega(rb_over_a: float) -> float:
    """Δ/Ω = ζ(6) (R_b/a)⁶: where Σ_{j≠i} V_ij/4 − Δ/2, the longitudinal field of H in spin form
    (n = (1 + Z)/2), vanishes on the infinite chain (the draft's Δ' = ζ(6)); the Z2 lobe is symmetric about it."""
    if not (math.isfinite(rb_over_a) and rb_over_a > 0):
        raise QepValueError(f"'rb_over_a' must be a positive number, not {rb_over_a!r}")
    return ZETA6 * rb_over_a**6


_DRAFT = ("unpublished draft 'Direct tests of conformal symmetry with Rydberg atoms: assessment and proposals' "
          "(TeXmacs, public GitHub repository; search-index file id 59394343261)")
_FANG = from_interaction_units(omega_over_v1=0.133, delta_over_v1=0.129)
_TIP = from_interaction_units(omega_over_v1=0.488, delta_over_v1=ZETA6)

PUBLISHED_POINTS: tuple[PublishedPoint, ...] = (
    PublishedPoint(
        delta_over_omega=_FANG[0], rb_over_a=_FANG[1], kind="Z2-Ising",
        source=("Fang et al., Science 390, adq0278 (2025), arXiv:2402.15376 — secondary: as tabulated in the "
                + _DRAFT),
        where="draft Table 'tab:params', point 1: Omega' = 0.133, Delta' = 0.129 (units of U = C6/a^6)",
        note=("on the Z2-disordered Ising line per the draft; experiment on a ring of 24 atoms, how the point was "
              "located is not stated there; no uncertainty given. Conversion: R_b/a = 0.133^(-1/6), "
              "Delta/Omega = 0.129/0.133 (same (Omega/2) X convention, draft Eq. model)"),
    ),
    PublishedPoint(
        delta_over_omega=_TIP[0], rb_over_a=_TIP[1], kind="Z2-Ising",
        source=_DRAFT + ", its own DMRG",
        where=("draft Table 'tab:params', point 3: Omega' ~ 0.488, Delta' = zeta(6) ~ 1.017; Fig. 'ZZ2pt' caption "
               "'0.488 (critical point)'"),
        note=("ring of N = 24, full 1/r^6 couplings (ring chord distances); the tip of the Z2 lobe on the "
              "particle-hole symmetric line Delta' = zeta(6); no uncertainty given ('~'). Conversion: "
              "R_b/a = 0.488^(-1/6), Delta/Omega = zeta(6)/0.488"),
    ),
)

BLOCKADE_LIMITS: tuple[PublishedLimit, ...] = (
    PublishedLimit(
        delta_over_omega=1.308 / 2, kind="Z2-Ising",
        source=("Fendley, Sengupta & Sachdev, PRB 69, 075106 (2004), arXiv:cond-mat/0309438 — secondary: as "
                "quoted in a public review note (GitHub; QuantumBFS/quantum.harness issue #233; search-index file "
                "id 61926481489)"),
        where="note, section 'Normalization and transition window': 'the V = 0 Ising transition is at U/w ~ -1.308'",
        note=("nearest-neighbour blockade only (V1 = inf, no longer-range tail): the PXP chain with detuning; "
              "thermodynamic limit. Conversion: H = sum[-w (d + d^dag) + U n], so w = Omega/2 and Delta = -U: "
              "Delta/Omega = 1.308/2; no single R_b/a"),
    ),
)


LEGEND = "literature Z2–disordered critical points (Fang et al. via a draft's table; a draft's DMRG)"


def draw_published(ax, points: tuple[PublishedPoint, ...] = PUBLISHED_POINTS) -> list:
    """Mark the published points that fall inside ``ax``'s current (Δ/Ω, R_b/a) limits (white stars, black edge)
    without changing the limits; returns the drawn line artists (one per point, the first labelled for a
    legend). Points outside the limits are skipped, so a map of a smaller box shows fewer of them."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    inside = [p for p in points if min(x0, x1) <= p.delta_over_omega <= max(x0, x1)
              and min(y0, y1) <= p.rb_over_a <= max(y0, y1)]
    drawn = []
    for k, p in enumerate(inside):
        (line,) = ax.plot([p.delta_over_omega], [p.rb_over_a], ls="none", marker="*", ms=11, mfc="w", mec="k",
                          mew=1.0, zorder=5,
                          label=LEGEND if k == 0 else None)
        drawn.append(line)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return drawn
