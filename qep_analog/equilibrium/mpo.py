"""Lowering a model to a matrix-product operator (MPO) with quimb, and the MPS site order.

The Hamiltonian's terms (:mod:`qep_analog.models.hamiltonian`) are read directly:

    H(θ, x) + nudge = Σ_t w_t P_t + Σ_j ν_j Q_j + c,   w_t = c_t, c_t θ_{p(t)} or c_t x_{p(t)}

Each Pauli/occupation product becomes one term of ``quimb.operator.SparseOperatorBuilder`` (letters
X, Y, Z, n map to quimb's 'x', 'y', 'z', 'n'; quimb's basis |0⟩, |1⟩ with Z|0⟩ = +|0⟩ and n = |1⟩⟨1|
is ours), ``build_mpo()`` gives the finite-state-machine MPO (bond ≈ number of open pair
terms, 51 for a 50-atom 1/r⁶ chain) and ``compress`` reduces it (to ~5–10 for 1/r⁶ tails),
which is what makes DMRG fast. Constants are kept aside (they shift energies only).

MPS site k holds qubit ``order[k]``. For 2D registers the order is a snake path: sites are sorted
along the register's longer axis into columns, and alternate columns are read in reverse, so that
neighbours in space stay close in the chain. Without positions, the order comes from the Fiedler
vector of the coupling graph (weights |w_t| of multi-qubit terms), which finds the same long axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliProduct, PauliSum

_LETTER = {"X": "x", "Y": "y", "Z": "z", "n": "n"}


def term_weights(hamiltonian: Hamiltonian, theta, x) -> np.ndarray:
    """w_t of every term (c_t, c_t θ_{p(t)} or c_t x_{p(t)}) without any 2^N structure."""
    theta = hamiltonian.theta_vector(theta)
    xv = hamiltonian.input_vector(x)
    tidx = {name: i for i, name in enumerate(hamiltonian.parameter_names)}
    xidx = {name: i for i, name in enumerate(hamiltonian.input_names)}
    w = np.empty(len(hamiltonian.terms))
    for k, t in enumerate(hamiltonian.terms):
        if t.role == "trainable":
            w[k] = t.coefficient * theta[tidx[t.parameter]]
        elif t.role == "input":
            w[k] = t.coefficient * xv[xidx[t.parameter]]
        else:
            w[k] = t.coefficient
    return w


def snake_order(positions_um: np.ndarray, tol_um: float = 1e-3) -> list[int]:
    """Qubit order along a snake path: columns along the longer axis, alternate columns reversed.

    A chain (all positions on one line, or one atom per column) comes out sorted along its axis.
    """
    pos = np.asarray(positions_um, dtype=float)[:, :2]
    extent = pos.max(axis=0) - pos.min(axis=0)
    long_axis = int(np.argmax(extent))
    along, across = pos[:, long_axis], pos[:, 1 - long_axis]
    columns = np.round((along - along.min()) / max(tol_um, 1e-12)).astype(np.int64)
    # group positions whose coordinate along the long axis agrees within tol (a column of the lattice)
    keys = np.unique(columns)
    order: list[int] = []
    for c, key in enumerate(keys):
        members = np.flatnonzero(columns == key)
        members = members[np.argsort(across[members], kind="stable")]
        order.extend((members[::-1] if c % 2 else members).tolist())
    return order


def fiedler_order(hamiltonian: Hamiltonian, weights: np.ndarray) -> list[int]:
    """Qubit order by the Fiedler vector of the coupling graph (|w_t| summed over each pair of qubits
    that a multi-qubit term touches); the identity order when there are no couplings."""
    n = hamiltonian.n_qubits
    adjacency = np.zeros((n, n))
    for t, w in zip(hamiltonian.terms, weights, strict=True):
        q = t.operator.qubits
        for a in range(len(q)):
            for b in range(a + 1, len(q)):
                adjacency[q[a], q[b]] += abs(w)
                adjacency[q[b], q[a]] += abs(w)
    if n < 3 or not adjacency.any():
        return list(range(n))
    laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
    _, vectors = np.linalg.eigh(laplacian)
    fiedler = vectors[:, 1]
    if fiedler[0] > fiedler[-1]:  # a reproducible orientation
        fiedler = -fiedler
    return np.argsort(fiedler, kind="stable").tolist()


def check_order(order: Sequence[int], n_qubits: int) -> list[int]:
    order = [int(q) for q in order]
    if sorted(order) != list(range(n_qubits)):
        raise QepValueError(f"'order' must be a permutation of 0..{n_qubits - 1}, not {order}")
    return order


def build_mpo(terms: Sequence[tuple[float, PauliProduct]], n_qubits: int, order: Sequence[int], *,
              compress_cutoff: float):
    """Compressed quimb MPO of Σ w P over the MPS sites (site k = qubit ``order[k]``).

    ``compress_cutoff`` is quimb's relative singular-value cutoff for the MPO compression
    (``cutoff_mode="rel"``); 0 leaves the MPO uncompressed.
    """
    import quimb.operator as qo

    site_of = {q: k for k, q in enumerate(order)}
    builder = qo.SparseOperatorBuilder(hilbert_space=qo.HilbertSpace(n_qubits))
    count = 0
    for w, p in terms:
        if w == 0.0 or not p.factors:
            continue
        builder.add_term(float(w), *[(_LETTER[letter], site_of[q]) for q, letter in p.factors])
        count += 1
    if count == 0:
        raise QepValueError("the model has no non-zero term to lower to an MPO")
    mpo = builder.build_mpo()
    if compress_cutoff > 0:
        mpo.compress(cutoff=compress_cutoff, cutoff_mode="rel")
    return mpo


def model_terms(hamiltonian: Hamiltonian, weights: np.ndarray, nudge: PauliSum | None = None, *,
                model: bool = True) -> tuple[list[tuple[float, PauliProduct]], float]:
    """(list of (w, P), constant) of H(θ, x) + nudge, or of the nudge alone with ``model=False``."""
    terms = [(float(w), t.operator) for t, w in zip(hamiltonian.terms, weights, strict=True)] if model else []
    constant = 0.0
    if nudge is not None:
        for _, p in nudge.terms:
            if p.max_qubit() >= hamiltonian.n_qubits:
                raise QepValueError(f"nudge term '{p}' acts on qubit {p.max_qubit()} but the model has "
                                    f"{hamiltonian.n_qubits} qubits")
        terms += [(float(c), p) for c, p in nudge.terms]
        constant += nudge.constant
    # identity products (a term written "I") are constants too
    constant += sum(w for w, p in terms if not p.factors)
    return [(w, p) for w, p in terms if p.factors], constant
