"""Davies (weak-coupling, secular) thermal bath: the Lindblad generator that relaxes to Gibbs.

For H = Σ_a E_a |a⟩⟨a| (the Hamiltonian *with* the nudge) and Hermitian bath coupling
operators A_j, the Davies generator is

    dρ/dt = −i[H, ρ] + Σ_j Σ_ω γ(ω) ( A_j(ω) ρ A_j(ω)† − ½{A_j(ω)† A_j(ω), ρ} ),
    A_j(ω) = Σ_{E_b − E_a = ω} |a⟩⟨a| A_j |b⟩⟨b|,

so A_j(ω) lowers the energy by ω (ω > 0 gives energy to the bath). The rates obey detailed
balance γ(−ω) = e^{−ω/T} γ(ω) at temperature T (k_B = 1, T in the units of H):

* ``spectral="glauber"``: γ(ω) = rate / (1 + e^{−ω/T}) (bounded by ``rate``; at T → 0 only
  downward jumps survive, at rate ``rate``);
* ``spectral="ohmic"``: γ(ω) = rate · ω / (1 − e^{−ω/T}) (→ rate · T at ω = 0).

The Lamb shift commutes with H and does not change the steady state; it is left out.
Bohr frequencies are grouped with tolerance ``degeneracy_tol`` (relative to the spectral width),
so degenerate levels get the basis-independent A(ω). The Gibbs state e^{−H/T}/Z is stationary,
and it is the *unique* steady state iff the only operators commuting with H and every A_j are
multiples of 1 (Spohn). :func:`commutant_dimension` checks that; a shared symmetry (e.g. TFIM
parity ∏X with X-only baths) leaves a larger commutant and a non-unique steady state.

The generator is assembled directly in the eigenbasis as a sparse superoperator (column
stacking, qutip's convention vec(AρB) = (Bᵀ ⊗ A) vec ρ); :func:`davies_collapse_operators`
gives the same generator as explicit collapse operators for ``qutip.liouvillian``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from qep_analog.errors import QepValueError
from qep_analog.models.pauli import PauliProduct

SPECTRA = ("glauber", "ohmic")


def bath_products(spec: Sequence[str], n_qubits: int) -> list[PauliProduct]:
    """Bath coupling operators: a bare letter (``"X"``) means that letter on every qubit,
    anything else is one Pauli product (``"X0 X1"``)."""
    out: list[PauliProduct] = []
    for item in spec:
        text = str(item).strip()
        if text in ("X", "Y", "Z", "n"):
            out.extend(PauliProduct.parse(f"{text}{q}") for q in range(n_qubits))
        else:
            product = PauliProduct.parse(text, n_qubits)
            if not product.factors:
                raise QepValueError(
                    f"'bath_operators' entry {item!r} is the identity, which couples nothing"
                )
            out.append(product)
    if not out:
        raise QepValueError("'bath_operators' must name at least one operator")
    return list(dict.fromkeys(out))


def rate_function(omega: np.ndarray, temperature: float, rate: float, spectral: str) -> np.ndarray:
    """γ(ω) with γ(−ω) = e^{−ω/T} γ(ω); ω > 0 = energy given to the bath (a downward jump)."""
    omega = np.asarray(omega, dtype=float)
    x = omega / temperature
    if spectral == "glauber":
        return rate * expit(x)
    if spectral == "ohmic":
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ratio = np.where(np.abs(x) < 1e-8, 1.0 + x / 2, x / -np.expm1(-np.clip(x, -700, None)))
        return rate * temperature * np.where(x < -700, 0.0, ratio)
    raise QepValueError(f"'spectral' must be one of {SPECTRA}, not {spectral!r}")


def level_labels(energies: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """(label per eigenvalue, representative energy per label): eigenvalues within ``tol`` of
    their sorted neighbour share a level."""
    order = np.argsort(energies)
    breaks = np.diff(energies[order]) > tol
    sorted_labels = np.concatenate([[0], np.cumsum(breaks)])
    labels = np.empty(len(energies), dtype=np.int64)
    labels[order] = sorted_labels
    means = np.bincount(labels, weights=energies) / np.bincount(labels)
    return labels, means


def bohr_labels(
    level_energy: np.ndarray, labels: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """(label matrix lab[a, b] of ω = E_b − E_a, frequency per label)."""
    diff = level_energy[labels][None, :] - level_energy[labels][:, None]
    flat = diff.ravel()
    order = np.argsort(flat, kind="stable")
    breaks = np.diff(flat[order]) > tol
    sorted_labels = np.concatenate([[0], np.cumsum(breaks)])
    lab = np.empty(flat.size, dtype=np.int64)
    lab[order] = sorted_labels
    freq = np.bincount(lab, weights=flat) / np.bincount(lab)
    return lab.reshape(diff.shape), freq


class DaviesGenerator:
    """The Davies generator of one Hamiltonian and bath, in the Hamiltonian's eigenbasis.

    ``h`` is the dense Hermitian Hamiltonian (computational basis), ``baths`` the dense bath
    operators. ``liouvillian`` is the sparse superoperator acting on vec(ρ_eig) (column
    stacking); :meth:`to_eigenbasis` / :meth:`from_eigenbasis` move density matrices.
    """

    def __init__(
        self,
        h: np.ndarray,
        baths: Sequence[np.ndarray],
        *,
        temperature: float,
        rate: float,
        spectral: str = "glauber",
        degeneracy_tol: float = 1e-9,
    ):
        if not temperature > 0:
            raise QepValueError(f"'temperature' must be > 0, not {temperature}")
        if not rate > 0:
            raise QepValueError(f"'rate' must be > 0, not {rate}")
        if spectral not in SPECTRA:
            raise QepValueError(f"'spectral' must be one of {SPECTRA}, not {spectral!r}")
        self.energies, self.vectors = np.linalg.eigh(h)
        self.dim = h.shape[0]
        self.temperature, self.rate, self.spectral = float(temperature), float(rate), spectral
        width = max(1.0, float(self.energies[-1] - self.energies[0]))
        self.tol = degeneracy_tol * width
        self.levels, self.level_energy = level_labels(self.energies, self.tol)
        self.bohr, self.frequencies = bohr_labels(self.level_energy, self.levels, self.tol)
        self.gammas = rate_function(self.frequencies, self.temperature, self.rate, spectral)
        self.baths_eig = [self.vectors.conj().T @ b @ self.vectors for b in baths]

    # ------------------------------------------------------------------ bases
    def to_eigenbasis(self, rho: np.ndarray) -> np.ndarray:
        return self.vectors.conj().T @ rho @ self.vectors

    def from_eigenbasis(self, rho_eig: np.ndarray) -> np.ndarray:
        return self.vectors @ rho_eig @ self.vectors.conj().T

    def gibbs(self) -> np.ndarray:
        """e^{−H/T}/Z in the eigenbasis (diagonal)."""
        w = np.exp(-(self.energies - self.energies[0]) / self.temperature)
        return np.diag(w / w.sum())

    @property
    def gap(self) -> float:
        return (
            float(self.level_energy[1] - self.level_energy[0])
            if self.level_energy.size > 1
            else float("inf")
        )

    # ------------------------------------------------------------------ generator
    def jump_operators(self, cutoff: float = 1e-14) -> list[tuple[float, float, np.ndarray]]:
        """[(ω, γ(ω), A_j(ω) in the eigenbasis)] for every bath operator and Bohr frequency."""
        out = []
        for a_eig in self.baths_eig:
            scale = cutoff * max(1.0, np.abs(a_eig).max())
            nonzero = np.abs(a_eig) > scale
            for label in np.unique(self.bohr[nonzero]):
                mask = nonzero & (self.bohr == label)
                out.append(
                    (
                        float(self.frequencies[label]),
                        float(self.gammas[label]),
                        np.where(mask, a_eig, 0),
                    )
                )
        return out

    @property
    def liouvillian(self) -> sp.csr_matrix:
        if not hasattr(self, "_liouvillian"):
            self._liouvillian = self._build()
        return self._liouvillian

    def _build(self, cutoff: float = 1e-14) -> sp.csr_matrix:
        d = self.dim
        e = self.energies
        # −i[H, ρ]: element (a, c) sits at c·d + a and picks up −i(E_a − E_c).
        hdiag = -1j * (e[:, None] - e[None, :])
        rows, cols, vals = [np.arange(d * d)], [np.arange(d * d)], [hdiag.T.ravel()]
        same_level = self.levels[:, None] == self.levels[None, :]
        k_total = np.zeros((d, d), dtype=complex)
        gamma_ab = self.gammas[self.bohr]
        for a_eig in self.baths_eig:
            scale = cutoff * max(1.0, np.abs(a_eig).max())
            a_idx, b_idx = np.nonzero(np.abs(a_eig) > scale)
            values = a_eig[a_idx, b_idx]
            labs = self.bohr[a_idx, b_idx]
            order = np.argsort(labs, kind="stable")
            a_idx, b_idx, values, labs = a_idx[order], b_idx[order], values[order], labs[order]
            starts = np.flatnonzero(np.r_[True, np.diff(labs) != 0])
            ends = np.r_[starts[1:], labs.size]
            single = ends - starts == 1  # the common case (non-degenerate Bohr frequency): vectorised
            k1 = starts[single]
            rows.append(a_idx[k1] * (d + 1))
            cols.append(b_idx[k1] * (d + 1))
            vals.append(self.gammas[labs[k1]] * np.abs(values[k1]) ** 2)
            for s, t in zip(starts[~single], ends[~single], strict=True):
                # γ A_ab conj(A_cd) at row c·d + a, column d_·d + b, for all pairs in the group.
                g = self.gammas[labs[s]]
                aa, bb, vv = a_idx[s:t], b_idx[s:t], values[s:t]
                rows.append((aa[None, :] + d * aa[:, None]).ravel())
                cols.append((bb[None, :] + d * bb[:, None]).ravel())
                vals.append((g * vv[None, :] * vv.conj()[:, None]).ravel())
            # K = Σ_ω γ A(ω)†A(ω): K_bd = Σ_a γ_ab conj(A_ab) A_ad, only within a level.
            k_total += np.where(same_level, a_eig.conj().T @ (gamma_ab * a_eig), 0)
        eye = sp.identity(d, format="csr")
        k_sparse = sp.csr_matrix(np.where(np.abs(k_total) > cutoff, k_total, 0))
        jumps = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(d * d, d * d),
        )
        anti = sp.kron(eye, k_sparse) + sp.kron(k_sparse.T, eye)
        return (jumps - 0.5 * anti).tocsr()

    def residual(self, rho_eig: np.ndarray) -> float:
        """‖L(ρ)‖ (Frobenius norm of dρ/dt) for a density matrix in the eigenbasis."""
        return float(np.linalg.norm(self.liouvillian @ rho_eig.ravel(order="F")))


def davies_collapse_operators(
    h: np.ndarray,
    baths: Sequence[np.ndarray],
    *,
    temperature: float,
    rate: float,
    spectral: str = "glauber",
    degeneracy_tol: float = 1e-9,
) -> list[np.ndarray]:
    """√γ(ω) A_j(ω) in the computational basis, for ``qutip.liouvillian(H, c_ops)``.

    The explicit form of :class:`DaviesGenerator` (one operator per bath and Bohr frequency);
    slower, used to cross-check the direct assembly.
    """
    gen = DaviesGenerator(
        h,
        baths,
        temperature=temperature,
        rate=rate,
        spectral=spectral,
        degeneracy_tol=degeneracy_tol,
    )
    return [np.sqrt(g) * gen.from_eigenbasis(op) for _, g, op in gen.jump_operators() if g > 0]


def commutant_dimension(
    gen: DaviesGenerator, rel_tol: float = 1e-9
) -> tuple[int, np.ndarray | None]:
    """Dimension of {X : [X, H] = 0, [X, A_j] = 0 ∀j} and, if > 1, one traceless conserved X.

    X commutes with H iff it is block diagonal over the levels of H, so we solve the linear
    constraints [X, A_j] = 0 on those blocks only. The identity always qualifies; a dimension
    above 1 means a symmetry shared by H and the bath, hence a non-unique steady state.
    Returns the conserved operator in the computational basis (or ``None``).
    """
    d = gen.dim
    pairs = np.argwhere(gen.levels[:, None] == gen.levels[None, :])  # variables X_ac within levels
    nvar = len(pairs)
    a_, c_ = pairs[:, 0][:, None], pairs[:, 1][:, None]
    b_, d_ = pairs[:, 0][None, :], pairs[:, 1][None, :]
    gram = np.zeros((nvar, nvar), dtype=complex)
    for a_eig in gen.baths_eig:
        # Tr([E_ac, A]† [E_bd, A]) for Hermitian A, in closed form
        sq = a_eig @ a_eig
        gram += (
            np.where(a_ == b_, sq[d_, c_], 0)
            + np.where(c_ == d_, sq[a_, b_], 0)
            - 2 * a_eig[a_, b_] * a_eig[d_, c_]
        )
    evals, evecs = np.linalg.eigh(gram)
    scale = max(1.0, float(np.abs(evals).max()))
    null = np.flatnonzero(evals < rel_tol * scale)
    dimension = int(null.size)
    if dimension <= 1:
        return dimension, None
    # a conserved operator orthogonal to the identity
    ident = np.array([1.0 if a == c else 0.0 for a, c in pairs])
    basis = evecs[:, null]
    unit = ident / np.linalg.norm(ident)
    projected = basis - np.outer(unit, unit @ basis)
    k = int(np.argmax(np.linalg.norm(projected, axis=0)))
    x_eig = np.zeros((d, d), dtype=complex)
    x_eig[pairs[:, 0], pairs[:, 1]] = projected[:, k]
    x = gen.from_eigenbasis(x_eig)
    x = (x + x.conj().T) / 2 if np.linalg.norm(x + x.conj().T) > 1e-8 else (x - x.conj().T) / 2j
    return dimension, x / max(np.linalg.norm(x, 2), 1e-300)
