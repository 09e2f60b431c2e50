"""The system of the Rydberg phase sensor: an atom chain, its registers and its phase labels.

Chain of N atoms on the x axis at spacing a (µm), centred on the origin, driven globally
(pulser's convention, PHYSICS.md §3; ħ = 1, rad/µs, µm):

    H_chain = Σ_j (Ω/2) X_j − Δ Σ_j n_j + Σ_{i<j} C6/|r_i − r_j|⁶ n_i n_j,   n = |r⟩⟨r|

C6 is the device's (``interaction_coeff``); the blockade radius is R_b = (C6/Ω)^{1/6}. Its ground
state is disordered, Z2- or Z3-ordered depending on Δ/Ω and R_b/a (Bernien et al., Nature 551, 579
(2017); Keesling et al., Nature 568, 207 (2019)). Each sample of the phase sensor is one point
(Δ/Ω, R_b/a) at fixed Ω, i.e. one register (spacing a = R_b/(R_b/a)).

Labels come from structure factors of the chain's exact ground state at the simulated N
(:func:`order_parameters`):

    m_k = c_k · Σ_b p(b) |(1/N) Σ_j e^{ikj} (b_j − n̄)|²,   n̄ = (1/N) Σ_j ⟨n_j⟩,

with k = π (c = 4) for Z2 and k = 2π/3 (c = 9) for Z3, normalised so that the perfect crystals
r g r g … and r g g r g g … give m ≈ 1; the uniform states (all g, all r) give 0. The sum over
bitstrings b with their Born probabilities p(b) makes it the (non-connected) structure factor of
the density fluctuations, which is non-zero for the symmetric cat states a finite chain forms.
Phase: Z2 if m_π ≥ τ₂ and m_π ≥ m_{2π/3}; Z3 if m_{2π/3} ≥ τ₃ and m_{2π/3} > m_π; else disordered.

The structure factor needs only one- and two-point functions,

    m_k = (c_k/N²) Σ_{j,l} cos(k(j − l)) [⟨n_j n_l⟩ − n̄ (⟨n_j⟩ + ⟨n_l⟩) + n̄²],   ⟨n_j n_j⟩ = ⟨n_j⟩,

(:func:`structure_factors`), so chains beyond exact diagonalisation (``ground_states = "mps"``, N ≤ 256) take
their labels from a DMRG ground state (the ``mps`` backend) through ⟨n_j⟩ and ⟨n_j n_l⟩; up to 16 atoms
(``"exact"``) from the full probability vector.

Domain walls (``correlation_window = L``, sites; default ``None``: the rule above, unchanged). An open chain
with N ≡ 0 mod 3 cannot hold the Z3 crystal r g g r … r with both ends r, the end atoms' favourite state; its
ground state carries a domain wall (two, at large R_b/a) delocalised over the whole chain (DMRG at N = 51: ⟨n_j⟩
passes smoothly from one crystal to the other). Pairs across a wall enter m_k with cos(k · shift) = −1/2 and the
full-chain m_{2π/3} falls to ≈ 0.3: a wall costs O(1), not O(1/N), since most distant pairs straddle it. The
block structure factor averages the same quantity over the N − L + 1 blocks B of L consecutive sites:

    m_k^(L) = (1/(N − L + 1)) Σ_B c_k Σ_b p(b) |(1/L) Σ_{j∈B} e^{ikj} (b_j − n̄)|²
            = (c_k/((N − L + 1) L²)) Σ_{j,l} w_L(j, l) cos(k(j − l)) [⟨n_j n_l⟩ − n̄ (⟨n_j⟩ + ⟨n_l⟩) + n̄²],

with n̄ the whole chain's mean density and w_L(j, l) = #{blocks holding both j and l}
= max(0, min(j, l, N − L) − max(0, max(j, l) − L + 1) + 1) (pairs with |j − l| ≤ L − 1 only,
weighted by how many blocks hold them). Properties: m^(L) ≥ 0 (a Born average of squared moduli); L ≥ N is the
full-chain rule (bit for bit: the same code); uniform states give 0; for L a multiple of 6 (both periods) the
mean n̄ drops out of each block and every block of a perfect crystal gives exactly 1 for its own k and 0 for the
other, so perfect Z2 and Z3 crystals give exactly 1 at any N (other L: 1 up to O(1/L)). One wall shifting by one site
lowers a block holding it to 1/2 on average (∫₀¹ |t + (1 − t) e^{2πi/3}|² dt) and costs at most
≈ (L/2)/(N − L + 1) (0.15 at N = 51, L = 12; 0.12 on average over the wall's positions), where the full chain
(L = N) loses half of m for a wall spread evenly over it. Small L admits the short-range Z3 correlations of the
disordered phase, so L should be a few Z3 periods and well below N/2; the value chosen for N = 51 and why:
docs/notes/issue-17-part1-window.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np

from qep_analog.errors import QepValueError

PHASES = ("disordered", "Z2", "Z3")
GROUND_STATES = ("exact", "mps")
N_LIMITS = {"exact": 16, "mps": 256}  # the exact route diagonalises 2^N states; DMRG has no such wall


@dataclass(frozen=True, kw_only=True)
class ChainSpec:
    """The chain and the (Δ/Ω, R_b/a) box its samples come from.

    ``omega`` (rad/µs) and ``c6`` (rad/µs·µm⁶) fix R_b; thresholds τ₂, τ₃ on the normalised
    structure factors decide the labels. ``ground_states``: how the labels' ground states are found,
    ``"exact"`` (N ≤ 16, the full probability vector) or ``"mps"`` (N ≤ 256, DMRG correlations).
    ``correlation_window``: block length L (sites, ≥ 3) of the domain-wall-tolerant block structure factor
    (module docstring); ``None`` (default) or L ≥ N: the full chain.
    """

    n_atoms: int = 10
    omega: float = 1.6
    c6: float = 12_241_414.53
    detuning_range: tuple[float, float] = (-1.0, 4.0)
    rb_range: tuple[float, float] = (1.0, 2.8)
    z2_threshold: float = 0.5
    z3_threshold: float = 0.5
    ground_states: str = "exact"
    correlation_window: int | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # the label cache hashes this repr: without a window it stays what it was before the key existed
        body = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        extra = "" if self.correlation_window is None else f", correlation_window={self.correlation_window!r}"
        return f"{type(self).__qualname__}({body}{extra})"

    def __post_init__(self) -> None:
        if self.ground_states not in GROUND_STATES:
            raise QepValueError(f"'chain.ground_states' must be one of {GROUND_STATES}, not {self.ground_states!r}")
        limit = N_LIMITS[self.ground_states]
        if not isinstance(self.n_atoms, int) or not 3 <= self.n_atoms <= limit:
            raise QepValueError(f"'chain.n_atoms' must be an integer in [3, {limit}] ({self.ground_states} ground "
                                f"states{'; backend mps reaches 256' if self.ground_states == 'exact' else ''}), "
                                f"not {self.n_atoms!r}")
        for key in ("omega", "c6"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise QepValueError(f"'chain.{key}' must be a positive number, not {value!r}")
        for key in ("detuning_range", "rb_range"):
            lo, hi = getattr(self, key)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise QepValueError(f"'chain.{key}' must be [low, high] with low < high, not {[lo, hi]}")
        if self.rb_range[0] <= 0.3:
            raise QepValueError(f"'chain.rb_range' must start above 0.3, not {self.rb_range[0]}")
        for key in ("z2_threshold", "z3_threshold"):
            value = getattr(self, key)
            if not 0 < value < 1:
                raise QepValueError(f"'chain.{key}' must lie in (0, 1), not {value!r}")
        if self.correlation_window is not None:
            check_window(self.correlation_window, "chain.correlation_window")

    @property
    def blockade_radius_um(self) -> float:
        """R_b = (C6/Ω)^{1/6} in µm."""
        return float((self.c6 / self.omega) ** (1 / 6))

    def spacing_um(self, rb_over_a) -> np.ndarray:
        """Chain spacing a = R_b/(R_b/a) in µm."""
        return self.blockade_radius_um / np.asarray(rb_over_a, dtype=float)

    @property
    def spacing_range_um(self) -> tuple[float, float]:
        return float(self.spacing_um(self.rb_range[1])), float(self.spacing_um(self.rb_range[0]))

    def positions(self, spacing_um: float) -> np.ndarray:
        """(N, 2) chain positions, centred on the origin: x_j = (j − (N − 1)/2) a."""
        x = (np.arange(self.n_atoms) - (self.n_atoms - 1) / 2) * float(spacing_um)
        return np.column_stack([x, np.zeros(self.n_atoms)])

    def controls(self, point) -> tuple[float, float]:
        """(Δ in rad/µs, a in µm) of a sample (Δ/Ω, R_b/a)."""
        d, rb = np.asarray(point, dtype=float).reshape(2)
        return float(d * self.omega), float(self.spacing_um(rb))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points (Δ/Ω, R_b/a), uniform in the box."""
        lo = np.array([self.detuning_range[0], self.rb_range[0]])
        hi = np.array([self.detuning_range[1], self.rb_range[1]])
        return lo + (hi - lo) * rng.random((n, 2))


# ----------------------------------------------------------------------------- exact chain states
def chain_ground_probabilities(n_atoms: int, omega: float, detuning: float, spacing_um: float,
                               c6: float) -> np.ndarray:
    """Z-basis probabilities p(b) of the chain's exact ground state (index = int(b, 2), atom 0 leftmost).

    Built from the project's Hamiltonian terms (sparse) and the exact backend (Lanczos above 256 states).
    """
    from qep_analog.equilibrium.exact import ExactBackend

    h = chain_hamiltonian(n_atoms)
    j = _couplings(n_atoms, spacing_um, c6)
    theta = j[np.triu_indices(n_atoms, 1)]
    state = ExactBackend().prepare(h, theta, np.array([omega, detuning]))
    return state.probabilities()


@lru_cache(maxsize=8)
def chain_hamiltonian(n_atoms: int):
    """H_chain as named terms: inputs (omega, delta_global), parameters J_i_j (one structure per N)."""
    from qep_analog.models.hamiltonian import Hamiltonian, Term
    from qep_analog.models.pauli import PauliProduct

    terms = []
    for i in range(n_atoms):
        terms.append(Term(name=f"drive_x_{i}", operator=PauliProduct.parse(f"X{i}", n_atoms), role="input",
                          coefficient=0.5, parameter="omega"))
        terms.append(Term(name=f"input_{i}", operator=PauliProduct.parse(f"n{i}", n_atoms), role="input",
                          coefficient=-1.0, parameter="delta_global"))
    for i in range(n_atoms):
        for k in range(i + 1, n_atoms):
            terms.append(Term(name=f"J_{i}_{k}", operator=PauliProduct.parse(f"n{i} n{k}", n_atoms),
                              role="trainable", parameter=f"J_{i}_{k}"))
    return Hamiltonian(n_qubits=n_atoms, terms=tuple(terms), outputs=(), description="Rydberg chain")


def _couplings(n_atoms: int, spacing_um: float, c6: float) -> np.ndarray:
    dist = np.abs(np.subtract.outer(np.arange(n_atoms), np.arange(n_atoms))) * float(spacing_um)
    with np.errstate(divide="ignore"):
        j = c6 / dist.astype(float) ** 6
    np.fill_diagonal(j, 0.0)
    return j


def order_parameters(probabilities: np.ndarray, n_atoms: int, window: int | None = None) -> tuple[float, float]:
    """(m_Z2, m_Z3): the normalised structure factors at k = π and k = 2π/3 (module docstring), over blocks of
    ``window`` sites if given."""
    p = np.asarray(probabilities, dtype=float)
    if p.shape != (2**n_atoms,):
        raise QepValueError(f"'probabilities' must have 2^{n_atoms} entries, not shape {p.shape}")
    idx = np.arange(p.size)
    bits = ((idx[:, None] >> (n_atoms - 1 - np.arange(n_atoms))) & 1).astype(float)
    return structure_factors(p @ bits, bits.T @ (p[:, None] * bits), window)  # ⟨n_j⟩, ⟨n_j n_l⟩


def structure_factors(density, pair, window: int | None = None) -> tuple[float, float]:
    """(m_Z2, m_Z3) from ⟨n_j⟩ (N,) and ⟨n_j n_l⟩ (N, N) (module docstring); equals :func:`order_parameters`
    of the same state. ``window`` = L: the block structure factor m^(L) (None or L ≥ N: the full chain)."""
    d = np.asarray(density, dtype=float).reshape(-1)
    n = d.size
    c = np.asarray(pair, dtype=float)
    if c.shape != (n, n):
        raise QepValueError(f"'pair' must be ({n}, {n}) for {n} densities, not shape {c.shape}")
    mean = d.mean()
    fluct = c - mean * (d[:, None] + d[None, :]) + mean**2
    sep = np.subtract.outer(np.arange(n), np.arange(n))
    if window is not None and window < n:
        fluct = fluct * block_weights(n, window)
    return tuple(float(norm * np.sum(np.cos(k * sep) * fluct) / n**2)
                 for k, norm in ((np.pi, 4.0), (2 * np.pi / 3, 9.0)))


def check_window(window, key: str = "correlation_window") -> None:
    """Refuse a block length that is not an integer ≥ 3 (sites); bools are not integers here."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 3:
        raise QepValueError(f"'{key}' must be an integer ≥ 3 (sites), not {window!r}")


def block_weights(n: int, window: int) -> np.ndarray:
    """(N, N) pair weights of the block structure factor, scaled so that the full-chain formula's 1/N² applies:
    N² w_L(j, l)/((N − L + 1) L²), w_L = the number of blocks of L = min(window, N) consecutive sites holding both
    j and l (module docstring). All ones for L = N."""
    check_window(window)
    length = min(int(window), n)
    j = np.arange(n)
    lo, hi = np.minimum.outer(j, j), np.maximum.outer(j, j)
    count = np.clip(np.minimum(lo, n - length) - np.maximum(0, hi - length + 1) + 1, 0, None)
    return count * (n**2 / ((n - length + 1) * length**2))


def chain_correlations_mps(spec: ChainSpec, point, backend) -> tuple[np.ndarray, np.ndarray, dict]:
    """(⟨n_j⟩, ⟨n_j n_l⟩, the state's ``info``) of the chain's DMRG ground state at (Δ/Ω, R_b/a).

    ``backend`` is an ``mps`` backend; it runs in the chain's own site order (``order = "given"``).
    """
    import dataclasses

    from qep_analog.models.pauli import PauliProduct

    n = spec.n_atoms
    backend = dataclasses.replace(backend, order="given", positions_um=None, model=None, gap=False, warm_free=False)
    detuning, spacing = spec.controls(point)
    theta = _couplings(n, spacing, spec.c6)[np.triu_indices(n, 1)]
    state = backend.prepare(chain_hamiltonian(n), theta, np.array([spec.omega, detuning]))
    upper = np.triu_indices(n, 1)
    products = [PauliProduct.parse(f"n{j}", n) for j in range(n)]
    products += [PauliProduct.parse(f"n{j} n{k}", n) for j, k in zip(*upper, strict=True)]
    values = state.expect(products)
    density = values[:n]
    pair = np.diag(density)
    pair[upper] = values[n:]
    pair[upper[1], upper[0]] = values[n:]
    return density, pair, dict(state.info)


def phase_of(m_z2: float, m_z3: float, z2_threshold: float, z3_threshold: float) -> int:
    """Index into :data:`PHASES` from the two order parameters (rule in the module docstring)."""
    if m_z2 >= z2_threshold and m_z2 >= m_z3:
        return 1
    if m_z3 >= z3_threshold and m_z3 > m_z2:
        return 2
    return 0


def chain_order(spec: ChainSpec, points, backend=None) -> np.ndarray:
    """(n, 2) order parameters (m_Z2, m_Z3) of the chain's ground state at each point (Δ/Ω, R_b/a).

    ``spec.ground_states = "mps"``: DMRG ground states of ``backend`` (default: an ``mps`` backend with its
    defaults), through :func:`structure_factors`; ``"exact"``: the full probability vector.
    """
    out = []
    if spec.ground_states == "mps":
        if backend is None:
            from qep_analog.equilibrium.mps import MPSBackend

            backend = MPSBackend()
        for point in np.atleast_2d(points):
            density, pair, _ = chain_correlations_mps(spec, point, backend)
            out.append(structure_factors(density, pair, spec.correlation_window))
        return np.array(out).reshape(-1, 2)
    for point in np.atleast_2d(points):
        detuning, spacing = spec.controls(point)
        probs = chain_ground_probabilities(spec.n_atoms, spec.omega, detuning, spacing, spec.c6)
        out.append(order_parameters(probs, spec.n_atoms, spec.correlation_window))
    return np.array(out).reshape(-1, 2)


def chain_labels(spec: ChainSpec, points, order: np.ndarray | None = None, backend=None) -> np.ndarray:
    """Phase indices (0 disordered, 1 Z2, 2 Z3) of the chain's ground state at each point."""
    order = chain_order(spec, points, backend) if order is None else order
    return np.array([phase_of(a, b, spec.z2_threshold, spec.z3_threshold) for a, b in order], dtype=int)
