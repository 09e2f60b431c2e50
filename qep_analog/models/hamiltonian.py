"""Hamiltonians declared once as named terms with roles, lowered to sparse matrices on demand.

    H(θ, x) = Σ_fixed c_t P_t + Σ_input c_t x_{p(t)} P_t + Σ_trainable c_t θ_{p(t)} P_t

Each term is a Pauli product ``P_t`` (see :mod:`qep_analog.models.pauli`) with a real
coefficient ``c_t``; input and trainable terms also name the parameter that multiplies them.
Several terms may share one parameter, so ∂H/∂θ_k = Σ_{t: p(t)=k} c_t P_t.
Outputs are observables O_ℓ (Pauli sums) read out to form the cost; they are not part of H.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from qep_analog.errors import QepValueError
from qep_analog.models.pauli import PauliProduct, PauliSum, ProductTable, check_finite

Role = Literal["fixed", "input", "trainable"]
ROLES: tuple[str, ...] = ("fixed", "input", "trainable")
MAX_QUBITS = 1024  # declared models; dense lowering stops at DENSE_MAX_QUBITS (models.pauli)


@dataclass(frozen=True, kw_only=True)
class Term:
    """One named term c · [parameter] · P of a Hamiltonian."""

    name: str
    operator: PauliProduct
    role: Role = "fixed"
    coefficient: float = 1.0
    parameter: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise QepValueError(f"term '{self.name}': 'role' must be one of {ROLES}, not {self.role!r}")
        object.__setattr__(self, "coefficient", check_finite(self.coefficient, f"{self.name}.coefficient"))
        if self.role == "fixed" and self.parameter is not None:
            raise QepValueError(f"term '{self.name}': a fixed term takes no 'parameter'")
        if self.role != "fixed" and not self.parameter:
            raise QepValueError(f"term '{self.name}': a {self.role} term needs a 'parameter' name")


@dataclass(frozen=True, kw_only=True)
class Output:
    """A named output observable O_ℓ (a Pauli sum), read out to form the cost."""

    name: str
    observable: PauliSum


@dataclass(frozen=True, kw_only=True)
class Hamiltonian:
    """A model: ``n_qubits``, its ``terms`` and its ``outputs``.

    Example::

        h = Hamiltonian.build(2, [
            dict(name="J01", operator="Z0 Z1", role="trainable", coefficient=-1, parameter="J01"),
            dict(name="hx", operator="X0", coefficient=-0.5),
        ], outputs={"z1": "Z1"})
        H = h.matrix(theta=[0.3])
    """

    n_qubits: int
    terms: tuple[Term, ...]
    outputs: tuple[Output, ...] = ()
    description: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n_qubits, int) or not 1 <= self.n_qubits <= MAX_QUBITS:
            raise QepValueError(f"'n_qubits' must be an integer in 1..{MAX_QUBITS}, not {self.n_qubits!r}")
        names = [t.name for t in self.terms] + [o.name for o in self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise QepValueError(f"term/output names must be unique; repeated: {duplicates}")
        for t in self.terms:
            if t.operator.max_qubit() >= self.n_qubits:
                raise QepValueError(
                    f"term '{t.name}' acts on qubit {t.operator.max_qubit()} but 'n_qubits' is {self.n_qubits}"
                )
        for o in self.outputs:
            for p in o.observable.products:
                if p.max_qubit() >= self.n_qubits:
                    raise QepValueError(
                        f"output '{o.name}' acts on qubit {p.max_qubit()} but 'n_qubits' is {self.n_qubits}"
                    )
        shared = set(self.parameter_names) & set(self.input_names)
        if shared:
            raise QepValueError(f"names used both as trainable and input parameters: {sorted(shared)}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        n_qubits: int,
        terms: Sequence[Mapping],
        outputs: Mapping[str, str | Sequence] | None = None,
        description: str = "",
    ) -> Hamiltonian:
        """Build from plain dicts (as read from a protocol file)."""
        allowed = {"name", "operator", "role", "coefficient", "parameter"}
        built = []
        for k, spec in enumerate(terms):
            unknown = set(spec) - allowed
            if unknown:
                raise QepValueError(f"term {k}: unknown key(s) {sorted(unknown)}; allowed {sorted(allowed)}")
            if "operator" not in spec:
                raise QepValueError(f"term {k}: missing key 'operator'")
            built.append(
                Term(
                    name=str(spec.get("name", f"t{k}")),
                    operator=PauliProduct.parse(spec["operator"], n_qubits),
                    role=spec.get("role", "fixed"),
                    coefficient=spec.get("coefficient", 1.0),
                    parameter=spec.get("parameter"),
                )
            )
        outs = tuple(
            Output(name=name, observable=PauliSum.from_spec(obs, n_qubits))
            for name, obs in (outputs or {}).items()
        )
        return cls(n_qubits=n_qubits, terms=tuple(built), outputs=outs, description=description)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def dim(self) -> int:
        return 2**self.n_qubits

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Trainable parameter names θ_k, in order of first appearance."""
        return tuple(dict.fromkeys(t.parameter for t in self.terms if t.role == "trainable"))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.parameter for t in self.terms if t.role == "input"))

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def is_real(self) -> bool:
        return all(t.operator.is_real for t in self.terms)

    def _vector(self, values, names: tuple[str, ...], what: str) -> np.ndarray:
        if values is None:
            values = np.zeros(len(names))
        if isinstance(values, Mapping):
            missing = [n for n in names if n not in values]
            extra = [k for k in values if k not in names]
            if missing or extra:
                raise QepValueError(f"{what}: missing {missing}, unknown {extra}")
            values = [values[n] for n in names]
        arr = np.asarray(values, dtype=float).reshape(-1)
        if arr.shape != (len(names),):
            raise QepValueError(f"{what} must have {len(names)} values, not {arr.size}")
        if not np.all(np.isfinite(arr)):
            bad = [names[i] for i in np.flatnonzero(~np.isfinite(arr))]
            raise QepValueError(f"{what} must be finite; not finite: {bad}")
        return arr

    def theta_vector(self, theta) -> np.ndarray:
        return self._vector(theta, self.parameter_names, "'theta'")

    def input_vector(self, x) -> np.ndarray:
        return self._vector(x, self.input_names, "'inputs'")

    # ------------------------------------------------------------------ lowering
    @property
    def _structure(self) -> dict:
        """Fixed sparse structure shared by H(θ, x) for every θ, x (cached)."""
        if "structure" not in self._cache:
            n = self.n_qubits
            table = ProductTable([t.operator for t in self.terms], n)
            masks = sorted({int(x) for x in table.xmasks} | {0})
            dim = self.dim
            cols = np.tile(np.arange(dim), len(masks))
            rows = np.concatenate([np.arange(dim) ^ x for x in masks])
            order = np.arange(rows.size, dtype=float) + 1.0
            pattern = sp.csr_matrix((order, (rows, cols)), shape=(dim, dim))
            perm = pattern.data.astype(np.int64) - 1
            mask_slot = {x: i for i, x in enumerate(masks)}
            term_slot = np.array([mask_slot[int(x)] for x in table.xmasks], dtype=np.int64)
            theta_index = {name: i for i, name in enumerate(self.parameter_names)}
            input_index = {name: i for i, name in enumerate(self.input_names)}
            self._cache["structure"] = dict(
                table=table, masks=masks, perm=perm, indices=pattern.indices.copy(),
                indptr=pattern.indptr.copy(), term_slot=term_slot,
                coefficient=np.array([t.coefficient for t in self.terms]),
                role=np.array([t.role for t in self.terms]),
                theta_of=np.array([theta_index.get(t.parameter, -1) if t.role == "trainable" else -1
                                   for t in self.terms]),
                input_of=np.array([input_index.get(t.parameter, -1) if t.role == "input" else -1
                                   for t in self.terms]),
            )
        return self._cache["structure"]

    def term_weights(self, theta=None, x=None) -> np.ndarray:
        """Effective weight of every term: c_t, c_t θ_{p(t)} or c_t x_{p(t)}."""
        s = self._structure
        theta = self.theta_vector(theta)
        x = self.input_vector(x)
        w = s["coefficient"].copy()
        tr = s["theta_of"] >= 0
        w[tr] *= theta[s["theta_of"][tr]]
        inp = s["input_of"] >= 0
        w[inp] *= x[s["input_of"][inp]]
        return w

    def matrix(self, theta=None, x=None, extra: sp.spmatrix | None = None,
               extra_diagonal: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse H(θ, x) (+ ``extra``, e.g. a nudge; + a diagonal ``extra_diagonal``, added on the
        cached structure without a sparse sum), built on a cached structure."""
        return self.matrix_from_weights(self.term_weights(theta, x), extra, extra_diagonal)

    def matrix_from_weights(self, weights: np.ndarray, extra: sp.spmatrix | None = None,
                            extra_diagonal: np.ndarray | None = None) -> sp.csr_matrix:
        s = self._structure
        table: ProductTable = s["table"]
        dtype = float if self.is_real else complex
        # one (masks × terms) @ (terms × dim) product gathers every term onto its flip pattern
        selector = np.zeros((len(s["masks"]), len(weights)))
        selector[s["term_slot"], np.arange(len(weights))] = weights
        diag = (selector @ table.values).astype(dtype, copy=False)
        if extra_diagonal is not None:  # masks are sorted: slot 0 is the diagonal (mask 0)
            diag[0] += np.asarray(extra_diagonal, dtype=float).reshape(self.dim)
        data = diag.reshape(-1)[s["perm"]]
        h = sp.csr_matrix((data, s["indices"], s["indptr"]), shape=(self.dim, self.dim))
        if extra is not None:
            h = (h + extra).tocsr()
        return h

    def mask_operator(self, theta=None, x=None, extra_diagonal: np.ndarray | None = None):
        """H(θ, x) (+ a diagonal) as a :class:`~qep_analog.equilibrium.lanczos.MaskOperator`:
        (H v)[i] = Σ_k rows[i, k] v[i ^ masks[k]], what the compiled Lanczos applies fastest."""
        from qep_analog.equilibrium.lanczos import MaskOperator

        s = self._structure
        weights = self.term_weights(theta, x)
        selector = np.zeros((len(s["masks"]), len(weights)))
        selector[s["term_slot"], np.arange(len(weights))] = weights
        # column form H[r ^ x_k, r] = D[k, r]; Hermiticity turns it into the row form H[i, i ^ x_k] = conj D[k, i]
        columns = selector @ s["table"].values
        if extra_diagonal is not None:
            columns = columns.astype(np.result_type(columns.dtype, float), copy=False)
            columns[0] += np.asarray(extra_diagonal, dtype=float).reshape(self.dim)
        rows = np.ascontiguousarray(columns.conj().T)
        return MaskOperator(masks=np.asarray(s["masks"], dtype=np.int64), rows=rows)

    def dense(self, theta=None, x=None) -> np.ndarray:
        return self.matrix(theta, x).toarray()

    def derivative(self, name: str) -> PauliSum:
        """∂H/∂θ_name as a Pauli sum."""
        if name not in self.parameter_names:
            raise QepValueError(f"unknown trainable parameter {name!r}; known: {list(self.parameter_names)}")
        return PauliSum(
            tuple((t.coefficient, t.operator) for t in self.terms if t.role == "trainable" and t.parameter == name)
        )

    @property
    def derivative_map(self) -> tuple[ProductTable, np.ndarray]:
        """(table of distinct trainable products, K × P coefficient matrix) so ⟨∂H/∂θ⟩ = M @ ⟨P⟩."""
        if "derivative_map" not in self._cache:
            products = tuple(dict.fromkeys(t.operator for t in self.terms if t.role == "trainable"))
            index = {p: i for i, p in enumerate(products)}
            pidx = {name: i for i, name in enumerate(self.parameter_names)}
            m = np.zeros((len(self.parameter_names), len(products)))
            for t in self.terms:
                if t.role == "trainable":
                    m[pidx[t.parameter], index[t.operator]] += t.coefficient
            self._cache["derivative_map"] = (ProductTable(products, self.n_qubits), m)
        return self._cache["derivative_map"]

    def derivative_expectations(self, state: np.ndarray) -> np.ndarray:
        """⟨∂H/∂θ_k⟩ for every trainable parameter, from a state vector or density matrix."""
        table, m = self.derivative_map
        return m @ table.expect(state)

    def output(self, name: str) -> PauliSum:
        for o in self.outputs:
            if o.name == name:
                return o.observable
        raise QepValueError(f"unknown output {name!r}; known: {list(self.output_names)}")

    def output_expectations(self, state: np.ndarray) -> np.ndarray:
        """⟨O_ℓ⟩ for every output, from a state vector or density matrix."""
        if "output_table" not in self._cache:
            products = tuple(dict.fromkeys(p for o in self.outputs for p in o.observable.products))
            index = {p: i for i, p in enumerate(products)}
            m = np.zeros((len(self.outputs), len(products)))
            const = np.zeros(len(self.outputs))
            for ell, o in enumerate(self.outputs):
                const[ell] = o.observable.constant
                for c, p in o.observable.terms:
                    m[ell, index[p]] += c
            self._cache["output_table"] = (ProductTable(products, self.n_qubits), m, const)
        table, m, const = self._cache["output_table"]
        return m @ table.expect(state) + const

    def output_matrices(self) -> list[sp.csr_matrix]:
        if "output_matrices" not in self._cache:
            self._cache["output_matrices"] = [o.observable.matrix(self.n_qubits) for o in self.outputs]
        return self._cache["output_matrices"]

    def with_outputs(self, outputs: Mapping[str, str | Sequence]) -> Hamiltonian:
        outs = tuple(Output(name=k, observable=PauliSum.from_spec(v, self.n_qubits)) for k, v in outputs.items())
        return Hamiltonian(n_qubits=self.n_qubits, terms=self.terms, outputs=outs, description=self.description)
