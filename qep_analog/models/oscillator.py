"""Quantum harmonic-oscillator network (Scellier 2024, eqs. 19-21), exact via its Gaussian
ground state.

Hamiltonian (1D positions r_i, ħ = 1, masses m_i > 0, trainable spring constants k_e)::

    H(k, x) = Σ_i p_i²/(2 m_i) + ½ Σ_{e=(i,j)} k_e (r_i − r_j)² + ½ Σ_i g_i r_i²

The last sum holds optional *fixed* ground springs g_i ≥ 0 tying node i to the origin
(default 0). ∂H/∂k_e = ½ (r_i − r_j)².

**Clamping by exact elimination.** Input nodes are clamped to the input positions x and
anchor nodes to fixed ``anchor_positions``. A clamped node is a classical, infinitely heavy
mass: its position operator is replaced by the c-number it is clamped to (no zero-point
motion, zero variance). The free nodes f then see the quadratic Hamiltonian

    H_f = Σ_f p_f²/(2 m_f) + ½ r_fᵀ K_ff r_f + r_fᵀ (K_fc x_c) + ½ x_cᵀ K_cc x_c,

with K the full stiffness matrix (graph Laplacian of k plus diag g). No stiff springs and
no approximation.

**Ground state.** H_f is quadratic, so its ground state is a Gaussian: mean μ with
K_ff μ = −K_fc x_c (the linear forces from the clamped nodes) and covariance
Σ = (ħ/2) M^{-1/2} Ω^{-1} M^{-1/2}, Ω = (M^{-1/2} K_ff M^{-1/2})^{1/2}.
The ground energy is E₀ = (ħ/2) tr Ω + min_r V(r). Positions of all free nodes commute,
so one preparation gives one joint sample from N(μ, Σ).

**Nudges** act on the output nodes ℓ as V_nudge = Σ_ℓ [ν_ℓ r_ℓ + ½ κ_ℓ (r_ℓ − c_ℓ)²]
(see :class:`OutputNudge`): a linear force ν only shifts the mean; a spring κ to c also
changes Σ. The cost operator C = Σ_ℓ (r_ℓ − y_ℓ)² nudged with β is the spring κ = 2β
centred at y (Scellier's "nudge springs of constant β" are therefore (β/2) C).

Pitfalls (PHYSICS.md §2): with k ≥ 0 and no ground springs, every free mean is a convex
combination of the clamped positions; without any clamped node (or ground spring) K_ff has
a zero mode, which is refused here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from qep_analog.errors import QepValueError

HBAR = 1.0


def _finite_vector(values, length: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (length,):
        raise QepValueError(f"'{what}' must have {length} values, not {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise QepValueError(f"'{what}' must be finite, not {arr.tolist()}")
    return arr


@dataclass(frozen=True, kw_only=True)
class OutputNudge:
    """Extra potential on the output nodes: V = Σ_ℓ [force_ℓ r_ℓ + ½ spring_ℓ (r_ℓ − centre_ℓ)²].

    ``OutputNudge.linear(ν)`` is the error-signal nudge Σ ν_ℓ r_ℓ; ``OutputNudge.cost(β, y)`` is
    β C with C = Σ (r_ℓ − y_ℓ)², i.e. a spring of constant 2β centred at y (Scellier's "springs
    of constant β" = (β/2) C).
    """

    force: np.ndarray
    spring: np.ndarray
    centre: np.ndarray

    @classmethod
    def linear(cls, force: Sequence[float]) -> OutputNudge:
        f = np.asarray(force, dtype=float).reshape(-1)
        return cls(force=f, spring=np.zeros_like(f), centre=np.zeros_like(f))

    @classmethod
    def cost(cls, beta: float, target: Sequence[float]) -> OutputNudge:
        y = np.asarray(target, dtype=float).reshape(-1)
        return cls(force=np.zeros_like(y), spring=np.full_like(y, 2.0 * float(beta)), centre=y)


@dataclass(frozen=True, kw_only=True, eq=False)
class GaussianState:
    """Gaussian ground state over all nodes (clamped nodes: fixed mean, zero variance).

    ``mean`` and ``covariance`` are indexed by node; ``energy`` is E₀ of H_f + nudge potential;
    ``frequencies`` are the normal-mode frequencies (eigenvalues of Ω, rad per unit time).
    """

    mean: np.ndarray
    covariance: np.ndarray
    energy: float
    frequencies: np.ndarray
    free_nodes: tuple[int, ...]
    factor: np.ndarray = field(repr=False)  # Σ_ff = factor @ factor.T

    def pair_expectations(self, edges: Sequence[tuple[int, int]]) -> np.ndarray:
        """⟨½(r_i − r_j)²⟩ = ½[(μ_i − μ_j)² + Var(r_i − r_j)] for each edge (i, j)."""
        i, j = np.asarray(edges, dtype=int).reshape(-1, 2).T
        c = self.covariance
        diff = self.mean[i] - self.mean[j]
        var = c[i, i] + c[j, j] - 2.0 * c[i, j]
        return 0.5 * (diff**2 + var)

    def sample_positions(self, shots: int, rng: np.random.Generator) -> np.ndarray:
        """``shots`` joint position samples, shape (shots, n_nodes); clamped nodes fixed."""
        if not isinstance(shots, int | np.integer) or shots < 1:
            raise QepValueError(f"'shots' must be an integer ≥ 1, not {shots!r}")
        out = np.tile(self.mean, (int(shots), 1))
        z = rng.standard_normal((int(shots), self.factor.shape[1]))
        out[:, list(self.free_nodes)] += z @ self.factor.T
        return out


@dataclass(frozen=True, kw_only=True)
class OscillatorNetwork:
    """A network of 1D quantum oscillators coupled by trainable springs (see module docstring).

    Nodes ``0..n_nodes-1``; ``edges`` are the trainable springs (i < j), parameter names ``k_i_j``;
    ``input_nodes`` are clamped to the input vector x, ``anchor_nodes`` to ``anchor_positions``;
    ``output_nodes`` are free nodes read out. ``masses`` default to 1, ``ground_springs`` to 0.

    Example::

        net = OscillatorNetwork(n_nodes=3, edges=((0, 2), (1, 2)), input_nodes=(0,),
                                anchor_nodes=(1,), anchor_positions=(0.0,), output_nodes=(2,))
        state = net.ground_state([1.0, 3.0], x=[1.0])   # mean of node 2 = 0.25
    """

    n_nodes: int
    edges: tuple[tuple[int, int], ...]
    input_nodes: tuple[int, ...]
    output_nodes: tuple[int, ...]
    anchor_nodes: tuple[int, ...] = ()
    anchor_positions: tuple[float, ...] = ()
    masses: tuple[float, ...] | None = None
    ground_springs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        n = self.n_nodes
        if not isinstance(n, int) or n < 1:
            raise QepValueError(f"'n_nodes' must be an integer ≥ 1, not {n!r}")
        edges = tuple((min(int(a), int(b)), max(int(a), int(b))) for a, b in self.edges)
        for a, b in edges:
            if a == b or not (0 <= a < n and 0 <= b < n):
                raise QepValueError(
                    f"'edges' must join two distinct nodes in 0..{n - 1}, not ({a}, {b})"
                )
        if len(set(edges)) != len(edges):
            raise QepValueError(f"'edges' must not repeat a pair, not {edges}")
        object.__setattr__(self, "edges", edges)
        for name in ("input_nodes", "output_nodes", "anchor_nodes"):
            nodes = tuple(int(v) for v in getattr(self, name))
            if any(not 0 <= v < n for v in nodes) or len(set(nodes)) != len(nodes):
                raise QepValueError(f"'{name}' must be distinct nodes in 0..{n - 1}, not {nodes}")
            object.__setattr__(self, name, nodes)
        clamped = set(self.input_nodes) | set(self.anchor_nodes)
        if set(self.input_nodes) & set(self.anchor_nodes):
            raise QepValueError("a node cannot be both in 'input_nodes' and 'anchor_nodes'")
        if set(self.output_nodes) & clamped:
            raise QepValueError(
                "'output_nodes' must be free, not clamped: "
                f"{sorted(set(self.output_nodes) & clamped)}"
            )
        if not self.output_nodes:
            raise QepValueError("'output_nodes' must name at least one free node")
        object.__setattr__(
            self,
            "anchor_positions",
            tuple(
                _finite_vector(self.anchor_positions, len(self.anchor_nodes), "anchor_positions")
            ),
        )
        masses = np.ones(n) if self.masses is None else _finite_vector(self.masses, n, "masses")
        if np.any(masses <= 0):
            raise QepValueError(f"'masses' must be > 0, not {masses.tolist()}")
        object.__setattr__(self, "masses", tuple(masses))
        ground = (
            np.zeros(n)
            if self.ground_springs is None
            else _finite_vector(self.ground_springs, n, "ground_springs")
        )
        if np.any(ground < 0):
            raise QepValueError(f"'ground_springs' must be ≥ 0, not {ground.tolist()}")
        object.__setattr__(self, "ground_springs", tuple(ground))

    # ------------------------------------------------------------------ bookkeeping
    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"k_{a}_{b}" for a, b in self.edges)

    @property
    def n_parameters(self) -> int:
        return len(self.edges)

    @property
    def clamped_nodes(self) -> tuple[int, ...]:
        return self.input_nodes + self.anchor_nodes

    @property
    def free_nodes(self) -> tuple[int, ...]:
        clamped = set(self.clamped_nodes)
        return tuple(i for i in range(self.n_nodes) if i not in clamped)

    def theta_vector(self, theta) -> np.ndarray:
        return _finite_vector(theta, self.n_parameters, "theta")

    def clamped_positions(self, x) -> np.ndarray:
        """Positions of ``clamped_nodes`` (inputs x, then anchors)."""
        return np.concatenate(
            [_finite_vector(x, len(self.input_nodes), "x"), self.anchor_positions]
        )

    def edge_matrices(self) -> np.ndarray:
        """∂K/∂k_e for every edge, shape (P, n, n): the Laplacian of edge e alone."""
        out = np.zeros((self.n_parameters, self.n_nodes, self.n_nodes))
        for e, (a, b) in enumerate(self.edges):
            out[e, a, a] = out[e, b, b] = 1.0
            out[e, a, b] = out[e, b, a] = -1.0
        return out

    def stiffness(self, theta) -> np.ndarray:
        """Full stiffness matrix K = Σ_e k_e L_e + diag(ground_springs), shape (n, n)."""
        k = self.theta_vector(theta)
        K = np.diag(np.asarray(self.ground_springs, dtype=float))
        for kv, (a, b) in zip(k, self.edges, strict=True):
            K[a, a] += kv
            K[b, b] += kv
            K[a, b] -= kv
            K[b, a] -= kv
        return K

    def derivative_samples(self, positions: np.ndarray) -> np.ndarray:
        """Per-shot outcomes of ∂H/∂k_e = ½(r_i − r_j)², shape (shots, P)."""
        i, j = np.asarray(self.edges, dtype=int).reshape(-1, 2).T
        return 0.5 * (positions[:, i] - positions[:, j]) ** 2

    # ------------------------------------------------------------------ ground state
    def _output_free_index(self) -> np.ndarray:
        pos = {node: a for a, node in enumerate(self.free_nodes)}
        return np.array([pos[o] for o in self.output_nodes], dtype=int)

    def ground_state(self, theta, x, nudge: OutputNudge | None = None) -> GaussianState:
        """Exact Gaussian ground state of H_f (+ nudge) for springs ``theta`` and inputs ``x``.

        Raises QepValueError if the free block K_ff (+ nudge springs) is not positive definite
        (a zero mode: clamp an anchor or add a ground spring).
        """
        K = self.stiffness(theta)
        xc = self.clamped_positions(x)
        free, clamped = list(self.free_nodes), list(self.clamped_nodes)
        Kff = K[np.ix_(free, free)]
        b = K[np.ix_(free, clamped)] @ xc if clamped else np.zeros(len(free))
        const = 0.5 * xc @ K[np.ix_(clamped, clamped)] @ xc if clamped else 0.0
        if nudge is not None:
            n_out = len(self.output_nodes)
            force = _finite_vector(nudge.force, n_out, "nudge.force")
            spring = _finite_vector(nudge.spring, n_out, "nudge.spring")
            centre = _finite_vector(nudge.centre, n_out, "nudge.centre")
            idx = self._output_free_index()
            Kff = Kff.copy()
            Kff[idx, idx] += spring
            b = b.copy()
            b[idx] += force - spring * centre
            const += 0.5 * float(np.sum(spring * centre**2))
        inv_sqrt_m = 1.0 / np.sqrt(np.asarray(self.masses)[free])
        A = inv_sqrt_m[:, None] * Kff * inv_sqrt_m[None, :]
        w, U = np.linalg.eigh(A)
        scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
        if w.size and w[0] <= 1e-12 * scale:
            raise QepValueError(
                "free stiffness block must be positive definite, smallest eigenvalue "
                f"{w[0]:.3g} ≤ 0 "
                "(zero mode: clamp an anchor node or add ground springs; check the springs 'theta')"
            )
        mu_f = -np.linalg.solve(Kff, b)
        omega = np.sqrt(w)
        factor = inv_sqrt_m[:, None] * U * np.sqrt(0.5 * HBAR / omega)[None, :]
        mean = np.zeros(self.n_nodes)
        mean[clamped] = xc
        mean[free] = mu_f
        cov = np.zeros((self.n_nodes, self.n_nodes))
        cov[np.ix_(free, free)] = factor @ factor.T
        energy = 0.5 * HBAR * float(np.sum(omega)) + const + 0.5 * float(b @ mu_f)
        return GaussianState(
            mean=mean,
            covariance=cov,
            energy=energy,
            frequencies=omega,
            free_nodes=tuple(free),
            factor=factor,
        )

    def output_map(self, theta) -> np.ndarray:
        """Linear map T with ⟨r_out⟩ = T @ clamped_positions(x); rows outputs, cols inputs+anchors.

        Without ground springs and with k ≥ 0, each row is non-negative and sums to 1 (convex hull).
        """
        K = self.stiffness(theta)
        free, clamped = list(self.free_nodes), list(self.clamped_nodes)
        T = -np.linalg.solve(K[np.ix_(free, free)], K[np.ix_(free, clamped)])
        return T[self._output_free_index()]


def layered_network(
    n_inputs: int,
    n_outputs: int,
    *,
    n_hidden: int = 0,
    anchor_positions: Sequence[float] = (0.0,),
    masses: Sequence[float] | None = None,
) -> OscillatorNetwork:
    """Inputs, anchors, hidden and outputs in that node order; a spring between every pair of nodes
    except clamped–clamped pairs (those only add a constant to H)."""
    for name, v in (("n_inputs", n_inputs), ("n_outputs", n_outputs), ("n_hidden", n_hidden)):
        if not isinstance(v, int) or v < (0 if name == "n_hidden" else 1):
            raise QepValueError(
                f"'{name}' must be an integer ≥ {0 if name == 'n_hidden' else 1}, not {v!r}"
            )
    n_anchor = len(anchor_positions)
    n = n_inputs + n_anchor + n_hidden + n_outputs
    n_clamped = n_inputs + n_anchor
    edges = tuple((a, b) for a, b in combinations(range(n), 2) if b >= n_clamped)
    return OscillatorNetwork(
        n_nodes=n,
        edges=edges,
        input_nodes=tuple(range(n_inputs)),
        anchor_nodes=tuple(range(n_inputs, n_clamped)),
        anchor_positions=tuple(float(a) for a in anchor_positions),
        output_nodes=tuple(range(n - n_outputs, n)),
        masses=None if masses is None else tuple(masses),
    )
