"""Rydberg-native phase recognition: a 2-atom sensor beside a Rydberg chain, trained by QEP.

The Wanjura–Marquardt phase sensor (PHYSICS.md §2) with system and sensor both Rydberg atoms.
For a sample (Δ/Ω, R_b/a) the register is the chain of :mod:`qep_analog.tasks.rydberg_chain`
(N atoms at spacing a, centred on the origin) plus two sensor atoms s = A, B at trainable offsets
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

Metrics (exact, on the free ground state): max-choice accuracy (argmax over the three code
probabilities = label) and single-shot accuracy (the mean probability that one shot reads the
label's code).
"""

from __future__ import annotations

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
from qep_analog.tasks.rydberg_chain import PHASES, ChainSpec

# sensor bitstring (n_A, n_B) that names each phase of PHASES; (1, 1) names none
CODES = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
OUTCOMES = ("gg", "rg", "gr", "rr")
N_SENSOR = 2


def sensor_hamiltonian(n_chain: int, n_sensor: int = N_SENSOR) -> Hamiltonian:
    """H of chain + sensor as named terms; one structure for every sample of a given N.

    Inputs ``omega`` (½ X_i on every atom) and ``delta_global`` (−n_i on every atom); parameters
    ``delta_s`` (−n on sensor atom s = N, N + 1, …) and ``J_i_j`` (n_i n_j, every pair); outputs
    ``n_s`` on the sensor atoms. A sample's θ holds its register's couplings C6/r⁶.
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
                    for s in range(n_chain, n))
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
    train_positions: bool = True
    offset_units: str = "spacing"
    evaluate_initial: bool = True
    executor: Executor | None = None
    _limits: dict = field(init=False, repr=False)

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
        self.offsets = np.asarray(self.offsets, dtype=float).reshape(-1, 2)
        self.detunings = np.asarray(self.detunings, dtype=float).reshape(-1)
        if self.offsets.shape != (N_SENSOR, 2) or self.detunings.shape != (N_SENSOR,):
            raise QepValueError(f"the sensor has {N_SENSOR} atoms: 'chain.sensor_offsets' must be {N_SENSOR} "
                                f"[x, y] offsets and 'device.detunings' {N_SENSOR} values, not "
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
        self.offsets, self.detunings = self._project(self.offsets, self.detunings)
        self.check_registers(self.theta_of(self.offsets, self.detunings))

    # -------------------------------------------------------------- parameters
    @property
    def parameter_names(self) -> tuple[str, ...]:
        return ("x_A", "y_A", "x_B", "y_B", "delta_A", "delta_B")

    @property
    def n_samples(self) -> int:
        return len(self.labels)

    def parameter_groups(self) -> dict[str, np.ndarray]:
        return {"positions": np.arange(4), "detunings": np.arange(4, 6)}

    def initial_theta(self, config: TrainingConfig) -> np.ndarray:
        if config.theta0 is not None:
            raise QepValueError("'training.theta0' does not apply to the Rydberg phase sensor: set "
                                "'chain.sensor_offsets' and 'device.detunings'")
        return self.theta_of(self.offsets, self.detunings)

    @staticmethod
    def theta_of(offsets, detunings) -> np.ndarray:
        return np.concatenate([np.asarray(offsets, dtype=float).ravel(), np.asarray(detunings, dtype=float)])

    @staticmethod
    def split(theta) -> tuple[np.ndarray, np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        return theta[:4].reshape(2, 2), theta[4:6]

    @cached_property
    def hamiltonian(self) -> Hamiltonian:
        return sensor_hamiltonian(self.chain.n_atoms)

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
            d = off[0] - off[1]
            dist = float(np.linalg.norm(d))
            if dist < dmin:
                u = d / dist if dist > 0 else np.array([1.0, 0.0])
                shift = 0.5 * (dmin - dist) * u
                off[0] += shift
                off[1] -= shift
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
                                   self.controls(self.inputs[i]), CODES[self.labels[i]], self.config, seeds[k],
                                   positions, c6))
        results = (self.executor or SerialExecutor()).map(_sample_gradient, jobs)
        kept = [r for r in results if not r["dropped"]]
        grad = np.zeros(6)
        if kept:  # offsets in units of a: ∂L/∂u = a ∂L/∂r
            scale = [self.chain.controls(self.inputs[i])[1] if self.offset_units == "spacing" else 1.0 for i in batch]
            grad[:4] = np.mean([w * r["positions"] for w, r in zip(scale, results, strict=True) if not r["dropped"]],
                               axis=0).ravel()
            grad[4:] = np.mean([r["detunings"] for r in kept], axis=0)
        if not self.train_positions:
            grad[:4] = 0.0
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
        a, b = self.chain.n_atoms, self.chain.n_atoms + 1
        products = (PauliProduct.parse(f"n{a}", h.n_qubits), PauliProduct.parse(f"n{b}", h.n_qubits),
                    PauliProduct.parse(f"n{a} n{b}", h.n_qubits))
        out = []
        for point in np.atleast_2d(points):
            positions = self.register(point, offsets)
            state = self.backend.prepare(h, self.sample_theta(positions, detunings), self.controls(point))
            na, nb, nab = state.expect(products)
            out.append([1 - na - nb + nab, na - nab, nb - nab, nab])
        return np.clip(np.array(out).reshape(-1, 4), 0.0, 1.0)

    def evaluate(self, theta: np.ndarray) -> dict:
        if self.test_labels is None:
            return {}
        probs = self.outcome_probabilities(theta, self.test_inputs)
        return {f"test_{k}": v for k, v in scores(probs, self.test_labels).items()}


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Max-choice and single-shot accuracy, and the mean ⟨Ĉ⟩ (expected Hamming distance to the code)."""
    p = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels, dtype=int)
    rows = np.arange(len(labels))
    n_a, n_b = p[:, 1] + p[:, 3], p[:, 2] + p[:, 3]
    code = CODES[labels]
    cost = (1 - 2 * code[:, 0]) * n_a + code[:, 0] + (1 - 2 * code[:, 1]) * n_b + code[:, 1]
    return {"loss": float(np.mean(cost)), "accuracy": float(np.mean(np.argmax(p[:, :3], axis=1) == labels)),
            "single_shot_accuracy": float(np.mean(p[rows, labels]))}


def detuning_only_baseline(train_inputs, train_labels, test_inputs, test_labels, bins: int = 20) -> float:
    """Test accuracy of the majority label per Δ/Ω bin of the training set: what a reader of Δ/Ω alone
    (e.g. a sensor that does not see the chain) can reach at best on this box, up to binning."""
    edges = np.linspace(np.min(train_inputs[:, 0]), np.max(train_inputs[:, 0]), bins + 1)
    tr = np.clip(np.digitize(train_inputs[:, 0], edges) - 1, 0, bins - 1)
    te = np.clip(np.digitize(test_inputs[:, 0], edges) - 1, 0, bins - 1)
    majority = np.zeros(bins, dtype=int)
    for b in range(bins):
        counts = np.bincount(np.asarray(train_labels)[tr == b], minlength=len(PHASES))
        majority[b] = int(np.argmax(counts)) if counts.sum() else 0
    return float(np.mean(majority[te] == np.asarray(test_labels)))


# ----------------------------------------------------------------------------- protocol
CHAIN_KEYS = {"n_atoms": (int,), "detuning_over_omega": (list,), "rb_over_a": (list,), "z2_threshold": (int, float),
              "z3_threshold": (int, float), "sensor_offsets": (list,), "sensor_units": (str,)}
_SENSOR_DEVICE_KEYS = ("name", "omega", "detunings", "train_positions", "position_learning_rate")


def validate_chain_section(section) -> None:
    """The ``[chain]`` section: ``n_atoms``, ``detuning_over_omega`` and ``rb_over_a`` ([low, high]),
    ``z2_threshold``, ``z3_threshold`` (see :class:`~qep_analog.tasks.rydberg_chain.ChainSpec`), and the
    sensor's initial ``sensor_offsets`` ([[x_A, y_A], [x_B, y_B]] from chain atom 0) in ``sensor_units``
    ("spacing": units of the chain spacing a, the default; "um": µm)."""
    if not isinstance(section, dict):
        raise QepValueError("[chain] must be a table")
    for key, value in section.items():
        if key not in CHAIN_KEYS:
            raise QepValueError(f"unknown key 'chain.{key}'; allowed: {sorted(CHAIN_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, CHAIN_KEYS[key]):
            raise QepValueError(f"'chain.{key}' has the wrong type: {value!r}")
        if key in ("detuning_over_omega", "rb_over_a") and (len(value) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)):
            raise QepValueError(f"'chain.{key}' must be [low, high], not {value!r}")
        if key == "sensor_offsets" and not all(
                isinstance(row, list) and len(row) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                and abs(v) < 1e3 for v in row) for row in value):
            raise QepValueError(f"'chain.sensor_offsets' must be [[x, y], …] with |x|, |y| < 1000, not {value!r}")


def chain_spec(protocol, device) -> ChainSpec:
    c = protocol.section("chain")
    d = protocol.section("device")
    opts = {"n_atoms": c.get("n_atoms", 7), "omega": float(d.get("omega", 1.6)), "c6": float(device.interaction_coeff)}
    for key, name in (("detuning_over_omega", "detuning_range"), ("rb_over_a", "rb_range")):
        if key in c:
            opts[name] = tuple(float(v) for v in c[key])
    for key in ("z2_threshold", "z3_threshold"):
        if key in c:
            opts[key] = float(c[key])
    return ChainSpec(**opts)


def _data(ctx, spec: ChainSpec):
    from qep_analog.tasks.common import require_int
    from qep_analog.tasks.rydberg_chain import chain_labels, chain_order

    d = ctx.protocol.section("data")
    if d.get("kind", "chain-phases") != "chain-phases":
        raise QepValueError(f"'data.kind' must be 'chain-phases' for task 'rydberg-phases', not {d.get('kind')!r}")
    extra = sorted(set(d) - {"kind", "n_train", "n_test", "seed"})
    if extra:
        raise QepValueError(f"key(s) {['data.' + k for k in extra]} do not apply to task 'rydberg-phases'")
    n_train = require_int(d, "n_train", 300, 1, "data")
    n_test = require_int(d, "n_test", 200, 1, "data")
    if n_train + n_test > 100_000:
        raise QepValueError(f"'data.n_train' + 'data.n_test' must be ≤ 100000, not {n_train + n_test}")
    rng = np.random.default_rng([require_int(d, "seed", 0, 0, "data"), 17])
    points = spec.sample(n_train + n_test, rng)
    order = chain_order(spec, points)
    labels = chain_labels(spec, points, order)
    return points[:n_train], labels[:n_train], points[n_train:], labels[n_train:], order


def run_rydberg_phases(ctx) -> dict:
    """``qep-analog train`` task ``rydberg-phases`` (protocol: protocols/rydberg_phase_sensor.toml)."""
    from qep_analog.device.devices import load_device
    from qep_analog.tasks.build import build_backend, build_gradient_config
    from qep_analog.tasks.common import drive, require_int
    from qep_analog.tasks.rydberg_chain import chain_labels, chain_order

    dev = ctx.protocol.section("device")
    unused = sorted(set(dev) - set(_SENSOR_DEVICE_KEYS))
    if unused:
        raise QepValueError(f"key(s) {['device.' + k for k in unused]} do not apply to task 'rydberg-phases' "
                            f"(it uses {list(_SENSOR_DEVICE_KEYS)})")
    device = load_device(dev.get("name", "WeightedAnalogDevice"))
    spec = chain_spec(ctx.protocol, device)
    x_train, y_train, x_test, y_test, _ = _data(ctx, spec)
    chain = ctx.protocol.section("chain")
    task = RydbergPhaseTask(chain=spec, device=device, offsets=chain.get("sensor_offsets", [[-1.0, 0.0], [1.0, 1.0]]),
                            offset_units=chain.get("sensor_units", "spacing"),
                            detunings=dev.get("detunings", [0.0, 0.0]), backend=build_backend(ctx.protocol),
                            config=build_gradient_config(ctx.protocol), inputs=x_train, labels=y_train,
                            test_inputs=x_test, test_labels=y_test,
                            train_positions=bool(dev.get("train_positions", True)), executor=ctx.executor)
    driver = drive(ctx, task, optimizer="adam", learning_rate=0.05, steps=60, batch_size=10,
                   learning_rates={"positions": float(dev.get("position_learning_rate", 0.3))})
    theta = driver.parameters_
    hist = driver.history_
    final = {**task.evaluate(theta), **driver.totals()}
    final.update({"initial_test_accuracy": hist[0].get("test_accuracy"),
                  "initial_test_single_shot_accuracy": hist[0].get("test_single_shot_accuracy"),
                  "detuning_only_baseline": detuning_only_baseline(x_train, y_train, x_test, y_test),
                  "class_fractions_test": np.bincount(y_test, minlength=3).astype(float) / len(y_test),
                  "blockade_radius_um": spec.blockade_radius_um, "spacing_range_um": list(spec.spacing_range_um),
                  "n_chain": spec.n_atoms, "device": device.name, "objective": task.config.objective.name})
    res = require_int(ctx.protocol.section("task"), "plot_resolution", 12, 2, "task")
    d_axis = np.linspace(*spec.detuning_range, res)
    r_axis = np.linspace(*spec.rb_range, res)
    grid = np.array([[d, r] for r in r_axis for d in d_axis])
    probs = task.outcome_probabilities(theta, grid)
    order = chain_order(spec, grid)
    exact = chain_labels(spec, grid, order)
    final["grid_accuracy"] = float(np.mean(np.argmax(probs[:, :3], axis=1) == exact))
    offsets, detunings = task.split(theta)
    return {"history": hist, "final": final, "theta": driver.named(), **driver.last_iterate(),
            "plot": {"detuning_over_omega": d_axis.tolist(), "rb_over_a": r_axis.tolist(),
                     "outcome_probabilities": probs.tolist(), "labels": exact.tolist(), "order": order.tolist(),
                     "phases": list(PHASES), "outcomes": list(OUTCOMES), "n_chain": spec.n_atoms,
                     "thresholds": [spec.z2_threshold, spec.z3_threshold],
                     "sensor_offsets": offsets.tolist(), "sensor_detunings": detunings.tolist(),
                     "sensor_units": task.offset_units, "initial_offsets": task.offsets.tolist(),
                     "test_inputs": x_test.tolist(), "test_labels": y_test.tolist()}}


def phase_map_figure(results: dict):
    """Predicted phase (max-choice) over (Δ/Ω, R_b/a), the chain's order-parameter labels as contours,
    and the blockade criterion R_b/a = 1, 2, 3 (nearest / next-nearest neighbours blockaded)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    p = results["plot"]
    d, r = np.array(p["detuning_over_omega"]), np.array(p["rb_over_a"])
    probs = np.array(p["outcome_probabilities"]).reshape(len(r), len(d), 4)
    pred = np.argmax(probs[..., :3], axis=-1)
    labels = np.array(p["labels"]).reshape(len(r), len(d))
    cmap = ListedColormap(["#cccccc", "#4c72b0", "#dd8452"])
    fig, ax = plt.subplots(figsize=(6.2, 4.6))
    ax.pcolormesh(d, r, pred, cmap=cmap, vmin=-0.5, vmax=2.5, shading="nearest", alpha=0.85)
    for phase in (1, 2):  # the boundary of each ordered phase's label region
        if np.any(labels == phase):
            ax.contour(d, r, (labels == phase).astype(float), levels=[0.5], colors="k", linewidths=1.2)
    for line in (1.0, 2.0, 3.0):
        if r.min() <= line <= r.max():
            ax.axhline(line, color="k", ls=":", lw=0.8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(3)]
    ax.legend(handles, [f"sensor says {ph}" for ph in p["phases"]], loc="upper left", fontsize=7)
    ax.set_xlabel("Δ/Ω")
    ax.set_ylabel("R_b/a")
    acc = results["final"].get("test_accuracy", float("nan"))
    single = results["final"].get("test_single_shot_accuracy", float("nan"))
    ax.set_title(f"N = {p['n_chain']} chain + 2-atom sensor: test max-choice {acc:.3f}, single-shot {single:.3f}\n"
                 f"black: labels from m_Z2, m_Z3 ≥ {p['thresholds']} at N = {p['n_chain']}; dotted: R_b/a = 1, 2",
                 fontsize=8)
    return fig


def _register() -> None:
    from qep_analog.protocol import register_section

    register_section("chain", validate_chain_section)


_register()
