"""Rydberg-native phase recognition: a 2- or 3-atom sensor beside a Rydberg chain, trained by QEP.

(The protocol side, data and figure are in :mod:`qep_analog.tasks.rydberg_phases_run`.)

The Wanjura–Marquardt phase sensor (PHYSICS.md §2) with system and sensor both Rydberg atoms.
For a sample (Δ/Ω, R_b/a) the register is the chain of :mod:`qep_analog.tasks.rydberg_chain`
(N atoms at spacing a, centred on the origin) plus two read-out sensor atoms s = A, B (and optionally a
hidden third atom C, trained but never read) at trainable offsets
from chain atom 0: r_s = r_0 + a u_s with u_s in units of the spacing (``sensor_units = "spacing"``,
the default: the sensor sits on the chain's own lattice and sees the chain in units of R_b/a), or
r_s = r_0 + o_s with o_s in µm (``"um"``: a placement that does not follow the spacing). The whole
register obeys (pulser's convention, ħ = 1, rad/µs, µm):

    H = Σ_i (Ω/2) X_i − Δ Σ_i n_i − Σ_s δ_s n_s + Σ_{i<j} C6/|r_i − r_j|⁶ n_i n_j

with the device's C6 and its DMM realising the sensor's local detunings δ_s. Sensor and chain
couple only through the van der Waals n_i n_j terms (Z-type: no other coupling exists between atoms).

Trainable θ = (u_A, u_B, δ_A, δ_B) (or o_s): offsets in group ``positions``, detunings in group
``detunings`` (rad/µs); ∂L/∂u_s = a ∂L/∂r_s per sample. Offsets are projected after each step on the
region where *every* sample's register satisfies the device limits (:meth:`RydbergPhaseTask.project`):
at least the minimum spacing from every chain atom at every spacing a of the box and from each other,
and inside the radial limit at both ends of the spacing range; detunings within the channel's |δ| for
every Δ of the box and within the DMM's span.

Outputs: the sensor's Z outcomes. Three of its four outcomes name the phases (as in the paper):
(g, g) = disordered, (r, g) = Z2, (g, r) = Z3; (r, r) names none. The trained objective is the
expected Hamming distance between the sensor's bitstring and the code c(t) of the label,

    ⟨Ĉ⟩,  Ĉ = Σ_s (n_s − c_s)² = Σ_s (1 − 2c_s) n_s + c_s²,

minimised (to 0) only when the sensor reads the right code with certainty. Ĉ is linear in n_s, so
the symmetric ±β nudge β Ĉ is a local detuning change on the sensor, δ_s → δ_s ∓ β(1 − 2c_s): the
DMM nudge a device can apply. (The paper's MSE on the outcome projectors would need a nudge on
n_A n_B, i.e. on the sensor pair's interaction, which no detuning can make.) Gradients come from
the generic estimator (:func:`qep_analog.learning.gradient.estimate_gradient`, one Z-basis setting
for every ∂H/∂J_ij = n_i n_j and ∂H/∂δ_s = −n_s) on each sample's own register, and are mapped to the
offsets by the chain rule ∂J_ij/∂r_i = −6 C6 (r_i − r_j)/r_ij⁸.

Ground states: any backend. Chains beyond 16 atoms need the ``mps`` backend (DMRG); with its ``order = "auto"``
the task puts the sensor atoms on the first MPS sites, next to chain atom 0 (site order C, B, A, 0, 1, …, N − 1),
so the sensor's couplings stay short-ranged along the MPS.

Metrics (exact, on the free ground state): max-choice accuracy (argmax over the three code
probabilities = label) and single-shot accuracy (the mean probability that one shot reads the
label's code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from qep_analog.equilibrium.base import EquilibriumBackend
from qep_analog.errors import QepValueError
from qep_analog.executor import Executor, SerialExecutor
from qep_analog.learning.driver import Draw, StepEstimate, TrainingConfig
from qep_analog.learning.gradient import GradientConfig, estimate_gradient
from qep_analog.models.hamiltonian import Hamiltonian, Output, Term
from qep_analog.models.pauli import PauliProduct, PauliSum
from qep_analog.tasks.rydberg_chain import N_LIMITS, ChainSpec

# sensor outcomes (A, B) in the order of outcome_probabilities; the default read-out names disordered, Z2, Z3
# gg, rg, gr ([chain] codes picks any three distinct outcomes; the fourth names no phase)
OUTCOMES = ("gg", "rg", "gr", "rr")
DEFAULT_CODES = ("gg", "rg", "gr")


def code_bits(codes) -> np.ndarray:
    """(3, 2) bits (n_A, n_B) of the outcomes naming disordered, Z2, Z3 (e.g. ``("gg", "rr", "rg")``)."""
    codes = tuple(codes) if isinstance(codes, (list, tuple)) else (codes,)
    if len(codes) != 3 or not all(isinstance(c, str) for c in codes) or len(set(codes)) != 3 \
            or not set(codes) <= set(OUTCOMES):
        raise QepValueError(f"'chain.codes' must be three distinct of {list(OUTCOMES)} (disordered, Z2, Z3), "
                            f"not {list(codes)!r}")
    return np.array([[float(c[0] == "r"), float(c[1] == "r")] for c in codes])


def outcome_index(codes=DEFAULT_CODES) -> np.ndarray:
    """Column of each phase's outcome in the (gg, rg, gr, rr) probabilities."""
    bits = code_bits(codes)
    return (bits[:, 0] + 2 * bits[:, 1]).astype(int)
N_SENSOR = 2  # read-out atoms A, B; a third sensor atom C, if any, is hidden (trained, never read)
SENSOR_SIZES = (2, 3)


def sensor_hamiltonian(n_chain: int, n_sensor: int = N_SENSOR) -> Hamiltonian:
    """H of chain + sensor as named terms; one structure for every sample of a given N.

    Inputs ``omega`` (½ X_i on every atom) and ``delta_global`` (−n_i on every atom); parameters
    ``delta_s`` (−n on sensor atom s = N, N + 1, …) and ``J_i_j`` (n_i n_j, every pair); outputs
    ``n_s`` on the two read-out atoms s = N, N + 1 (a third sensor atom is hidden). A sample's θ holds
    its register's couplings C6/r⁶.
    """
    n = n_chain + n_sensor
    terms: list[Term] = []
    for i in range(n):
        terms.append(Term(name=f"drive_x_{i}", operator=PauliProduct.parse(f"X{i}", n), role="input",
                          coefficient=0.5, parameter="omega"))
        terms.append(Term(name=f"input_{i}", operator=PauliProduct.parse(f"n{i}", n), role="input",
                          coefficient=-1.0, parameter="delta_global"))
    for s in range(n_chain, n):
        terms.append(Term(name=f"delta_{s}", operator=PauliProduct.parse(f"n{s}", n), role="trainable",
                          coefficient=-1.0, parameter=f"delta_{s}"))
    for i in range(n):
        for j in range(i + 1, n):
            terms.append(Term(name=f"J_{i}_{j}", operator=PauliProduct.parse(f"n{i} n{j}", n), role="trainable",
                              parameter=f"J_{i}_{j}"))
    outputs = tuple(Output(name=f"n_{s}", observable=PauliSum(((1.0, PauliProduct.parse(f"n{s}", n)),)))
                    for s in range(n_chain, n_chain + N_SENSOR))
    return Hamiltonian(n_qubits=n, terms=tuple(terms), outputs=outputs,
                       description=f"Rydberg chain of {n_chain} + {n_sensor}-atom sensor")


def pair_couplings(positions_um: np.ndarray, c6: float) -> np.ndarray:
    from qep_analog.device.rydberg import pair_couplings as couplings

    return couplings(positions_um, c6)


@dataclass(frozen=True)
class _SampleJob:
    """One sample's QEP gradient on its own register (picklable for any executor)."""

    hamiltonian: Hamiltonian
    backend: EquilibriumBackend
    theta: np.ndarray
    x: np.ndarray
    code: np.ndarray
    config: GradientConfig
    seed: np.random.SeedSequence
    positions_um: np.ndarray
    c6: float


def _sample_gradient(job: _SampleJob) -> dict:
    """∂⟨Ĉ⟩/∂(sensor offsets, sensor detunings) of one sample, with the estimator's counts."""
    from qep_analog.device.rydberg import coupling_position_jacobian

    est = estimate_gradient(job.hamiltonian, job.backend, job.theta, job.x[None], job.code[None], job.config,
                            seed=job.seed)
    names = job.hamiltonian.parameter_names
    n = job.positions_um.shape[0]
    grad_j = np.zeros((n, n))
    grad_delta = []
    for name, value in zip(names, est.gradient, strict=True):
        kind, *idx = name.split("_")
        if kind == "J":
            i, k = int(idx[0]), int(idx[1])
            grad_j[i, k] = grad_j[k, i] = value
        else:
            grad_delta.append(value)
    jac = coupling_position_jacobian(job.positions_um, job.c6)
    grad_pos = np.einsum("ij,ijd->id", grad_j, jac)
    n_sensor = len(grad_delta)
    return {"positions": grad_pos[n - n_sensor:], "detunings": np.array(grad_delta), "loss": est.loss,
            "preparations": est.preparations, "crossings": len(est.crossings),
            "crossing_samples": len({c["sample"] for c in est.crossings if c.get("kind") == "crossing"}),
            "dropped": est.samples_dropped, "kinds": est.state_kinds}


@dataclass(kw_only=True)
class RydbergPhaseTask:
    """The sensor as a task of the one driver (see the module docstring).

    ``inputs`` are points (Δ/Ω, R_b/a); ``labels`` phase indices into :data:`PHASES`.
    ``offsets`` (2 × 2, from chain atom 0) and ``detunings`` (2, rad/µs) are the initial sensor.
    """

    chain: ChainSpec
    device: object
    offsets: np.ndarray
    detunings: np.ndarray
    backend: EquilibriumBackend
    config: GradientConfig
    inputs: np.ndarray
    labels: np.ndarray
    test_inputs: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    validation_inputs: np.ndarray | None = None
    validation_labels: np.ndarray | None = None
    validation_shots: int | None = None
    train_positions: bool = True
    offset_units: str = "spacing"
    codes: tuple[str, ...] = DEFAULT_CODES
    evaluate_initial: bool = True
    executor: Executor | None = None
    _limits: dict = field(init=False, repr=False)
    _code_bits: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from qep_analog.device.devices import global_channel

        if self.offset_units not in ("spacing", "um"):
            raise QepValueError(f"'chain.sensor_units' must be 'spacing' or 'um', not {self.offset_units!r}")
        if self.config.nudge != "cost-operator" or self.config.estimator != "symmetric":
            raise QepValueError("the Rydberg phase sensor runs symmetric cost-operator QEP (gradient.nudge = "
                                "'cost-operator', gradient.estimator = 'symmetric'): its nudge is a DMM detuning")
        if not self.device.dmm_channels:
            raise QepValueError(f"the Rydberg phase sensor needs local detunings (a DMM); device "
                                f"{self.device.name!r} has none")
        self.codes = tuple(self.codes)
        self._code_bits = code_bits(self.codes)
        self.offsets = np.asarray(self.offsets, dtype=float).reshape(-1, 2)
        self.detunings = np.asarray(self.detunings, dtype=float).reshape(-1)
        n_s = len(self.offsets)
        if n_s not in SENSOR_SIZES or self.offsets.shape != (n_s, 2) or self.detunings.shape != (n_s,):
            raise QepValueError(f"the sensor has 2 or 3 atoms (A, B read, C hidden): 'chain.sensor_offsets' "
                                f"must be as many [x, y] offsets as 'device.detunings' has values, not "
                                f"{self.offsets.tolist()} and {self.detunings.tolist()}")
        self.inputs = np.atleast_2d(np.asarray(self.inputs, dtype=float))
        self.labels = np.asarray(self.labels, dtype=int).reshape(-1)
        if len(self.inputs) != len(self.labels):
            raise QepValueError(f"'inputs' has {len(self.inputs)} samples but 'labels' has {len(self.labels)}")
        channel = global_channel(self.device)[1]
        dmm = self.device.dmm_channels[sorted(self.device.dmm_channels)[0]]
        self._limits = {"min_distance_um": float(self.device.min_atom_distance),
                        "max_radius_um": self.device.max_radial_distance,
                        "max_abs_delta": channel.max_abs_detuning, "max_omega": channel.max_amp,
                        "dmm_bottom": dmm.bottom_detuning}
        omega_max = self._limits["max_omega"]
        if omega_max is not None and self.chain.omega > omega_max:
            raise QepValueError(f"'device.omega' = {self.chain.omega:g} rad/µs exceeds the global channel's "
                                f"max_amp = {omega_max:.4g} rad/µs of {self.device.name}")
        backend_name = getattr(self.backend, "name", type(self.backend).__name__)
        if self.chain.n_atoms > N_LIMITS["exact"] and backend_name != "mps":
            raise QepValueError(f"'chain.n_atoms' = {self.chain.n_atoms} needs [backend] name = 'mps' (DMRG): the "
                                f"{backend_name!r} backend is used up to {N_LIMITS['exact']} chain atoms here")
        if backend_name == "mps" and self.backend.order == "auto":
            self.backend = dataclasses.replace(self.backend, order=self.mps_site_order())
        self.offsets, self.detunings = self._project(self.offsets, self.detunings)
        self.check_registers(self.theta_of(self.offsets, self.detunings))

    def mps_site_order(self) -> tuple[int, ...]:
        """MPS site order for chain + sensor: the sensor atoms (last first), then the chain atoms 0 … N − 1."""
        n = self.chain.n_atoms
        return tuple(range(n + self.n_sensor - 1, n - 1, -1)) + tuple(range(n))

    # -------------------------------------------------------------- parameters
    @property
    def n_sensor(self) -> int:
        return len(self.detunings)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        atoms = "ABC"[:self.n_sensor]
        return tuple(f"{c}_{a}" for a in atoms for c in "xy") + tuple(f"delta_{a}" for a in atoms)

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    def parameter_groups(self) -> dict[str, np.ndarray]:
        k = 2 * self.n_sensor
        return {"positions": np.arange(k), "detunings": np.arange(k, k + self.n_sensor)}

    def initial_theta(self, config: TrainingConfig) -> np.ndarray:
        if config.theta0 is not None:
            raise QepValueError("'training.theta0' does not apply to the Rydberg phase sensor: set "
                                "'chain.sensor_offsets' and 'device.detunings'")
        return self.theta_of(self.offsets, self.detunings)

    @staticmethod
    def theta_of(offsets, detunings) -> np.ndarray:
        return np.concatenate([np.asarray(offsets, dtype=float).ravel(), np.asarray(detunings, dtype=float)])

    def split(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """(offsets (n_s, 2), detunings (n_s,)) of θ = (x_A, y_A, x_B, y_B, [x_C, y_C,] δ_A, δ_B[, δ_C])."""
        theta = np.asarray(theta, dtype=float)
        k = 2 * self.n_sensor
        return theta[:k].reshape(-1, 2), theta[k:k + self.n_sensor]

    @cached_property
    def hamiltonian(self) -> Hamiltonian:
        return sensor_hamiltonian(self.chain.n_atoms, self.n_sensor)

    # -------------------------------------------------------------- registers
    def register(self, point, offsets) -> np.ndarray:
        """(N + 2, 2) positions: the chain at the sample's spacing, then the sensor at chain atom 0 + offsets."""
        _, spacing = self.chain.controls(point)
        chain = self.chain.positions(spacing)
        scale = spacing if self.offset_units == "spacing" else 1.0
        return np.vstack([chain, chain[0] + scale * np.asarray(offsets, dtype=float)])

    def sample_theta(self, positions_um: np.ndarray, detunings) -> np.ndarray:
        """θ of :attr:`hamiltonian` for one register: (δ_A, δ_B, J_ij of every pair) in parameter order."""
        coupling = pair_couplings(positions_um, float(self.device.interaction_coeff))
        n_chain = self.chain.n_atoms
        values = []
        for name in self.hamiltonian.parameter_names:
            kind, *idx = name.split("_")
            values.append(coupling[int(idx[0]), int(idx[1])] if kind == "J" else detunings[int(idx[0]) - n_chain])
        return np.array(values)

    def controls(self, point) -> np.ndarray:
        """The input vector (Ω, Δ) of a sample."""
        detuning, _ = self.chain.controls(point)
        return np.array([self.chain.omega, detuning])

    def check_registers(self, theta) -> None:
        """Raise if the register at either end of the spacing range breaks a device limit."""
        from qep_analog.device.rydberg import RydbergModel

        offsets, detunings = self.split(theta)
        problems = []
        for rb in self.chain.rb_range:
            positions = self.register([0.0, rb], offsets)
            det = np.concatenate([np.zeros(self.chain.n_atoms), detunings])
            model = RydbergModel(positions_um=positions, device=self.device, omega=self.chain.omega, detunings=det)
            problems += [f"R_b/a = {rb:g}: {p}" for p in model.violations()]
        if problems:
            raise QepValueError("; ".join(problems))

    # -------------------------------------------------------------- constraints
    def _project(self, offsets: np.ndarray, detunings: np.ndarray, max_iter: int = 500):
        """Nearest admissible sensor (see the module docstring); detunings clipped to the channel and DMM."""
        lim = self._limits
        det = np.asarray(detunings, dtype=float).copy()
        if lim["max_abs_delta"] is not None:
            # the total detuning Δ + δ_s must stay within the channel for every sample's Δ
            d_lo, d_hi = (v * self.chain.omega for v in self.chain.detuning_range)
            det = np.clip(det, -lim["max_abs_delta"] - d_lo, lim["max_abs_delta"] - d_hi)
        if lim["dmm_bottom"] is not None:  # the DMM spans at most |bottom| below the highest detuning
            span = max(det.max(), 0.0) - min(det.min(), 0.0)  # chain atoms sit at δ = 0
            if span > -lim["dmm_bottom"]:
                det = det * (-lim["dmm_bottom"] / span)
        off = np.array(offsets, dtype=float)
        a_lo, a_hi = self.chain.spacing_range_um
        last = self.chain.n_atoms - 1
        rmax = lim["max_radius_um"]
        if self.offset_units == "spacing":  # chain atoms sit at u = 0 … N − 1 for every a; µm = u · a
            dmin = lim["min_distance_um"] / a_lo * (1 + 1e-6)
            ends = (0.0, float(last))

            def centres(x):
                return (float(np.floor(x)), float(np.ceil(x)))

            def inside(u):  # |a (u − c)| ≤ rmax binds at the largest spacing
                c = np.array([last / 2, 0.0])
                r = float(np.linalg.norm(u - c)) * a_hi
                return u if rmax is None or r <= rmax else c + (u - c) * (rmax * (1 - 1e-9) / r)
        else:  # µm from chain atom 0; atoms 1 … N − 1 sweep the segment [a_lo, (N − 1) a_hi] as a varies
            dmin = lim["min_distance_um"] * (1 + 1e-6)
            seg = (a_lo, last * a_hi)
            ends = (0.0, seg[1])

            def centres(x):
                return (0.0, float(np.clip(x, *seg)))

            def inside(o):
                for a in (a_lo, a_hi):
                    shift = np.array([-last * a / 2, 0.0])
                    r = float(np.linalg.norm(o + shift))
                    if rmax is not None and r > rmax:
                        o = (o + shift) * (rmax * (1 - 1e-9) / r) - shift
                return o
        for _ in range(max_iter):
            moved = False
            for s in range(len(off)):
                x, y = off[s]
                if ends[0] <= x <= ends[1]:  # beside the chain: step away from its axis
                    need = max(np.sqrt(max(dmin**2 - (x - cx) ** 2, 0.0)) for cx in centres(x))
                    if abs(y) < need:
                        off[s, 1] = need if y >= 0 else -need
                        moved = True
                else:  # beyond either end: step radially away from the end atom
                    centre = np.array([ends[0] if x < ends[0] else ends[1], 0.0])
                    d = off[s] - centre
                    dist = float(np.linalg.norm(d))
                    if dist < dmin:
                        off[s] = centre + dmin * d / dist
                        moved = True
                kept = inside(off[s].copy())
                if not np.array_equal(kept, off[s]):
                    off[s] = kept
                    moved = True
            for s in range(len(off)):
                for t in range(s + 1, len(off)):
                    d = off[s] - off[t]
                    dist = float(np.linalg.norm(d))
                    if dist < dmin:
                        u = d / dist if dist > 0 else np.array([1.0, 0.0])
                        shift = 0.5 * (dmin - dist) * u
                        off[s] += shift
                        off[t] -= shift
                        moved = True
            if not moved:
                break
        return off, det

    def project(self, theta: np.ndarray) -> np.ndarray:
        offsets, detunings = self.split(theta)
        if not self.train_positions:
            offsets = self.offsets
        off, det = self._project(offsets, detunings)
        theta = self.theta_of(off, det)
        self.check_registers(theta)
        return theta

    # -------------------------------------------------------------- the driver's hooks
    def gradient(self, theta: np.ndarray, batch: np.ndarray, draw: Draw) -> StepEstimate:
        offsets, detunings = self.split(theta)
        seeds = draw.sequence().spawn(len(batch))
        c6 = float(self.device.interaction_coeff)
        jobs = []
        for k, i in enumerate(batch):
            positions = self.register(self.inputs[i], offsets)
            jobs.append(_SampleJob(self.hamiltonian, self.backend, self.sample_theta(positions, detunings),
                                   self.controls(self.inputs[i]), self._code_bits[self.labels[i]], self.config,
                                   seeds[k], positions, c6))
        results = (self.executor or SerialExecutor()).map(_sample_gradient, jobs)
        kept = [r for r in results if not r["dropped"]]
        k = 2 * self.n_sensor
        grad = np.zeros(3 * self.n_sensor)
        if kept:  # offsets in units of a: ∂L/∂u = a ∂L/∂r
            scale = [self.chain.controls(self.inputs[i])[1] if self.offset_units == "spacing" else 1.0 for i in batch]
            grad[:k] = np.mean([w * r["positions"] for w, r in zip(scale, results, strict=True) if not r["dropped"]],
                               axis=0).ravel()
            grad[k:] = np.mean([r["detunings"] for r in kept], axis=0)
        if not self.train_positions:
            grad[:k] = 0.0
        preps = [r["preparations"] for r in results]
        return StepEstimate(gradient=grad, loss=float(np.mean([r["loss"] for r in results])),
                            preparations=None if any(p is None for p in preps) else int(sum(preps)),
                            crossings=sum(r["crossings"] for r in results),
                            crossing_samples=sum(r["crossing_samples"] for r in results),
                            dropped=sum(r["dropped"] for r in results),
                            state="+".join(sorted({k for r in results for k in r["kinds"]})))

    def outcome_probabilities(self, theta, points) -> np.ndarray:
        """(n, 4) probabilities of the sensor outcomes (gg, rg, gr, rr) in the free ground state."""
        offsets, detunings = self.split(theta)
        h = self.hamiltonian
        out = []
        for point in np.atleast_2d(points):
            positions = self.register(point, offsets)
            state = self.backend.prepare(h, self.sample_theta(positions, detunings), self.controls(point))
            out.append(sensor_outcomes(state, self.chain.n_atoms, self.chain.n_atoms + 1, h.n_qubits))
        return np.clip(np.array(out).reshape(-1, 4), 0.0, 1.0)

    def evaluate(self, theta: np.ndarray) -> dict:
        if self.test_labels is None:
            return {}
        probs = self.outcome_probabilities(theta, self.test_inputs)
        return {f"test_{k}": v for k, v in scores(probs, self.test_labels, self.codes).items()}

    def validate(self, theta: np.ndarray, rng: np.random.Generator) -> dict:
        """The driver's model selection (``training.validation``): scores on the held-out training points
        from *measured* sensor outcomes, ``validation_shots`` Z-basis shots per point (exact probabilities
        when None); ``output_error`` is the mean Hamming cost ⟨Ĉ⟩."""
        if self.validation_labels is None or len(self.validation_labels) == 0:
            raise QepValueError("'training.validation' needs a non-empty validation set")
        probs = self.outcome_probabilities(theta, self.validation_inputs)
        shots = self.validation_shots
        if shots is not None:
            probs = np.array([rng.multinomial(shots, p / p.sum()) / shots for p in probs])
        val = scores(probs, self.validation_labels, self.codes)
        return {"accuracy": val["accuracy"], "single_shot_accuracy": val["single_shot_accuracy"],
                "output_error": val["loss"],
                "preparations": len(self.validation_labels) * (1 if shots is None else int(shots))}


def sensor_outcomes(state, a: int, b: int, n_qubits: int) -> np.ndarray:
    """(P(gg), P(rg), P(gr), P(rr)) of read-out atoms a, b in ``state`` (rg: a in |r⟩, b in |g⟩), from ⟨n_a⟩,
    ⟨n_b⟩, ⟨n_a n_b⟩."""
    na, nb, nab = np.real(state.expect([PauliProduct.parse(f"n{a}", n_qubits), PauliProduct.parse(f"n{b}", n_qubits),
                                        PauliProduct.parse(f"n{a} n{b}", n_qubits)]))
    return np.array([1 - na - nb + nab, na - nab, nb - nab, nab])


def scores(probabilities: np.ndarray, labels: np.ndarray, codes=DEFAULT_CODES) -> dict:
    """Max-choice accuracy (argmax over the three outcomes that name a phase), single-shot accuracy (the
    probability of the label's outcome), and the mean ⟨Ĉ⟩ (expected Hamming distance to the label's code);
    ``probabilities`` are (gg, rg, gr, rr) per point, ``codes`` the outcomes of disordered, Z2, Z3."""
    p = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels, dtype=int)
    named = p[:, outcome_index(codes)]
    n_a, n_b = p[:, 1] + p[:, 3], p[:, 2] + p[:, 3]
    code = code_bits(codes)[labels]
    cost = (1 - 2 * code[:, 0]) * n_a + code[:, 0] + (1 - 2 * code[:, 1]) * n_b + code[:, 1]
    return {"loss": float(np.mean(cost)), "accuracy": float(np.mean(np.argmax(named, axis=1) == labels)),
            "single_shot_accuracy": float(np.mean(named[np.arange(len(labels)), labels]))}
