"""A matrix-product state (MPS) implementation of the state interface.

    |ψ⟩ = Σ_s A₀^{s₀} A₁^{s₁} ⋯ A_{N−1}^{s_{N−1}} |s⟩,   A_k of shape (χ_{k−1}, 2, χ_k), χ_{−1} = χ_{N−1} = 1

stored *right-canonical* (Σ_s A_k^s A_k^{s†} = 1 for k ≥ 1) and normalised, with MPS site k holding
qubit ``order[k]``. Right-canonical form makes every right environment the identity, so

* ⟨P⟩ of a product on sites k₁ < … < k_m is the trace of the left environment L_{k₁} carried through
  sites k₁…k_m (identity between factors); products sharing a prefix share its transfer matrices, so
  all N(N−1)/2 pair correlations cost O(N² χ³);
* perfect sampling is sequential: p(s_k | s_{<k}) = ‖v A_k^{s_k}‖² with v the normalised left vector
  of the outcomes drawn so far, after the local basis rotation U (H for X, H S† for Y) of each site;
* ⟨a|b⟩ is a transfer-matrix sweep (both states in the same site order).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from qep_analog.equilibrium.base import EquilibriumState, StateKind
from qep_analog.equilibrium.dense import BASIS_ROTATIONS, check_basis, check_shots
from qep_analog.errors import QepValueError
from qep_analog.models.pauli import PauliProduct

OPERATORS = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
    "n": np.array([[0, 0], [0, 1]], dtype=complex),
}
REAL_OPERATORS = {letter: m.real.copy() for letter, m in OPERATORS.items() if letter != "Y"}  # real states stay real
DENSE_LIMIT = 16


def _transfer(env: np.ndarray, a: np.ndarray, op: np.ndarray | None) -> np.ndarray:
    """E'_{cd} = Σ_{ab st} conj(A[a,s,c]) O[s,t] E[a,b] A[b,t,d] (O = identity when ``op`` is None)."""
    tmp = np.tensordot(env, a, axes=(1, 0))  # (a, t, d)
    if op is not None:
        tmp = np.tensordot(op, tmp, axes=(1, 1)).transpose(1, 0, 2)  # (a, s, d)
    return np.tensordot(a.conj(), tmp, axes=([0, 1], [0, 1]))


def _blas_limit(info: dict):
    """BLAS thread limit ``info["blas_threads"]`` (set by the backend) for the contractions of a state's methods:
    they run in the estimator, outside the backend's own limit, and threaded BLAS on a busy 2-core machine made
    the 10×5 ladder's expectation values ~70 CPU s instead of ~2 (measured)."""
    threads = info.get("blas_threads")
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(threads))


@dataclass(frozen=True, kw_only=True)
class MPSState(EquilibriumState):
    """A normalised MPS in right-canonical form (see the module docstring); ``order[k]`` is the qubit
    on site k. ``tensors`` are (χ_left, 2, χ_right) arrays."""

    tensors: tuple[np.ndarray, ...]
    order: tuple[int, ...]
    kind: StateKind = "eigenstate"
    energy: float = float("nan")
    gap: float = float("nan")
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.tensors) != len(self.order) or sorted(self.order) != list(range(len(self.order))):
            raise QepValueError(f"'order' must be a permutation of the {len(self.tensors)} sites, not {self.order}")
        for k, a in enumerate(self.tensors):
            if a.ndim != 3 or a.shape[1] != 2:
                raise QepValueError(f"MPS tensor {k} must have shape (χ_left, 2, χ_right), not {a.shape}")

    # ------------------------------------------------------------------ interface
    @property
    def n_qubits(self) -> int:
        return len(self.tensors)

    @property
    def is_pure(self) -> bool:
        return True

    @property
    def max_bond(self) -> int:
        return max(a.shape[2] for a in self.tensors)

    def _left_environments(self) -> list[np.ndarray]:
        envs = [np.ones((1, 1), dtype=self.tensors[0].dtype)]
        for a in self.tensors[:-1]:
            envs.append(_transfer(envs[-1], a, None))
        return envs

    def expect(self, products: Sequence[PauliProduct]) -> np.ndarray:
        with _blas_limit(self.info):
            return self._expect(tuple(products))

    def _expect(self, products: tuple) -> np.ndarray:
        out = np.empty(len(products))
        if not products:
            return out
        site_of = {q: k for k, q in enumerate(self.order)}
        trie: dict = {}
        for index, p in enumerate(products):
            if p.max_qubit() >= self.n_qubits:
                raise QepValueError(f"'{p}' acts on qubit {p.max_qubit()} but the state has {self.n_qubits} qubits")
            node = trie
            for key in sorted((site_of[q], letter) for q, letter in p.factors):
                node = node.setdefault(key, {})
            node.setdefault(None, []).append(index)
        left = self._left_environments()
        real = not any(np.iscomplexobj(a) for a in self.tensors)  # real arithmetic (4× cheaper) unless Y or complex
        for index in trie.pop(None, []):  # identity products
            out[index] = 1.0
        # depth-first over the trie: each child continues its parent's environment; siblings are visited
        # in site order so that the identity propagation between factors is shared among them
        stack = [(trie, None, -1)]
        while stack:
            node, env, site = stack.pop()
            children = sorted(((k, v) for k, v in node.items() if k is not None), key=lambda kv: kv[0])
            gap_env, gap_site = env, site  # environment after `gap_site`, identity-propagated
            for (k, letter), child in children:
                if gap_env is None:
                    base = left[k]
                else:
                    while gap_site < k - 1:
                        gap_site += 1
                        gap_env = _transfer(gap_env, self.tensors[gap_site], None)
                    base = gap_env
                op = REAL_OPERATORS[letter] if real and letter != "Y" else OPERATORS[letter]
                child_env = _transfer(base, self.tensors[k], op)
                for index in child.get(None, []):
                    out[index] = float(np.real(np.trace(child_env)))
                if any(key is not None for key in child):
                    stack.append((child, child_env, k))
        return out

    def sample(self, basis: str, shots: int, rng: np.random.Generator) -> np.ndarray:
        with _blas_limit(self.info):
            return self._sample(basis, shots, rng)

    def _sample(self, basis: str, shots: int, rng: np.random.Generator) -> np.ndarray:
        shots = check_shots(shots)
        check_basis(basis, self.n_qubits)
        bits = np.empty((shots, self.n_qubits), dtype=np.uint8)
        v = np.ones((shots, 1), dtype=complex)
        rows = np.arange(shots)
        for k, a in enumerate(self.tensors):
            u = BASIS_ROTATIONS[basis[self.order[k]]]
            rotated = np.tensordot(u, a, axes=(1, 1)).transpose(1, 0, 2)  # (χl, s', χr)
            w = np.einsum("ma,asb->msb", v, rotated)
            p = np.einsum("msb,msb->ms", w.conj(), w).real
            p1 = p[:, 1] / np.maximum(p.sum(axis=1), 1e-300)
            outcome = (rng.random(shots) < p1).astype(np.int64)
            bits[:, self.order[k]] = outcome
            chosen = w[rows, outcome]
            v = chosen / np.linalg.norm(chosen, axis=1, keepdims=True)
        return bits

    def overlap(self, other: EquilibriumState) -> float:
        with _blas_limit(self.info):
            return self._overlap(other)

    def _overlap(self, other: EquilibriumState) -> float:
        if not isinstance(other, MPSState):
            raise QepValueError(f"cannot compare an MPS with a {type(other).__name__}")
        if other.order != self.order:
            raise QepValueError("the two MPS use different site orders; compare states of one backend and model")
        env = np.ones((1, 1), dtype=complex)
        for a, b in zip(self.tensors, other.tensors, strict=True):
            env = np.tensordot(a.conj(), np.tensordot(env, b, axes=(1, 0)), axes=([0, 1], [0, 1]))
        return float(abs(env[0, 0]))

    # ------------------------------------------------------------------ extras
    def schmidt_spectra(self) -> list[np.ndarray]:
        """Schmidt coefficients λ at each bond k|k+1 (Σ λ² = 1), by an SVD sweep from the left."""
        spectra = []
        carry = np.ones((1, 1), dtype=complex)
        for a in self.tensors[:-1]:
            m = np.tensordot(carry, a, axes=(1, 0))
            chi_l, d, chi_r = m.shape
            u, s, vh = np.linalg.svd(m.reshape(chi_l * d, chi_r), full_matrices=False)
            spectra.append(s)
            carry = np.diag(s) @ vh
        return spectra

    def to_dense(self) -> np.ndarray:
        """The 2^N vector in the package basis (qubit 0 most significant); small N only (tests)."""
        if self.n_qubits > DENSE_LIMIT:
            raise QepValueError(f"to_dense() is for ≤ {DENSE_LIMIT} qubits, not {self.n_qubits}")
        psi = np.ones((1, 1), dtype=complex)
        for a in self.tensors:
            psi = np.tensordot(psi, a, axes=(psi.ndim - 1, 0))
        psi = psi.reshape((2,) * self.n_qubits)
        # site axes → qubit axes: axis k holds qubit order[k]
        psi = np.moveaxis(psi, list(range(self.n_qubits)), list(self.order))
        return psi.reshape(-1)

    def to_quimb(self):
        """The state as a ``quimb.tensor.MatrixProductState`` over its sites (for warm starts)."""
        import quimb.tensor as qtn

        arrays = [a.transpose(0, 2, 1) for a in self.tensors]  # (χl, χr, p)
        arrays[0] = arrays[0][0]
        arrays[-1] = arrays[-1][:, 0, :] if len(arrays) > 1 else arrays[-1]
        if len(arrays) == 1:
            raise QepValueError("an MPS needs at least 2 sites")
        return qtn.MatrixProductState(arrays, shape="lrp")


def from_quimb(mps, order: Sequence[int], **fields) -> MPSState:
    """A right-canonical, normalised :class:`MPSState` from a quimb MatrixProductState."""
    p = mps
    n = p.L
    tensors = []
    for k in range(n):
        inds = []
        if k > 0:
            inds.append(p.bond(k - 1, k))
        inds.append(p.site_ind(k))
        if k < n - 1:
            inds.append(p.bond(k, k + 1))
        a = np.asarray(p[k].transpose(*inds).data)
        if k == 0:
            a = a[None]
        if k == n - 1:
            a = a[..., None]
        tensors.append(a)
    return MPSState(tensors=right_canonical(tensors), order=tuple(int(q) for q in order), **fields)


def right_canonical(tensors: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The same state with every site k ≥ 1 right-isometric (Σ_s A^s A^{s†} = 1) and unit norm, by an
    LQ sweep from the right (QR of the transposed site matrices)."""
    dtype = np.result_type(float, *tensors)  # real states stay real: DMRG warm starts keep real arithmetic
    out = [np.asarray(a, dtype=dtype) for a in tensors]
    for k in range(len(out) - 1, 0, -1):
        chi_l, d, chi_r = out[k].shape
        q, r = np.linalg.qr(out[k].reshape(chi_l, d * chi_r).T)  # M^T = Q R  →  M = R^T Q^T
        out[k] = q.T.reshape(-1, d, chi_r)
        out[k - 1] = np.tensordot(out[k - 1], r.T, axes=(2, 0))
    out[0] = out[0] / np.linalg.norm(out[0])
    return tuple(out)
