"""Spin-network models from the QEP papers, as term lists with roles.

Signs follow ``shared/PHYSICS.md`` §2; every constructor's docstring states its Hamiltonian.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian

PAULIS = ("X", "Y", "Z")


def _check_qubits(qubits: Sequence[int], n: int, field: str) -> list[int]:
    out = [int(q) for q in qubits]
    bad = [q for q in out if not 0 <= q < n]
    if bad:
        raise QepValueError(f"'{field}' has qubit(s) {bad} out of range 0..{n - 1}")
    return out


def transverse_field_ising(
    n_qubits: int,
    *,
    input_qubits: Sequence[int] = (),
    output_qubits: Sequence[int] = (),
    edges: Sequence[tuple[int, int]] | None = None,
    trainable_fields: bool = True,
    transverse_field: float = 1.0,
    trainable_biases: bool = False,
) -> Hamiltonian:
    """Transverse-field Ising network (Scellier 2024, eq. 11) with longitudinal input fields.

        H = −Σ_{(j,k)∈edges} J_jk Z_j Z_k − Σ_k h_k X_k − Σ_{i∈in} x_i Z_i [− Σ_k b_k Z_k]

    so ∂H/∂J_jk = −Z_jZ_k and ∂H/∂h_k = −X_k. The inputs x_i (our extension; eq. 11 has none)
    break the Z₂ symmetry that would otherwise make every ⟨Z⟩ vanish. With
    ``trainable_fields=False`` the fields are fixed at ``transverse_field``. Outputs are
    ``z<q> = Z_q`` on the output qubits.
    """
    input_qubits = _check_qubits(input_qubits, n_qubits, "input_qubits")
    output_qubits = _check_qubits(output_qubits, n_qubits, "output_qubits")
    if edges is None:
        edges = list(combinations(range(n_qubits), 2))
    terms = []
    for j, k in edges:
        _check_qubits((j, k), n_qubits, "edges")
        terms.append(dict(name=f"J_{j}_{k}", operator=f"Z{j} Z{k}", role="trainable",
                          coefficient=-1.0, parameter=f"J_{j}_{k}"))
    for k in range(n_qubits):
        if trainable_fields:
            terms.append(dict(name=f"h_{k}", operator=f"X{k}", role="trainable",
                              coefficient=-1.0, parameter=f"h_{k}"))
        else:
            terms.append(dict(name=f"h_{k}", operator=f"X{k}", coefficient=-transverse_field))
    if trainable_biases:
        for k in range(n_qubits):
            terms.append(dict(name=f"b_{k}", operator=f"Z{k}", role="trainable",
                              coefficient=-1.0, parameter=f"b_{k}"))
    for i, q in enumerate(input_qubits):
        terms.append(dict(name=f"in_{q}", operator=f"Z{q}", role="input",
                          coefficient=-1.0, parameter=f"x{i}"))
    outputs = {f"z{q}": f"Z{q}" for q in output_qubits}
    return Hamiltonian.build(n_qubits, terms, outputs,
                             description="TFIM (Scellier eq. 11) + longitudinal inputs")


def massar_mognetti(
    n_qubits: int,
    *,
    input_qubits: Sequence[int],
    output_qubits: Sequence[int],
    pairs: Sequence[tuple[int, int]] | None = None,
) -> Hamiltonian:
    """XX + ZZ network with Z-field inputs (Massar & Mognetti 2024, eq. 16).

        H = Σ_{i∈in} u_i Z_i + Σ_{i<j} (a_ij X_i X_j + b_ij Z_i Z_j)

    The cost of their eq. 16, (β/2) Σ_{i∈out} (Z_i − d_i)², is the cost operator of
    ``Objective(kind="cost-operator", scale=0.5)`` on outputs ``z<i> = Z_i``; note that ⟨(Z − d)²⟩
    is minimised by ⟨Z⟩ → sign d, not ⟨Z⟩ = d (PHYSICS.md §1).
    """
    input_qubits = _check_qubits(input_qubits, n_qubits, "input_qubits")
    output_qubits = _check_qubits(output_qubits, n_qubits, "output_qubits")
    pairs = list(combinations(range(n_qubits), 2)) if pairs is None else list(pairs)
    terms = []
    for i, q in enumerate(input_qubits):
        terms.append(dict(name=f"u_{q}", operator=f"Z{q}", role="input", parameter=f"u{i}"))
    for i, j in pairs:
        _check_qubits((i, j), n_qubits, "pairs")
        terms.append(dict(name=f"a_{i}_{j}", operator=f"X{i} X{j}", role="trainable", parameter=f"a_{i}_{j}"))
        terms.append(dict(name=f"b_{i}_{j}", operator=f"Z{i} Z{j}", role="trainable", parameter=f"b_{i}_{j}"))
    outputs = {f"z{q}": f"Z{q}" for q in output_qubits}
    return Hamiltonian.build(n_qubits, terms, outputs, description="Massar–Mognetti eq. 16")


# --------------------------------------------------------------------------- phase sensor
PHASES = ("SPT", "FM", "PM")


def cluster_ising_phase(g_zxz: float, g_zz: float, g_x: float) -> str:
    """Exact phase of H = +g_ZXZ ΣZXZ − g_ZZ ΣZZ − g_X ΣX (Liu–Smith–Knap–Pollmann 2023).

    Ferromagnet if g_ZZ > g_X + g_ZXZ; else SPT (cluster) if g_ZXZ > g_X; else paramagnet.
    """
    if g_zz > g_x + g_zxz:
        return "FM"
    if g_zxz > g_x:
        return "SPT"
    return "PM"


def sample_triangle(n_points: int, rng: np.random.Generator, total: float = 4.0) -> np.ndarray:
    """Uniform points (g_ZXZ, g_ZZ, g_X) on the simplex g ≥ 0, Σg = ``total``."""
    return rng.dirichlet(np.ones(3), size=n_points) * total


def phase_targets(points: np.ndarray) -> np.ndarray:
    """One-hot targets over (SPT, FM, PM) for each (g_ZXZ, g_ZZ, g_X) row."""
    out = np.zeros((len(points), 3))
    for i, (a, b, c) in enumerate(points):
        out[i, PHASES.index(cluster_ising_phase(a, b, c))] = 1.0
    return out


def cluster_phase_sensor(
    n_chain: int = 8,
    *,
    coupled_sites: Sequence[int] = (0, 1),
    coupling_paulis: str = "XYZ",
    periodic: bool = True,
) -> Hamiltonian:
    """Cluster-Ising chain with a 2-qubit trainable phase sensor (Wanjura–Marquardt 2024, eq. 6).

        H = +g_ZXZ Σ_j Z_{j−1} X_j Z_{j+1} − g_ZZ Σ_j Z_j Z_{j+1} − g_X Σ_j X_j
            + Σ_{c∈sites, s∈{A,B}, a,b} θ^{ab}_{cs} σ^a_c σ^b_s      (36 system–sensor couplings)
            + Σ_{s, a} θ^a_s σ^a_s + Σ_{a,b} θ^{ab}_{AB} σ^a_A σ^b_B    (6 + 9 sensor terms)

    on a periodic chain of ``n_chain`` sites (qubits 0..n−1) and sensor qubits A = n, B = n + 1:
    51 trainable parameters. The inputs are (g_ZXZ, g_ZZ, g_X). Outputs are projectors on the
    sensor's Z outcomes: SPT = P(+,+), FM = P(+,−), PM = P(−,−), with + meaning Z = +1 (|0⟩).
    ``coupling_paulis="Z"`` gives the Z-only-coupling ablation of the paper.
    """
    if n_chain < 3:
        raise QepValueError(f"'n_chain' must be ≥ 3, not {n_chain}")
    a, b = n_chain, n_chain + 1
    n = n_chain + 2
    bad = [p for p in coupling_paulis if p not in PAULIS]
    if bad or not coupling_paulis:
        raise QepValueError(f"'coupling_paulis' must use letters from XYZ, not {coupling_paulis!r}")
    sites = _check_qubits(coupled_sites, n_chain, "coupled_sites")
    terms = []
    bonds = range(n_chain) if periodic else range(1, n_chain - 1)
    for j in bonds:
        left, right = (j - 1) % n_chain, (j + 1) % n_chain
        terms.append(dict(name=f"zxz_{j}", operator=f"Z{left} X{j} Z{right}", role="input",
                          coefficient=1.0, parameter="g_zxz"))
    for j in range(n_chain if periodic else n_chain - 1):
        terms.append(dict(name=f"zz_{j}", operator=f"Z{j} Z{(j + 1) % n_chain}", role="input",
                          coefficient=-1.0, parameter="g_zz"))
    for j in range(n_chain):
        terms.append(dict(name=f"x_{j}", operator=f"X{j}", role="input", coefficient=-1.0, parameter="g_x"))
    for c in sites:
        for s, label in ((a, "A"), (b, "B")):
            for pa in coupling_paulis:
                for pb in coupling_paulis:
                    name = f"c{c}{pa}_{label}{pb}"
                    terms.append(dict(name=name, operator=f"{pa}{c} {pb}{s}", role="trainable", parameter=name))
    for s, label in ((a, "A"), (b, "B")):
        for p in PAULIS:
            name = f"{label}{p}"
            terms.append(dict(name=name, operator=f"{p}{s}", role="trainable", parameter=name))
    for pa in PAULIS:
        for pb in PAULIS:
            name = f"A{pa}_B{pb}"
            terms.append(dict(name=name, operator=f"{pa}{a} {pb}{b}", role="trainable", parameter=name))
    outputs = {
        "SPT": [[0.25, "I"], [0.25, f"Z{a}"], [0.25, f"Z{b}"], [0.25, f"Z{a} Z{b}"]],
        "FM": [[0.25, "I"], [0.25, f"Z{a}"], [-0.25, f"Z{b}"], [-0.25, f"Z{a} Z{b}"]],
        "PM": [[0.25, "I"], [-0.25, f"Z{a}"], [-0.25, f"Z{b}"], [0.25, f"Z{a} Z{b}"]],
    }
    return Hamiltonian.build(n, terms, outputs, description="cluster-Ising chain + 2-qubit phase sensor")


def cluster_chain_slice(n_chain: int = 10, *, g_zxz: float = -0.5, output: tuple[int, int] = (0, 4)) -> Hamiltonian:
    """Open cluster-Ising chain for the unsupervised tasks (Wanjura–Marquardt, their code).

        H = +g_ZXZ Σ_{j=1}^{n−2} Z_{j−1} X_j Z_{j+1} − g_ZZ Σ_j Z_j Z_{j+1} − g_X Σ_j X_j

    with g_ZXZ fixed (−0.5 by default) and g_X, g_ZZ trainable (either sign). The output is
    X₀X₄ (``xx``).
    """
    terms = []
    for j in range(1, n_chain - 1):
        terms.append(dict(name=f"zxz_{j}", operator=f"Z{j - 1} X{j} Z{j + 1}", coefficient=g_zxz))
    for j in range(n_chain - 1):
        terms.append(dict(name=f"zz_{j}", operator=f"Z{j} Z{j + 1}", role="trainable",
                          coefficient=-1.0, parameter="g_zz"))
    for j in range(n_chain):
        terms.append(dict(name=f"x_{j}", operator=f"X{j}", role="trainable", coefficient=-1.0, parameter="g_x"))
    i, k = _check_qubits(output, n_chain, "output")
    return Hamiltonian.build(n_chain, terms, {"xx": f"X{i} X{k}"},
                             description="open cluster-Ising chain, fixed g_ZXZ")
