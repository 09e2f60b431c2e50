"""The "cooling" backend: prepare H(θ, x) + nudge by dissipation, with qutip's Lindblad solvers.

Two schemes, picked with ``scheme=``:

* ``"davies"`` (default): an explicit Davies thermal bath at ``temperature`` coupled through
  local ``bath_operators`` (default X and Z on every qubit, which break every symmetry of any H).
  Its steady state is the Gibbs state e^{−(H + nudge)/T}/Z when unique; the backend checks
  uniqueness (the commutant of H and the bath operators, see :mod:`.davies`) and warns with a
  :class:`SymmetryWarning` when a symmetry is shared. Result ``kind="gibbs"`` (unique) or
  ``"steady-state"`` (not unique: then the state reached depends on the initial state).
* ``"sympathetic"``: optically pumped ancilla atoms coupled by van der Waals interactions
  (Raghunandan et al., Sci. Adv. 6, eaaw9268 (2020)), see :mod:`.sympathetic`. Its steady
  state is a non-equilibrium steady state, ``kind="steady-state"``.

``method="steadystate"`` solves L(ρ) = 0 with ``qutip.steadystate``; ``method="mesolve"``
integrates with ``qutip.mesolve`` from the initial state (the free-phase state when the caller
passes ``reference``, else ``initial``) in checkpoints spaced geometrically up to ``t_max``
and stops once ‖dρ/dt‖_F ≤ ``tolerance`` · rate. Against time it records the energy above the
ground state, the purity, the trace distance to the target (Gibbs), the trace and the smallest
eigenvalue (``info["trajectory"]``). Times are in 1/(units of H) (µs for rad/µs).

Example::

    backend = get_backend("cooling", temperature=0.2, method="mesolve")
    state = backend.prepare(h, theta, x)          # state.state is a density matrix
    state.info["trace_distance_to_gibbs"], state.info["trajectory"].times
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import qutip

from qep_analog.equilibrium.base import EquilibriumState, register_backend
from qep_analog.equilibrium.davies import (
    SPECTRA,
    DaviesGenerator,
    bath_products,
    commutant_dimension,
)
from qep_analog.equilibrium.dense import DensityMatrix
from qep_analog.errors import ConvergenceError, QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum

METHODS = ("steadystate", "mesolve")
INITIAL = ("reference", "mixed", "zero")
SCHEMES = ("davies", "sympathetic")


class SymmetryWarning(UserWarning):
    """The bath shares a symmetry with H: the steady state is not unique."""


@dataclass(frozen=True, kw_only=True)
class CoolingTrajectory:
    """Relaxation record at the checkpoint times (arrays of equal length)."""

    times: np.ndarray
    energy_above_ground: np.ndarray
    purity: np.ndarray
    trace_distance: np.ndarray
    trace: np.ndarray
    min_eigenvalue: np.ndarray
    residual: np.ndarray
    fidelity: np.ndarray | None = None  # ground-state fidelity ⟨ψ₀|ρ|ψ₀⟩ (sympathetic scheme)

    def as_dict(self) -> dict:
        out = {k: np.asarray(v).tolist() for k, v in self.__dict__.items() if v is not None}
        return out


def state_metrics(rho: np.ndarray) -> tuple[float, float, float]:
    """(trace, purity Tr ρ², smallest eigenvalue) of a density matrix."""
    herm = (rho + rho.conj().T) / 2
    return (
        float(np.real(np.trace(rho))),
        float(np.real(np.vdot(rho, rho))),
        float(np.linalg.eigvalsh(herm)[0]),
    )


def trace_distance(a: np.ndarray, b: np.ndarray) -> float:
    """½‖a − b‖₁ for Hermitian a, b."""
    diff = a - b
    return float(0.5 * np.abs(np.linalg.eigvalsh((diff + diff.conj().T) / 2)).sum())


def _super(liouvillian, dim: int) -> qutip.Qobj:
    return qutip.Qobj(liouvillian, dims=[[[dim], [dim]], [[dim], [dim]]])


def _initial_state(initial: str, reference: EquilibriumState | None, dim: int) -> np.ndarray:
    if initial == "reference" and reference is not None:
        s = reference.state
        return np.outer(s, s.conj()) if s.ndim == 1 else np.array(s, dtype=complex)
    if initial == "zero":
        rho = np.zeros((dim, dim), dtype=complex)
        rho[0, 0] = 1.0
        return rho
    return np.eye(dim, dtype=complex) / dim


@dataclass(frozen=True, kw_only=True)
class CoolingBackend:
    """Dissipative preparation with qutip (see the module docstring). Unknown options raise."""

    scheme: str = "davies"
    temperature: float = 0.1
    bath_operators: tuple[str, ...] = ("X", "Z")
    rate: float = 1.0
    spectral: str = "glauber"
    method: str = "steadystate"
    t_max: float = 1000.0
    n_checkpoints: int = 60
    tolerance: float = 1e-8
    initial: str = "reference"
    check_symmetry: bool = True
    degeneracy_tol: float = 1e-9
    max_qubits: int = 8
    sympathetic: object | None = None  # a SympatheticConfig for scheme="sympathetic"
    solver_options: dict = field(default_factory=lambda: {"atol": 1e-10, "rtol": 1e-8, "nsteps": 10**6})
    name: str = "cooling"

    def __post_init__(self) -> None:
        checks = [
            (self.scheme in SCHEMES, f"'scheme' must be one of {SCHEMES}, not {self.scheme!r}"),
            (self.method in METHODS, f"'method' must be one of {METHODS}, not {self.method!r}"),
            (self.initial in INITIAL, f"'initial' must be one of {INITIAL}, not {self.initial!r}"),
            (
                self.spectral in SPECTRA,
                f"'spectral' must be one of {SPECTRA}, not {self.spectral!r}",
            ),
            (
                np.isfinite(self.temperature) and self.temperature > 0,
                f"'temperature' must be > 0, not {self.temperature}",
            ),
            (np.isfinite(self.rate) and self.rate > 0, f"'rate' must be > 0, not {self.rate}"),
            (np.isfinite(self.t_max) and self.t_max > 0, f"'t_max' must be > 0, not {self.t_max}"),
            (
                int(self.n_checkpoints) >= 2,
                f"'n_checkpoints' must be ≥ 2, not {self.n_checkpoints}",
            ),
            (self.tolerance > 0, f"'tolerance' must be > 0, not {self.tolerance}"),
        ]
        for ok, message in checks:
            if not ok:
                raise QepValueError(message)
        if isinstance(self.bath_operators, str):
            object.__setattr__(self, "bath_operators", (self.bath_operators,))
        object.__setattr__(self, "bath_operators", tuple(self.bath_operators))
        if self.scheme == "sympathetic":
            from qep_analog.equilibrium.sympathetic import SympatheticConfig

            if isinstance(self.sympathetic, dict):  # from a protocol file: a table of the fields
                try:
                    object.__setattr__(self, "sympathetic", SympatheticConfig(**self.sympathetic))
                except TypeError as exc:
                    raise QepValueError(f"backend option 'sympathetic': {exc}") from None
            if not isinstance(self.sympathetic, SympatheticConfig):
                raise QepValueError(
                    "scheme 'sympathetic' needs 'sympathetic' = a SympatheticConfig or a table "
                    "{couplings = [[V_ia, ...], ...], omega_ancilla, delta_ancilla, omega_pump, decay_rate}"
                )

    # ------------------------------------------------------------------ entry point
    def prepare(
        self,
        hamiltonian: Hamiltonian,
        theta,
        x,
        nudge: PauliSum | None = None,
        reference: EquilibriumState | None = None,
    ) -> EquilibriumState:
        n = hamiltonian.n_qubits
        if n > self.max_qubits:
            raise QepValueError(f"cooling backend: 'n_qubits' {n} exceeds 'max_qubits' {self.max_qubits}")
        extra = nudge.matrix(n) if nudge is not None else None
        h = hamiltonian.matrix(theta, x, extra).toarray()
        if self.scheme == "sympathetic":
            from qep_analog.equilibrium.sympathetic import prepare_sympathetic

            return prepare_sympathetic(self, h, reference)
        return self._prepare_davies(h, n, reference)

    # ------------------------------------------------------------------ Davies
    def generator(self, h: np.ndarray, n_qubits: int) -> DaviesGenerator:
        baths = [p.matrix(n_qubits).toarray() for p in bath_products(self.bath_operators, n_qubits)]
        return DaviesGenerator(
            h,
            baths,
            temperature=self.temperature,
            rate=self.rate,
            spectral=self.spectral,
            degeneracy_tol=self.degeneracy_tol,
        )

    def _prepare_davies(self, h: np.ndarray, n_qubits: int, reference: EquilibriumState | None) -> EquilibriumState:
        gen = self.generator(h, n_qubits)
        dim = gen.dim
        unique, commutant = True, 1
        if self.check_symmetry:
            commutant, conserved = commutant_dimension(gen)
            unique = commutant == 1
            if not unique:
                warnings.warn(
                    f"cooling backend: bath_operators {self.bath_operators} share a symmetry "
                    f"with H "
                    f"(commutant dimension {commutant}); the steady state is not unique and "
                    f"depends on "
                    f"the initial state. Couple through operators that break it (e.g. add 'Z').",
                    SymmetryWarning,
                    stacklevel=3,
                )
        target = gen.gibbs()
        trajectory = None
        method = self.method if unique else "mesolve"
        if method == "steadystate":
            rho_eig = qutip.steadystate(_super(gen.liouvillian, dim)).full()
        else:
            rho0 = gen.to_eigenbasis(_initial_state(self.initial, reference, dim))
            rho_eig, trajectory = self._relax(gen, rho0, target)
        rho_eig = (rho_eig + rho_eig.conj().T) / 2
        rho_eig /= np.real(np.trace(rho_eig))
        rho = gen.from_eigenbasis(rho_eig)
        info = dict(
            scheme="davies",
            temperature=self.temperature,
            method=method,
            spectral=self.spectral,
            bath_operators=self.bath_operators,
            rate=self.rate,
            unique=unique,
            commutant_dimension=commutant,
            trace_distance_to_gibbs=trace_distance(rho_eig, target),
            residual=gen.residual(rho_eig),
            ground_energy=float(gen.energies[0]),
            trajectory=trajectory,
        )
        return DensityMatrix(
            state=rho,
            kind="gibbs" if unique else "steady-state",
            energy=float(np.real(np.sum(gen.energies * np.diag(rho_eig)))),
            gap=gen.gap,
            info=info,
        )

    def checkpoint_times(self) -> np.ndarray:
        n = int(self.n_checkpoints)
        return np.concatenate([[0.0], self.t_max * np.logspace(-3, 0, n - 1)])

    def _relax(self, gen: DaviesGenerator, rho0: np.ndarray, target: np.ndarray):
        """mesolve in checkpoints (eigenbasis); stop at ‖L ρ‖_F ≤ tolerance · rate."""
        lq = _super(gen.liouvillian, gen.dim)
        energies = gen.energies

        def measure(r):
            tr, purity, lam = state_metrics(r)
            return (
                float(np.real(np.sum(energies * np.diag(r)))) - energies[0],
                purity,
                trace_distance(r, target),
                tr,
                lam,
                gen.residual(r),
            )

        return relax_with_mesolve(
            lq,
            rho0,
            self.checkpoint_times(),
            measure,
            self.tolerance * self.rate,
            self.solver_options,
        )


def relax_with_mesolve(
    liouvillian: qutip.Qobj,
    rho0: np.ndarray,
    times: np.ndarray,
    measure,
    threshold: float,
    solver_options: dict,
):
    """Integrate dρ/dt = L ρ with ``qutip.mesolve`` checkpoint by checkpoint; stop when the
    last entry of ``measure(ρ)`` (the residual ‖Lρ‖) drops below ``threshold``.

    Returns (final ρ, :class:`CoolingTrajectory`); raises :class:`ConvergenceError` if the last
    checkpoint is reached first. ``measure`` returns (energy above ground, purity, trace distance,
    trace, min eigenvalue, residual[, fidelity]).
    """
    dims = liouvillian.dims[0]
    rho = rho0
    rows = [measure(rho)]
    recorded = [times[0]]
    options = {
        "store_states": False,
        "store_final_state": True,
        "progress_bar": False,
        **solver_options,
    }
    converged = rows[-1][5] <= threshold
    for t0, t1 in zip(times[:-1], times[1:], strict=True):
        if converged:
            break
        result = qutip.mesolve(liouvillian, qutip.Qobj(rho, dims=dims), [t0, t1], options=options)
        rho = result.final_state.full()
        rows.append(measure(rho))
        recorded.append(t1)
        converged = rows[-1][5] <= threshold
    columns = list(zip(*rows, strict=True))
    traj = CoolingTrajectory(
        times=np.array(recorded),
        energy_above_ground=np.array(columns[0]),
        purity=np.array(columns[1]),
        trace_distance=np.array(columns[2]),
        trace=np.array(columns[3]),
        min_eigenvalue=np.array(columns[4]),
        residual=np.array(columns[5]),
        fidelity=np.array(columns[6]) if len(columns) > 6 else None,
    )
    if not converged:
        error = ConvergenceError(
            f"cooling did not converge by t_max={times[-1]:g}: "
            f"residual ‖dρ/dt‖ = {rows[-1][5]:.3g} "
            f"> {threshold:.3g}; raise 't_max' or 'rate'"
        )
        error.trajectory = traj  # the record up to t_max, for plots and diagnosis
        raise error
    return rho, traj


register_backend("cooling", CoolingBackend)
