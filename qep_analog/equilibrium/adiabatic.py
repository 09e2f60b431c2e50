"""The "adiabatic" backend: prepare the ground state of a Rydberg model by a smooth pulser ramp.

H(θ, x) = Σ (Ω/2)(cos φ X_i + sin φ Y_i) − Σ δ_i n_i + Σ C6/r_ij⁶ n_i n_j (pulser's convention,
see :mod:`qep_analog.device.rydberg`). From |g…g⟩ every control follows one schedule s(t) from
Ω = 0, δ_i = δ₀ < 0 to the target (:mod:`qep_analog.device.sequences`): ``schedule="cosine"``
(½(1 − cos πt/T)), "linear", "local-adiabatic" or "arc-cosine" (gap-aware, from the free path's spectrum
per sample, :mod:`qep_analog.equilibrium.schedules`). The nudge, a diagonal Σ c_ℓ n_ℓ (or
Σ c_ℓ Z_ℓ = Σ c_ℓ(1 − 2n_ℓ)) already multiplied by β, becomes a local detuning change δ_ℓ → δ_ℓ − c_ℓ:
``nudge="simultaneous"`` ramps it with the same schedule (or switches it as a step for comparison);
``nudge="after-preparation"`` prepares the free state in T − ``nudge_ramp_ns`` − ``hold_ns`` and then
ramps the nudge on ("cached" QEP; what that estimates is derived in docs/adiabatic_qep.md).

Emulation: pulser-simulation's ``QutipBackendV2`` with ``QutipConfig`` (solver tolerances set
explicitly, optional ``NoiseModel``, optional channel modulation; shot-to-shot noise requires an
explicit ``n_trajectories``; the noise draws are seeded from the backend's ``seed`` and the sequence,
so noisy runs are reproducible), or the project's fast emulators (``emulator="krylov"|"subspace"``).
With a noise model and ``n_trajectories`` the default is ``emulator="trajectories"``: quantum-jump
trajectories on the full-space propagator (:mod:`qep_analog.equilibrium.emulators.trajectories`, seeded per
(``seed``, sequence, trajectory)), returned as their mixture (K state vectors, no 4^N matrix; with
``dephase``/``quality_check`` its density matrix); ``"pulser"``
stays selectable, and stays the default for a noise model without ``n_trajectories`` (exact mesolve).
The prepared state is converted to the package basis (our vector = pulser vector[::-1]).
``info`` holds the fidelity to the exact ground state, the energy above it, the gap, the
sequence and its DMM plan.

    backend = get_backend("adiabatic", model=model, duration_ns=3000)
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from qep_analog.device.rydberg import RydbergModel
from qep_analog.device.sequences import RampSpec, model_sequence
from qep_analog.equilibrium.base import EquilibriumState, register_backend
from qep_analog.equilibrium.emulators.reference import SolverOptions, has_shot_noise, run_pulser
from qep_analog.equilibrium.schedules import SCHEDULES, path_spectrum, schedule_samples
from qep_analog.errors import QepValueError
from qep_analog.models.hamiltonian import Hamiltonian
from qep_analog.models.pauli import PauliSum

EMULATORS = ("pulser", "krylov", "subspace", "trajectories", "emu-mps")
DEPHASE = ("none", "hold-pair")
# Chosen by bench/adiabatic_qep.py (docs/adiabatic_qep.md): at 4 µs the median relative QEP-gradient error on
# the classifier's samples and random qep_lab_device registers fell from 0.58 (cosine) to 0.05.
DEFAULT_SCHEDULE = "local-adiabatic"
QUALITY_CHECKS = ("none", "second-ramp")


def nudge_to_detunings(nudge: PauliSum | None, n_atoms: int) -> np.ndarray:
    """Per-atom detuning changes for a diagonal one-body nudge: c n_ℓ → −c, c Z_ℓ → +2c.

    Constants are dropped (they shift energies only); anything else raises: a Rydberg array
    realises a nudge only as local detunings.
    """
    change = np.zeros(n_atoms)
    if nudge is None:
        return change
    for c, p in nudge.terms:
        if len(p.factors) != 1 or p.factors[0][1] not in ("n", "Z"):
            raise QepValueError(f"nudge term {c:+g} {p} is not a one-body n or Z term: a Rydberg array "
                                f"realises nudges only as local detunings on the output atoms")
        q, letter = p.factors[0]
        if q >= n_atoms:
            raise QepValueError(f"nudge term {p} acts on atom {q} of a {n_atoms}-atom register")
        change[q] += -c if letter == "n" else 2.0 * c
    return change


def lowest_levels(h) -> tuple[np.ndarray, np.ndarray]:
    """Energies and vectors of a sparse H, ascending: all of them (≤ 10 qubits, dense), else the lowest two by
    Lanczos at tolerance 1e-10. The exact reference for fidelities and gaps of prepared states."""
    if h.shape[0] <= 2**10:
        return scipy.linalg.eigh(h.toarray())
    w, v = scipy.sparse.linalg.eigsh(h, k=2, which="SA", tol=1e-10)
    order = np.argsort(w)
    return w[order], v[:, order]


def _derived_seed(seed: int, text: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:".encode() + text.encode()).digest()
    return int.from_bytes(digest[:4], "little")


def emulate_pulser(sequence, *, noise_model=None, n_trajectories: int | None = None,
                   with_modulation: bool = False, atol: float = 1e-10, rtol: float = 1e-8,
                   nsteps: int = 200_000, seed: int | None = None) -> np.ndarray:
    """Final state of ``sequence`` from pulser's QutipBackendV2, in the package basis: a ket for
    noiseless runs, a density matrix with noise. A thin front to
    :func:`~qep_analog.equilibrium.emulators.reference.run_pulser` with this backend's tighter
    default tolerances: explicit qutip solver options, collapse operators through ``mesolve``,
    shot-to-shot noise only with an explicit ``n_trajectories``, drawn reproducibly from ``seed``.
    """
    state, _ = run_pulser(sequence, noise_model=noise_model, n_trajectories=n_trajectories,
                          with_modulation=with_modulation, options=SolverOptions(atol=atol, rtol=rtol, nsteps=nsteps),
                          seed=seed)
    return state


class AdiabaticBackend:
    """Prepare H(θ, x) + nudge of a :class:`RydbergModel` by a smooth ramp, emulated (see module)."""

    name = "adiabatic"

    def __init__(self, *, model: RydbergModel, duration_ns: int = 3000, start_detuning: float = -20.0,
                 shape: str | None = None, nudge_switch: str | float = "ramped", emulator: str | None = None,
                 schedule: str | None = None, schedule_boundary: float = 0.3, schedule_points: int = 41,
                 nudge: str = "simultaneous", nudge_ramp_ns: int = 1000, hold_ns: int = 0,
                 dephase: str = "none", quality_check: str = "none", quality_ramp_fraction: float = 0.75,
                 quality_threshold: float | None = None,
                 noise_model=None, n_trajectories: int | None = None, with_modulation: bool = False,
                 atol: float = 1e-10, rtol: float = 1e-8, nsteps: int = 200_000,
                 compare_exact: bool = True, coupling_rtol: float = 1e-6,
                 emulator_tolerance: float = 1e-7, seed: int = 0):
        if not isinstance(model, RydbergModel):
            raise QepValueError(f"'model' must be a RydbergModel, not {type(model).__name__}")
        if isinstance(noise_model, str):  # "device": the device's own model, as pulser's prefer_device_noise_model
            if noise_model != "device" or model.device.noise_model is None:
                raise QepValueError(f"'noise_model' must be a pulser NoiseModel, None or 'device' (for a device with "
                                    f"a noise model), not {noise_model!r} on {model.device.name}")
            noise_model = model.device.noise_model
        if emulator is None:  # issue 15: a noise model with a trajectory count runs our quantum-jump trajectories
            emulator = "trajectories" if noise_model is not None and n_trajectories else "pulser"
        if emulator not in EMULATORS:
            raise QepValueError(f"'emulator' must be one of {EMULATORS}, not {emulator!r}")
        # ``shape`` is the older name for the cosine/linear schedules; an explicit ``schedule`` wins.
        schedule = schedule if schedule is not None else shape if shape is not None else DEFAULT_SCHEDULE
        if schedule not in SCHEDULES:
            raise QepValueError(f"'schedule' must be one of {SCHEDULES}, not {schedule!r}")
        if not 0 < schedule_boundary <= 1:
            raise QepValueError(f"'schedule_boundary' must be in (0, 1], not {schedule_boundary}")
        if int(schedule_points) < 3:
            raise QepValueError(f"'schedule_points' must be ≥ 3, not {schedule_points}")
        if dephase not in DEPHASE:
            raise QepValueError(f"'dephase' must be one of {DEPHASE}, not {dephase!r}")
        if dephase != "none" and nudge != "after-preparation":
            raise QepValueError(f"'dephase' = {dephase!r} needs nudge = 'after-preparation', not {nudge!r}")
        if quality_check not in QUALITY_CHECKS:
            raise QepValueError(f"'quality_check' must be one of {QUALITY_CHECKS}, not {quality_check!r}")
        if not 0 < quality_ramp_fraction < 1:
            raise QepValueError(f"'quality_ramp_fraction' must be in (0, 1), not {quality_ramp_fraction}")
        if quality_threshold is not None and not 0 < quality_threshold <= 1:
            raise QepValueError(f"'quality_threshold' must be in (0, 1] or None, not {quality_threshold}")
        self.dephase = dephase
        self.quality_check = quality_check
        self.quality_ramp_fraction = float(quality_ramp_fraction)
        self.quality_threshold = None if quality_threshold is None else float(quality_threshold)
        self._quality: dict = {}
        self.model = model
        self.schedule = schedule
        self.schedule_boundary = float(schedule_boundary)
        self.schedule_points = int(schedule_points)
        self.ramp = RampSpec(duration_ns=int(duration_ns), start_detuning=float(start_detuning),
                             shape=schedule if schedule in ("cosine", "linear") else "cosine",
                             nudge_switch=nudge_switch, nudge=nudge, nudge_ramp_ns=int(nudge_ramp_ns),
                             hold_ns=int(hold_ns))
        self._profiles: dict = {}
        self.emulator = emulator
        self.noise_model = noise_model
        self.n_trajectories = n_trajectories
        self.with_modulation = bool(with_modulation)
        self.solver_options = dict(atol=float(atol), rtol=float(rtol), nsteps=int(nsteps))
        self.compare_exact = bool(compare_exact)
        self.coupling_rtol = float(coupling_rtol)
        self.emulator_tolerance = float(emulator_tolerance)
        self.seed = int(seed)
        if has_shot_noise(noise_model) and not n_trajectories:
            raise QepValueError("the noise model has shot-to-shot noise: set 'n_trajectories' explicitly")
        if emulator == "trajectories" and not n_trajectories:
            raise QepValueError("emulator 'trajectories' needs 'n_trajectories' (quantum-jump trajectories)")
        if emulator not in ("pulser", "trajectories", "emu-mps") and (noise_model is not None or with_modulation):
            raise QepValueError(f"emulator {emulator!r} supports neither noise nor modulation; use 'pulser'")
        self._model_h = model.hamiltonian()

    def readout_error(self):
        """The noise model's SPAM readout flips as a measurement-layer ReadoutError (or None).

        pulser applies p_false_pos / p_false_neg only when it samples; our states carry none of it,
        so pass this to the gradient config (``GradientConfig(readout=backend.readout_error())``).
        """
        from qep_analog.measurement.sampling import ReadoutError

        nm = self.noise_model
        if nm is None or "SPAM" not in nm.noise_types or not (nm.p_false_pos or nm.p_false_neg):
            return None
        return ReadoutError(p_false_pos=float(nm.p_false_pos), p_false_neg=float(nm.p_false_neg))

    def _check_hamiltonian(self, hamiltonian: Hamiltonian) -> None:
        mine = self._model_h
        if (hamiltonian.n_qubits != mine.n_qubits or hamiltonian.parameter_names != mine.parameter_names
                or hamiltonian.input_names != mine.input_names):
            raise QepValueError("the adiabatic backend prepares its RydbergModel's Hamiltonian "
                                f"(parameters {list(mine.parameter_names)}, inputs {list(mine.input_names)}); "
                                f"got one with parameters {list(hamiltonian.parameter_names)}")

    def with_model(self, model: RydbergModel) -> AdiabaticBackend:
        new = object.__new__(AdiabaticBackend)
        new.__dict__.update(self.__dict__)
        new.model, new._model_h, new._profiles, new._quality = model, model.hamiltonian(), {}, {}
        return new

    @staticmethod
    def _controls_key(controls: dict) -> str:
        return hashlib.sha256(np.concatenate([np.ravel(controls["positions_um"]), np.ravel(controls["detunings"]),
                                              [controls["omega"], controls["phase"]]]).tobytes()).hexdigest()

    def _spectrum(self, controls: dict):
        key = self._controls_key(controls)
        if key not in self._profiles:
            if len(self._profiles) > 256:
                self._profiles.clear()
            self._profiles[key] = self.path_spectrum(controls)
        return self._profiles[key]

    def path_spectrum(self, controls: dict):
        """Spectrum of the free preparation path to ``controls`` (see :func:`schedules.path_spectrum`)."""
        from qep_analog.device.rydberg import pair_couplings

        return path_spectrum(pair_couplings(np.asarray(controls["positions_um"], float), self.model.c6),
                             controls["omega"], controls["phase"], controls["detunings"], self.ramp.start_detuning,
                             points=self.schedule_points)

    def profile(self, controls: dict) -> np.ndarray | None:
        """Preparation samples s(t) for the free path to ``controls`` (None: the ramp's own shape).

        The local-adiabatic schedule is computed from the *free* path and shared by the nudged
        sequences of the same (θ, x), so that they differ only by the nudge (cached per controls)."""
        if self.schedule in ("cosine", "linear"):
            return None
        return self.profile_for(controls, self.ramp.preparation_ns)

    def profile_for(self, controls: dict, n_samples: int) -> np.ndarray:
        return schedule_samples(self.schedule, n_samples, spectrum=self._spectrum(controls),
                                boundary=self.schedule_boundary)

    def dephasing_delay_ns(self, controls: dict) -> int:
        """Delay of the second sequence of a "hold-pair": π/ω rounded to the 4 ns clock, ω the gap of the
        free target to the lowest level the ramp couples to (capped at ``hold_ns``)."""
        omega_end = float(self._spectrum(controls).coupled_gap[-1])
        delay = int(4 * round(1000.0 * np.pi / omega_end / 4)) if np.isfinite(omega_end) else 0
        return min(max(delay, 0), int(self.ramp.hold_ns))

    def sequence(self, theta, x=None, nudge: PauliSum | None = None, *, register=None, ramp: RampSpec | None = None):
        """(pulser Sequence, DetuningPlan) preparing H(θ, x) + nudge (with ``ramp``, default this backend's)."""
        ramp = self.ramp if ramp is None else ramp
        controls = self.model.controls(theta, x, coupling_rtol=self.coupling_rtol)
        change = nudge_to_detunings(nudge, self.model.n_atoms)
        profile = None
        if self.schedule not in ("cosine", "linear"):
            profile = self.profile_for(controls, ramp.preparation_ns)
        return model_sequence(self.model, controls, ramp, nudge_detunings=change, register=register, profile=profile)

    def _prepared_state(self, theta, x, nudge) -> tuple[np.ndarray, object, object, dict]:
        """Final state (vector, or the density matrix of a hold-pair mixture), sequence, plan, extra info."""
        seq, plan = self.sequence(theta, x, nudge)
        state = self.run_sequence(seq)
        if self.dephase == "none" or nudge is None or not np.any(nudge_to_detunings(nudge, self.model.n_atoms)):
            return state, seq, plan, {}
        controls = self.model.controls(theta, x, coupling_rtol=self.coupling_rtol)
        delay = self.dephasing_delay_ns(controls)
        other, _ = self.sequence(theta, x, nudge, ramp=dataclasses.replace(self.ramp, nudge_delay_ns=delay))
        second = self.run_sequence(other)
        rho = [st if st.ndim == 2 else np.outer(st, st.conj()) for st in (state, second)]
        return 0.5 * (rho[0] + rho[1]), seq, plan, dict(dephasing_delay_ns=delay, second_sequence=other)

    def preparation_quality(self, hamiltonian: Hamiltonian, theta, x, state: np.ndarray) -> dict:
        """Estimates of the free preparation's quality that need no exact ground state.

        * ``second_ramp_distance``: total-variation distance between the Z-basis bitstring distributions
          of this preparation and of one with the preparation shortened to ``quality_ramp_fraction``
          (measurable from the same kind of shots; ≈ 0 when both are adiabatic);
        * ``output_shift``: max |Δ⟨O_ℓ⟩| of the outputs between the two;
        * ``energy_variance`` ⟨H²⟩ − ⟨H⟩² (rad²/µs²; on hardware it needs X/Y-basis settings besides Z)
          and ``variance_infidelity`` = Var H / g², g the free target's coupled gap (a two-level estimate
          of 1 − F).
        """
        controls = self.model.controls(theta, x, coupling_rtol=self.coupling_rtol)
        key = self._controls_key(controls)
        if key in self._quality:
            return self._quality[key]
        prep = self.ramp.preparation_ns
        short_prep = max(16, int(4 * round(prep * self.quality_ramp_fraction / 4)))
        short = dataclasses.replace(self.ramp, duration_ns=self.ramp.duration_ns - prep + short_prep)
        seq, _ = self.sequence(theta, x, None, ramp=short)
        other = self.run_sequence(seq)
        probs = [np.abs(v) ** 2 if v.ndim == 1 else np.real(np.diag(v)) for v in (state, other)]
        dense = [v if v.ndim == 1 else None for v in (state, other)]
        h = hamiltonian.matrix(theta, x)
        out = {}
        out["second_ramp_distance"] = float(0.5 * np.abs(probs[0] - probs[1]).sum())
        if dense[0] is not None and dense[1] is not None:
            y = [hamiltonian.output_expectations(v) for v in dense]
            out["output_shift"] = float(np.max(np.abs(np.asarray(y[0]) - np.asarray(y[1])))) if len(y[0]) else 0.0
            hv = h @ dense[0]
            mean = float(np.real(np.vdot(dense[0], hv)))
            var = max(float(np.real(np.vdot(hv, hv))) - mean**2, 0.0)
            gap = float(self._spectrum(controls).coupled_gap[-1])
            out.update(energy_variance=var, variance_infidelity=var / gap**2 if np.isfinite(gap) else float("nan"))
        out["second_ramp_ns"] = int(short.duration_ns)
        if len(self._quality) > 256:
            self._quality.clear()
        self._quality[key] = out
        return out

    def run_sequence(self, sequence, *, noise_seed: int | None = None) -> np.ndarray:
        """Final state of a sequence in the package basis, with this backend's emulator.

        ``noise_seed`` seeds pulser's noise trajectories (default: derived from the backend's ``seed``
        and the sequence's abstract representation, so equal sequences see equal noise draws)."""
        if self.emulator == "pulser":
            if noise_seed is None and has_shot_noise(self.noise_model):
                noise_seed = _derived_seed(self.seed, sequence.to_abstract_repr())
            return emulate_pulser(sequence, noise_model=self.noise_model, n_trajectories=self.n_trajectories,
                                  with_modulation=self.with_modulation, seed=noise_seed, **self.solver_options)
        if self.emulator == "trajectories":
            from qep_analog.equilibrium.emulators.trajectories import run_trajectories

            result = run_trajectories(sequence, self.noise_model, n_trajectories=int(self.n_trajectories),
                                      seed=self.seed if noise_seed is None else int(noise_seed),
                                      with_modulation=self.with_modulation)
            return result.density_matrix() if result.n_trajectories > 1 else result.states[0]
        try:
            from qep_analog.equilibrium.emulators import emulate
        except ImportError:
            raise QepValueError(f"emulator {self.emulator!r} is not available yet (qep_analog.equilibrium."
                                f"emulators.emulate); use emulator='pulser'") from None
        return np.asarray(emulate(sequence, method=self.emulator, tolerance=self.emulator_tolerance).state)

    def prepare(self, hamiltonian: Hamiltonian, theta, x=None, nudge: PauliSum | None = None,
                reference: EquilibriumState | None = None) -> EquilibriumState:
        """Ramp to H(θ, x) + nudge and emulate. ``reference`` is not used: the ramp path, not an
        eigensolver, decides which state is followed (crossings show up as low fidelity and overlap)."""
        self._check_hamiltonian(hamiltonian)
        theta = hamiltonian.theta_vector(theta)
        xv = hamiltonian.input_vector(x)
        if self.emulator == "trajectories" and self.dephase == "none" and self.quality_check == "none":
            from qep_analog.equilibrium.emulators.trajectory_prepare import prepare_trajectories

            return prepare_trajectories(self, hamiltonian, theta, xv, nudge)  # K vectors, no 4^N matrix
        if self.emulator == "emu-mps":  # an MPS, no 2^N array (issue 13); energy from the mps backend's MPO
            from qep_analog.equilibrium.emulators.emu_mps import prepare_emu_mps

            return prepare_emu_mps(self, hamiltonian, theta, xv, nudge)
        state, seq, plan, more = self._prepared_state(theta, xv, nudge)
        extra = None if nudge is None else nudge.matrix(hamiltonian.n_qubits)
        h = hamiltonian.matrix(theta, xv, extra=extra)
        if state.ndim == 1:
            state = state / np.linalg.norm(state)
            energy = float(np.real(np.vdot(state, h @ state)))
        else:
            energy = float(np.real(np.sum(h.toarray() * state.T)))
        info = dict(sequence=seq, detuning_plan=plan, duration_ns=self.ramp.duration_ns, emulator=self.emulator,
                    nudge_switch=self.ramp.nudge_switch, noise=self.noise_model is not None, schedule=self.schedule,
                    nudge_mode=self.ramp.nudge, nudge_ramp_ns=self.ramp.nudge_ramp_ns, hold_ns=self.ramp.hold_ns,
                    dephase=self.dephase, **more)
        if self.quality_check == "second-ramp":
            if nudge is None:
                quality = self.preparation_quality(hamiltonian, theta, xv, state)
            else:  # the nudged phases share the free preparation's verdict (computed first by the estimators)
                key = self._controls_key(self.model.controls(theta, xv, coupling_rtol=self.coupling_rtol))
                quality = self._quality.get(key)
            if quality is not None:
                info["preparation"] = quality
                if self.quality_threshold is not None and quality["second_ramp_distance"] > self.quality_threshold:
                    # a failed preparation, not a crossing: the gradient's preparation_policy keeps, shrinks or drops it
                    info["preparation_flag"] = dict(
                        distance=quality["second_ramp_distance"], threshold=self.quality_threshold,
                        message=f"preparation: Z-distribution moves by {quality['second_ramp_distance']:.3g} (> "
                                f"quality_threshold {self.quality_threshold:g}) when the ramp is shortened to "
                                f"{quality['second_ramp_ns']} ns")
        gap = float("nan")
        if self.compare_exact and hamiltonian.n_qubits <= 16:
            w, v = lowest_levels(h)
            ground = v[:, 0]
            fid = (abs(np.vdot(ground, state)) ** 2 if state.ndim == 1
                   else float(np.real(np.vdot(ground, state @ ground))))
            gap = float(w[1] - w[0])
            info.update(fidelity=float(fid), infidelity=float(1 - fid), energy_above_ground=energy - float(w[0]),
                        ground_energy=float(w[0]), degenerate=bool(gap < 1e-9))
        return EquilibriumState(state=state, kind="pure-prepared", energy=energy, gap=gap, info=info)


def minimum_gap(model: RydbergModel, theta, x=None, nudge: PauliSum | None = None, *, ramp: RampSpec,
                points: int = 201) -> tuple[float, float]:
    """(minimum gap E₁ − E₀ along the ramp path, ramp fraction where it occurs) by dense diagonalisation
    of H(s) = s Ω/2 Σ(cos φ X + sin φ Y) − Σ [δ₀ + s(d_i − δ₀)] n_i + Σ J n n for s in [0, 1]."""
    controls = model.controls(theta, x)
    det = controls["detunings"] + nudge_to_detunings(nudge, model.n_atoms)
    best = (np.inf, 0.0)
    for s in np.linspace(0.0, 1.0, points):
        path = model.with_(omega=s * controls["omega"], detunings=ramp.start_detuning + s * (det - ramp.start_detuning),
                           input_atoms=(), trainable_detunings=(), train_positions=False)
        w = scipy.linalg.eigvalsh(path.hamiltonian().dense())
        if w[1] - w[0] < best[0]:
            best = (float(w[1] - w[0]), float(s))
    return best


def _factory(**options) -> AdiabaticBackend:
    return AdiabaticBackend(**options)


register_backend("adiabatic", _factory)
__all__ = ["AdiabaticBackend", "emulate_pulser", "minimum_gap", "nudge_to_detunings"]
