"""Pauli strings over X, Y, Z and the Rydberg occupation n = (1 − Z)/2 = |1⟩⟨1|.

Conventions (used everywhere in qep_analog):

* computational basis |0⟩ = |g⟩, |1⟩ = |r⟩; Z|0⟩ = +|0⟩, so n = (1 − Z)/2 counts Rydberg atoms;
* qubit 0 is the *leftmost* character of a bitstring and the most significant bit of a
  state-vector index: index = int(bitstring, 2);
* a product is written with explicit indices, e.g. ``"Z0 Z1"``, ``"X3"``, ``"n2 n5"``;
  ``""`` or ``"I"`` is the identity.

Every product has exactly one nonzero entry per column, P[i ^ xmask, i] = value(i), which
lets us build sparse matrices and expectation values with integer bit tricks only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from qep_analog.errors import QepValueError

LETTERS = ("X", "Y", "Z", "n")
DENSE_MAX_QUBITS = 24
_TOKEN = re.compile(r"^([A-Za-z]+)(\d+)$")


@dataclass(frozen=True)
class PauliProduct:
    """A product of single-qubit factors, e.g. ``PauliProduct.parse("Z0 X2")``.

    ``factors`` is a tuple of ``(qubit, letter)`` sorted by qubit, letters in X, Y, Z, n.
    """

    factors: tuple[tuple[int, str], ...]

    @classmethod
    def parse(cls, text: str, n_qubits: int | None = None) -> PauliProduct:
        """Parse ``"Z0 Z1"``-style text; raise naming the bad token or the qubit out of range."""
        if not isinstance(text, str):
            raise QepValueError(f"a Pauli string must be text like 'Z0 Z1', not {text!r}")
        tokens = text.replace("*", " ").split()
        factors: dict[int, str] = {}
        for token in tokens:
            if token == "I":
                continue
            match = _TOKEN.match(token)
            if match is None:
                raise QepValueError(
                    f"cannot read Pauli token {token!r} in {text!r}: expected a letter "
                    f"among X, Y, Z, n followed by a qubit index, e.g. 'Z3'"
                )
            letter, index = match.group(1), int(match.group(2))
            if letter not in LETTERS:
                raise QepValueError(
                    f"unknown Pauli letter {letter!r} in {text!r}: use X, Y, Z or n"
                )
            if n_qubits is not None and not 0 <= index < n_qubits:
                raise QepValueError(
                    f"qubit index {index} in {text!r} is out of range for {n_qubits} qubits "
                    f"(0..{n_qubits - 1})"
                )
            if index in factors:
                raise QepValueError(f"qubit {index} appears twice in {text!r}")
            factors[index] = letter
        return cls(tuple(sorted(factors.items())))

    def __str__(self) -> str:
        return " ".join(f"{letter}{q}" for q, letter in self.factors) or "I"

    @property
    def qubits(self) -> tuple[int, ...]:
        return tuple(q for q, _ in self.factors)

    @property
    def is_diagonal(self) -> bool:
        return all(letter in ("Z", "n") for _, letter in self.factors)

    @property
    def basis(self) -> dict[int, str]:
        """Measurement basis needed per qubit: X, Y or Z (n is read in Z)."""
        return {q: ("Z" if letter == "n" else letter) for q, letter in self.factors}

    @property
    def is_real(self) -> bool:
        """True when the matrix is real (an even number of Y factors)."""
        return sum(letter == "Y" for _, letter in self.factors) % 2 == 0

    def max_qubit(self) -> int:
        return max(self.qubits, default=-1)

    def xmask(self, n_qubits: int) -> int:
        mask = 0
        for q, letter in self.factors:
            if letter in ("X", "Y"):
                mask |= 1 << (n_qubits - 1 - q)
        return mask

    def column_values(self, n_qubits: int) -> np.ndarray:
        """value(i) such that P|i⟩ = value(i) |i ^ xmask⟩ for every basis index i."""
        index = np.arange(2**n_qubits, dtype=np.int64)
        values = np.ones(2**n_qubits, dtype=complex)
        for q, letter in self.factors:
            bit = (index >> (n_qubits - 1 - q)) & 1
            if letter == "Z":
                values *= 1 - 2 * bit
            elif letter == "n":
                values *= bit
            elif letter == "Y":
                values *= 1j * (1 - 2 * bit)
        return values.real.copy() if self.is_real else values

    def outcome_values(self, bits: np.ndarray) -> np.ndarray:
        """Eigenvalue of this product for bitstrings measured in its basis.

        ``bits`` has shape (shots, n_qubits) with entries 0/1 (1 = outcome −1 for X, Y, Z,
        and occupation 1 for n).
        """
        values = np.ones(bits.shape[0])
        for q, letter in self.factors:
            b = bits[:, q].astype(float)
            values = values * (b if letter == "n" else 1 - 2 * b)
        return values

    def matrix(self, n_qubits: int) -> sp.csr_matrix:
        """Sparse matrix on ``n_qubits`` qubits (cached; treat as read-only)."""
        if self.max_qubit() >= n_qubits:
            raise QepValueError(
                f"'{self}' acts on qubit {self.max_qubit()} but the system has {n_qubits} qubits"
            )
        return _product_matrix(self, n_qubits)


@lru_cache(maxsize=4096)
def _diagonal_values(product: PauliProduct, n_qubits: int) -> np.ndarray:
    values = product.column_values(n_qubits).real
    values.setflags(write=False)
    return values


@lru_cache(maxsize=4096)
def _product_matrix(product: PauliProduct, n_qubits: int) -> sp.csr_matrix:
    dim = 2**n_qubits
    cols = np.arange(dim)
    rows = cols ^ product.xmask(n_qubits)
    return sp.csr_matrix((product.column_values(n_qubits), (rows, cols)), shape=(dim, dim))


@dataclass(frozen=True)
class PauliSum:
    """A real linear combination Σ c_j P_j + c₀ of Pauli products (an observable)."""

    terms: tuple[tuple[float, PauliProduct], ...]
    constant: float = 0.0

    @classmethod
    def from_spec(cls, spec: str | Sequence, n_qubits: int | None = None) -> PauliSum:
        """From ``"Z0 Z1"`` or a list of ``[coefficient, "Z0 Z1"]`` pairs (``"I"`` is a constant)."""
        if isinstance(spec, str):
            return cls(((1.0, PauliProduct.parse(spec, n_qubits)),))
        terms = []
        constant = 0.0
        for item in spec:
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise QepValueError(
                    f"an observable term must be [coefficient, 'Pauli string'], not {item!r}"
                )
            coefficient = check_finite(item[0], "observable coefficient")
            product = PauliProduct.parse(item[1], n_qubits)
            if not product.factors:
                constant += coefficient
            else:
                terms.append((coefficient, product))
        return cls(tuple(terms), constant)

    def __str__(self) -> str:
        parts = [f"{c:+g} {p}" for c, p in self.terms]
        if self.constant:
            parts.append(f"{self.constant:+g}")
        return " ".join(parts) or "0"

    @property
    def products(self) -> tuple[PauliProduct, ...]:
        return tuple(p for _, p in self.terms)

    @property
    def coefficients(self) -> np.ndarray:
        return np.array([c for c, _ in self.terms], dtype=float)

    @property
    def is_diagonal(self) -> bool:
        return all(p.is_diagonal for p in self.products)

    def diagonal(self, n_qubits: int) -> np.ndarray:
        """The diagonal of a diagonal (Z/n-only) sum as a real vector."""
        if not self.is_diagonal:
            raise QepValueError(f"'{self}' is not diagonal in the computational basis")
        diagonal = np.full(2**n_qubits, self.constant, dtype=float)
        for c, p in self.terms:
            if p.max_qubit() >= n_qubits:
                raise QepValueError(f"'{p}' acts on qubit {p.max_qubit()} but the system has {n_qubits} qubits")
            diagonal += c * _diagonal_values(p, n_qubits)
        return diagonal

    def matrix(self, n_qubits: int) -> sp.csr_matrix:
        if self.is_diagonal:  # fast path for costs and nudges on Z/n outputs
            return sp.diags_array(self.diagonal(n_qubits), format="csr")
        dim = 2**n_qubits
        out = sp.identity(dim, format="csr") * self.constant
        for c, p in self.terms:
            out = out + c * p.matrix(n_qubits)
        return out.tocsr()

    def scaled(self, factor: float) -> PauliSum:
        return PauliSum(tuple((factor * c, p) for c, p in self.terms), factor * self.constant)


def check_finite(value: object, field: str) -> float:
    """Return ``value`` as a float, raising a :class:`QepValueError` naming ``field`` otherwise."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise QepValueError(f"'{field}' must be a real number, not {value!r}") from None
    if not np.isfinite(number):
        raise QepValueError(f"'{field}' must be finite, not {number}")
    return number


class ProductTable:
    """Fast expectation values of many Pauli products on one register.

    Precomputes, for every product, its flip mask and column values, so that
    ⟨ψ|P|ψ⟩ = Σ_i conj(ψ[i ^ x]) value(i) ψ[i] is a vectorised gather.
    """

    def __init__(self, products: Iterable[PauliProduct], n_qubits: int):
        if n_qubits > DENSE_MAX_QUBITS:
            raise QepValueError(f"a dense (2^N) lowering needs n_qubits ≤ {DENSE_MAX_QUBITS}, not {n_qubits}; "
                                f"use a matrix-product backend ('mps') for larger models")
        self.products = tuple(products)
        self.n_qubits = n_qubits
        self.xmasks = np.array([p.xmask(n_qubits) for p in self.products], dtype=np.int64)
        self.is_real = all(p.is_real for p in self.products)
        dtype = float if self.is_real else complex
        dim = 2**n_qubits
        self.values = np.empty((len(self.products), dim), dtype=dtype)
        for k, p in enumerate(self.products):
            self.values[k] = p.column_values(n_qubits)
        self._index = np.arange(dim, dtype=np.int64)
        self._groups: dict[int, np.ndarray] = {}
        for x in np.unique(self.xmasks):
            self._groups[int(x)] = np.flatnonzero(self.xmasks == x)

    def expect(self, state: np.ndarray) -> np.ndarray:
        """⟨P_k⟩ for a normalised state vector, or Tr(ρ P_k) for a density matrix."""
        out = np.empty(len(self.products))
        if state.ndim == 1:
            for x, rows in self._groups.items():
                flipped = state[self._index ^ x].conj() * state
                out[rows] = (self.values[rows] @ flipped).real
        else:
            for x, rows in self._groups.items():
                column = state[self._index, self._index ^ x]
                out[rows] = (self.values[rows] @ column).real
        return out


_PAULI_TABLE = {  # (a, b) -> (phase, letter) with a·b = phase · letter
    ("X", "X"): (1, "I"), ("Y", "Y"): (1, "I"), ("Z", "Z"): (1, "I"),
    ("X", "Y"): (1j, "Z"), ("Y", "X"): (-1j, "Z"),
    ("Y", "Z"): (1j, "X"), ("Z", "Y"): (-1j, "X"),
    ("Z", "X"): (1j, "Y"), ("X", "Z"): (-1j, "Y"),
}


def _expand_occupations(term: tuple[float, PauliProduct]) -> list[tuple[complex, dict[int, str]]]:
    """Rewrite n = (I − Z)/2 so that a product holds X, Y, Z letters only."""
    coefficient, product = term
    expanded: list[tuple[complex, dict[int, str]]] = [(complex(coefficient), {})]
    for q, letter in product.factors:
        if letter == "n":
            nxt = []
            for c, f in expanded:
                nxt.append((c / 2, dict(f)))
                nxt.append((-c / 2, {**f, q: "Z"}))
            expanded = nxt
        else:
            expanded = [(c, {**f, q: letter}) for c, f in expanded]
    return expanded


def _product(a: PauliSum, b: PauliSum) -> dict[tuple[tuple[int, str], ...], complex]:
    """Coefficients of a·b keyed by X/Y/Z factors (occupations expanded as n = (I − Z)/2)."""
    left = [(complex(a.constant), {})] + [e for t in a.terms for e in _expand_occupations(t)]
    right = [(complex(b.constant), {})] + [e for t in b.terms for e in _expand_occupations(t)]
    acc: dict[tuple[tuple[int, str], ...], complex] = {}
    for ca, fa in left:
        for cb, fb in right:
            c = ca * cb
            letters = dict(fa)
            for q, lb in fb.items():
                la = letters.pop(q, None)
                if la is None:
                    letters[q] = lb
                else:
                    phase, out = _PAULI_TABLE[(la, lb)]
                    c *= phase
                    if out != "I":
                        letters[q] = out
            key = tuple(sorted(letters.items()))
            acc[key] = acc.get(key, 0) + c
    return acc


def anticommutator(a: PauliSum, b: PauliSum, tol: float = 1e-14) -> PauliSum:
    """{a, b} = a·b + b·a, Hermitian for Hermitian a, b (so ``square(a) = ½{a, a}``)."""
    ab, ba = _product(a, b), _product(b, a)
    acc = {k: ab.get(k, 0) + ba.get(k, 0) for k in set(ab) | set(ba)}
    if any(abs(c.imag) > 1e-9 for c in acc.values()):
        raise QepValueError("the anticommutator of these observables is not Hermitian")
    constant = acc.pop((), 0).real
    terms = tuple((c.real, PauliProduct(k)) for k, c in acc.items() if abs(c) > tol)
    return PauliSum(terms, constant)


def add(*sums: PauliSum) -> PauliSum:
    """Sum of Pauli sums, merging equal products."""
    acc: dict[PauliProduct, float] = {}
    constant = 0.0
    for s in sums:
        constant += s.constant
        for c, p in s.terms:
            acc[p] = acc.get(p, 0.0) + c
    return PauliSum(tuple((c, p) for p, c in acc.items() if c != 0.0), constant)


def square(a: PauliSum) -> PauliSum:
    """a² for a Hermitian Pauli sum, e.g. the cost operator (O − t)²."""
    return anticommutator(a, a).scaled(0.5)
