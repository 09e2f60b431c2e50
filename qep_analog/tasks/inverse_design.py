"""Inverse design on a Rydberg array: positions and DMM detunings whose ground state carries a target Z2 order.

Model (:class:`~qep_analog.device.rydberg.RydbergModel`, pulser's convention, PHYSICS.md §3; no inputs):

    H = Σ_i (Ω/2) X_i − Σ_i δ_i n_i + Σ_{i<j} C6/r_ij⁶ n_i n_j      (rad/µs, µm; Ω fixed, not trained)

Cost (Z-diagonal, every atom read out): the number of sites off a target pattern t ∈ {0, 1}^N,

    Ĉ = Σ_i (n_i − t_i)² = Σ_i (1 − 2t_i) n_i + Σ_i t_i,   ⟨Ĉ⟩/N = (1 − m)/2,

with m = (1/N) Σ_i (2t_i − 1)(2⟨n_i⟩ − 1) ∈ [−1, 1] the Z2 (checkerboard) order parameter pinned to the
target sublattice (m = 1: the checkerboard). ``pattern = "checkerboard"`` takes t_i = (a_i + b_i) mod 2
from the lattice coordinates (a_i, b_i) = round(r_i / spacing_um) of the initial register, so a register
with missing sites (defects) keeps its checkerboard; an explicit 0/1 list is also accepted.

Trainable: θ = the (x, y) of the atoms in ``train_positions`` (µm) and the δ_i of the atoms in
``train_detunings`` (rad/µs, realised by the DMM); P = 2·|train_positions| + |train_detunings|. Every
update is projected on the device limits (min spacing, max radial distance, |δ| ≤ max_abs_detuning,
DMM span ≤ |bottom_detuning|) with the frozen coordinates held fixed (:meth:`InverseDesignTask.project`).

Gradient of ⟨Ĉ⟩, two methods with shots counted the same way (one shot = one preparation + one Z-basis
readout of every atom; M = ``gradient.shots`` per estimate):

* ``method = "qep"``: symmetric cost-operator QEP through :class:`~qep_analog.device.training.RydbergTask`
  (the nudge ±βĈ is the DMM detuning change δ_i → δ_i ∓ β(1 − 2t_i)); ∂H/∂θ is Z-diagonal, so one setting
  serves every parameter: 3 phases (free, ±β) × 1 setting × M shots per step, **independent of P**.
* ``method = "fd"``: central finite differences of the measured cost,
  ĝ_k = [Ĉ(θ + h_k e_k) − Ĉ(θ − h_k e_k)] / (2h_k), Ĉ from M Z-basis shots of the prepared ground state,
  plus one free preparation for the measured cost of the record: (2P + 1) × 1 setting × M shots per
  step. Steps h_k are ``fd_step_um`` (positions) and ``fd_step_detuning`` (detunings). A stencil point
  outside the device limits is projected back (with the frozen coordinates fixed) and the difference
  divided by the actual displacement of coordinate k. (The generic ``estimator = "finite-difference"`` of
  :mod:`qep_analog.learning.gradient` differentiates the Hamiltonian's parameters, i.e. the N(N − 1)/2
  couplings J_ij, which are not independently settable on atoms; here we difference the physical θ, and
  read the cost with the same :func:`~qep_analog.learning.gradient.measure_outputs`.)

Ground states come from ``[backend]``: ``exact`` (Lanczos; ≤ ~16–20 atoms) or ``mps`` (DMRG, larger arrays).
The record of every step holds the exact ⟨Ĉ⟩ of the free state (``batch_loss``; emulation only, no shots),
the shots of the step (``preparations``) and, every ``eval_every`` steps, ``cost`` and ``z2_order`` after
the update. Randomness of step s is seeded by (seed, s), so ``--resume`` continues bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.learning.driver import Draw, StepEstimate, TrainingConfig
from qep_analog.learning.gradient import GradientConfig, measure_outputs
from qep_analog.measurement.observables import output_expectations
from qep_analog.protocol import register_section
from qep_analog.tasks.common import RunContext, drive

if TYPE_CHECKING:  # the device layer imports pulser: only when a task is built
    from qep_analog.device.rydberg import RydbergModel
    from qep_analog.equilibrium.base import EquilibriumBackend

METHODS = ("qep", "fd")


def shots_per_step(method: str, n_parameters: int, shots: int, settings: int = 1) -> int:
    """Shots of one gradient step: settings × phases × shots per estimate.

    QEP (symmetric): 3 phases (free, +β, −β), whatever P. FD (central): 2P + 1 preparations (P pairs of
    stencil points and one free point for the measured cost). A Rydberg cost and ∂H/∂θ are Z-diagonal:
    ``settings`` = 1.
    """
    if method not in METHODS:
        raise QepValueError(f"'method' must be one of {METHODS}, not {method!r}")
    if n_parameters < 1 or shots < 1 or settings < 1:
        raise QepValueError(f"shots_per_step needs P, shots, settings ≥ 1, not {n_parameters}, {shots}, {settings}")
    phases = 3 if method == "qep" else 2 * n_parameters + 1
    return settings * phases * shots


def checkerboard(positions_um: np.ndarray, spacing_um: float) -> np.ndarray:
    """t_i = (a_i + b_i) mod 2 with (a_i, b_i) = round(r_i / spacing) relative to the first atom."""
    if not (np.isfinite(spacing_um) and spacing_um > 0):
        raise QepValueError(f"'design.spacing_um' must be a positive number, not {spacing_um!r}")
    cells = np.rint((np.asarray(positions_um) - np.asarray(positions_um)[0]) / spacing_um).astype(int)
    return (cells.sum(axis=1) % 2 == 0).astype(float)


@dataclass(kw_only=True)
class InverseDesignTask:
    """θ = (x, y of ``positions`` atoms, δ of ``detunings`` atoms) for the one driver (module docstring)."""

    model: RydbergModel
    backend: EquilibriumBackend
    config: GradientConfig
    target: np.ndarray
    positions: tuple[int, ...]
    detunings: tuple[int, ...]
    method: str = "qep"
    fd_step_um: float = 0.1
    fd_step_detuning: float = 0.5
    evaluate_initial: bool = True
    n_samples: int = 1

    def __post_init__(self) -> None:
        from qep_analog.device.training import RydbergTask

        n = self.model.n_atoms
        self.target = np.asarray(self.target, dtype=float).reshape(-1)
        if self.target.shape != (n,) or not np.all(np.isin(self.target, (0.0, 1.0))):
            raise QepValueError(f"'design.pattern' must give one 0/1 target per atom ({n}), not {self.target.tolist()}")
        for key in ("positions", "detunings"):
            atoms = tuple(int(a) for a in getattr(self, key))
            if any(not 0 <= a < n for a in atoms) or len(set(atoms)) != len(atoms):
                raise QepValueError(f"'design.train_{key}' must be distinct atoms in 0..{n - 1}, not {list(atoms)}")
            setattr(self, key, tuple(sorted(atoms)))
        if not self.positions and not self.detunings:
            raise QepValueError("'design': nothing to train (train_positions and train_detunings are both empty)")
        if self.method not in METHODS:
            raise QepValueError(f"'design.method' must be one of {METHODS}, not {self.method!r}")
        for key in ("fd_step_um", "fd_step_detuning"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise QepValueError(f"'design.{key}' must be a positive number, not {value!r}")
        self.model = self.model.with_(output_atoms=tuple(range(n)), input_atoms=(),
                                      train_positions=bool(self.positions), trainable_detunings=self.detunings)
        self.inner = RydbergTask(model=self.model, backend=self.backend, config=self.config,
                                 inputs=np.zeros((1, 0)), targets=self.target[None, :], evaluate_initial=False)
        self.base = self.inner.theta_of(self.model)
        self.index = np.array([2 * a + c for a in self.positions for c in (0, 1)]
                              + [2 * n + a for a in self.detunings], dtype=int)
        self.fd_steps = np.array([self.fd_step_um] * (2 * len(self.positions))
                                 + [self.fd_step_detuning] * len(self.detunings))

    # -------------------------------------------------------------- parameters
    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"{c}_{a}" for a in self.positions for c in "xy") + tuple(f"delta_{a}" for a in self.detunings)

    def parameter_groups(self) -> dict[str, np.ndarray]:
        k = 2 * len(self.positions)
        groups = {"positions": np.arange(k), "detunings": np.arange(k, k + len(self.detunings))}
        return {name: idx for name, idx in groups.items() if len(idx)}

    def initial_theta(self, config: TrainingConfig) -> np.ndarray:
        if config.theta0 is not None:
            raise QepValueError("'training.theta0' does not apply to task 'inverse-design': set [device] positions_um "
                                "and detunings")
        return self.base[self.index].copy()

    def full(self, theta: np.ndarray) -> np.ndarray:
        """The RydbergTask's θ (every position, every detuning) with the frozen ones at their initial values."""
        out = self.base.copy()
        out[self.index] = theta
        return out

    def model_at(self, theta: np.ndarray) -> RydbergModel:
        return self.inner.model_at(self.full(theta))

    # -------------------------------------------------------------- the driver's hooks
    def gradient(self, theta: np.ndarray, batch, draw: Draw) -> StepEstimate:
        if self.method == "qep":
            step = self.inner.gradient(self.full(theta), np.array([0]), draw)
            return dataclasses.replace(step, gradient=step.gradient[self.index])
        return self._finite_differences(theta, draw)

    def _measured_cost(self, theta: np.ndarray, rng: np.random.Generator, reference=None):
        """(cost read from M Z-basis shots, exact ⟨Ĉ⟩, preparations, state) at θ; ``reference`` warm-starts the
        eigensolver (the free state of the step), which changes the emulation time, not the state."""
        model = self.model_at(theta)
        h = model.hamiltonian()
        state = self.inner._backend(model).prepare(h, model.theta(), None, reference=reference)
        exact = output_expectations(h, state)
        y, preparations = measure_outputs(h, state, self.config, shots=self.config.shots, rng=rng)
        t = self.target
        return float(np.sum((1 - 2 * t) * y + t)), float(np.sum((1 - 2 * t) * exact + t)), preparations, state

    def _finite_differences(self, theta: np.ndarray, draw: Draw) -> StepEstimate:
        rng = np.random.default_rng(draw.sequence())
        measured, exact, preparations, free = self._measured_cost(theta, rng)
        grad = np.empty(len(theta))
        for k in range(len(theta)):
            plus, minus = theta.copy(), theta.copy()
            plus[k] += self.fd_steps[k]
            minus[k] -= self.fd_steps[k]
            plus, minus = self.project(plus), self.project(minus)
            c_plus, _, p1, _ = self._measured_cost(plus, rng, free)
            c_minus, _, p2, _ = self._measured_cost(minus, rng, free)
            preparations += p1 + p2
            width = plus[k] - minus[k]
            grad[k] = (c_plus - c_minus) / width if width > 0 else 0.0
        return StepEstimate(gradient=grad, loss=exact, preparations=preparations,
                            extras={"measured_cost": measured})

    def project(self, theta: np.ndarray) -> np.ndarray:
        """Nearest admissible θ with frozen coordinates fixed: detunings clipped to the channel limit and the
        DMM span, trained atoms pulled inside the radial limit and pushed apart to the minimum spacing (a
        pair with one frozen atom moves only the trained one)."""
        full = self.full(theta)
        n = self.model.n_atoms
        lim = self.model.limits()
        pos, det = full[:2 * n].reshape(n, 2).copy(), full[2 * n:].copy()
        free_det = np.zeros(n, dtype=bool)
        free_det[list(self.detunings)] = True
        if lim["max_abs_delta"] is not None:
            det = np.where(free_det, np.clip(det, -lim["max_abs_delta"], lim["max_abs_delta"]), det)
        bottom = self.model.dmm_bottom()
        if bottom is not None and free_det.any():  # DMM: span max δ − min δ ≤ |bottom| (bottom < 0)
            if (~free_det).any():
                frozen = det[~free_det]
                det = np.where(free_det, np.clip(det, frozen.max() + bottom, frozen.min() - bottom), det)
            det = np.where(free_det, np.maximum(det, det.max() + bottom), det)
        moving = np.zeros(n, dtype=bool)
        moving[list(self.positions)] = True
        dmin, rmax = lim["min_distance_um"] * (1 + 1e-6), lim["max_radial_distance_um"]
        for _ in range(200):
            moved = False
            if rmax is not None:
                r = np.linalg.norm(pos, axis=1)
                far = moving & (r > rmax)
                if far.any():
                    pos[far] *= (rmax * (1 - 1e-9) / r[far])[:, None]
                    moved = True
            for i, j in self.model.pairs:
                if not (moving[i] or moving[j]):
                    continue
                d = pos[i] - pos[j]
                dist = float(np.linalg.norm(d))
                if dist < dmin:
                    u = d / dist if dist > 0 else np.array([1.0, 0.0])
                    gap = dmin - dist
                    share_i = 0.5 if moving[i] and moving[j] else float(moving[i])
                    pos[i] += share_i * gap * u
                    pos[j] -= (1 - share_i) * gap * u
                    moved = True
            if not moved:
                break
        problems = self.model.violations(positions_um=pos, detunings=det)
        if problems:
            raise QepValueError("projection onto the device constraints failed: " + "; ".join(problems))
        return np.concatenate([pos.ravel(), det])[self.index]

    def evaluate(self, theta: np.ndarray) -> dict:
        """Exact ⟨Ĉ⟩ and Z2 order m = 1 − 2⟨Ĉ⟩/N of the ground state at θ (emulation only: no shots)."""
        cost = self.exact_cost(theta)
        return {"cost": cost, "z2_order": 1.0 - 2.0 * cost / self.model.n_atoms}

    def exact_cost(self, theta: np.ndarray) -> float:
        cost, _ = self.inner.cost(self.full(theta), np.zeros((1, 0)), self.target[None, :])
        return cost


# ------------------------------------------------------------------------------------ the protocol
DESIGN_KEYS = {"pattern": (str, list), "spacing_um": (int, float), "train_positions": (str, list),
               "train_detunings": (str, list), "method": (str,), "fd_step_um": (int, float),
               "fd_step_detuning": (int, float)}


def validate_design_section(section) -> None:
    """The ``[design]`` table: types only here; values are checked when the task is built."""
    from qep_analog.tasks.common import check_section_types

    check_section_types(section, "design", DESIGN_KEYS)


def _atoms(value, n: int, key: str) -> tuple[int, ...]:
    if value == "all":
        return tuple(range(n))
    if value == "none":
        return ()
    if isinstance(value, list) and all(isinstance(a, int) and not isinstance(a, bool) for a in value):
        return tuple(value)
    raise QepValueError(f"'design.{key}' must be \"all\", \"none\" or a list of atom indices, not {value!r}")


def build_task(ctx: RunContext) -> tuple[InverseDesignTask, dict]:
    """(task, device spec) from the protocol's ``[device]``, ``[design]``, ``[backend]`` and ``[gradient]``."""
    from qep_analog.device.bundle import model_from, register_protocol_section, step_spec
    from qep_analog.device.devices import load_device
    from qep_analog.equilibrium.base import get_backend
    from qep_analog.tasks.build import build_gradient_config

    register_protocol_section()
    p = ctx.protocol
    spec = step_spec(dict(p.sections, data={"inputs": [], "targets": []}))
    spec["device_object"] = load_device(spec["device"])
    model = model_from(spec)
    n = model.n_atoms
    design = p.section("design")
    pattern = design.get("pattern", "checkerboard")
    if pattern == "checkerboard":
        target = checkerboard(model.positions_um, float(design.get("spacing_um", 6.0)))
    elif isinstance(pattern, list):
        target = np.asarray(pattern, dtype=float)
    else:
        raise QepValueError(f"'design.pattern' must be \"checkerboard\" or a list of 0/1 per atom, not {pattern!r}")
    b = p.section("backend")
    name = b.get("name", "exact")
    if name not in ("exact", "mps"):
        raise QepValueError(f"task 'inverse-design' prepares ground states with backend 'exact' or 'mps', not {name!r}")
    options = dict(b.get("options", {}))
    backend = get_backend(name, model=model, **options) if name == "mps" else get_backend(name, **options)
    config = build_gradient_config(p)
    if config.nudge != "cost-operator" or config.estimator != "symmetric":
        raise QepValueError("task 'inverse-design' runs symmetric cost-operator QEP (or design.method = 'fd'): set "
                            "gradient.nudge = 'cost-operator', gradient.estimator = 'symmetric'")
    method = design.get("method", "qep")
    if method == "fd" and config.shots is None:
        ctx.notes.append("finite differences with exact expectations (gradient.shots unset): no shots counted")
    return InverseDesignTask(model=model, backend=backend, config=config, target=target,
                             positions=_atoms(design.get("train_positions", "all"), n, "train_positions"),
                             detunings=_atoms(design.get("train_detunings", "all"), n, "train_detunings"),
                             method=method, fd_step_um=float(design.get("fd_step_um", 0.1)),
                             fd_step_detuning=float(design.get("fd_step_detuning", 0.5))), spec


def run_inverse_design(ctx: RunContext) -> dict:
    from qep_analog.device.lab import lab_metadata, shot_bill

    task, spec = build_task(ctx)
    model0 = task.model
    rates = {"positions": float(spec["training"]["position_learning_rate"])} if task.positions else None
    driver = drive(ctx, task, optimizer="sgd", learning_rate=1.0, steps=10, batch_size=1, learning_rates=rates)
    hist = driver.history_
    totals = driver.totals()
    model = task.model_at(driver.parameters_)
    p, shots = len(task.parameter_names), task.config.shots
    if shots and (task.config.shot_allocation != "uniform" or task.config.adaptive_beta):
        from qep_analog.learning.shots import sequence_runs  # pilot, probe and rest: separate runs (jobs)

        runs = sequence_runs(hist, shots)
    else:
        runs = [shots or 0] * (0 if not shots else totals["preparations"] // shots)
    bill = shot_bill(runs, device=model.device, lab=lab_metadata(spec["device"]))
    last = task.evaluate(driver.parameters_)
    final = {"method": task.method, "parameters": p, "atoms": model.n_atoms,
             "shots_per_step": shot_count(task), "initial_cost": hist[0]["cost"], "cost": last["cost"],
             "initial_z2_order": hist[0]["z2_order"], "z2_order": last["z2_order"], "steps": driver.step_,
             "preparations": totals["preparations"], "shot_bill": bill.as_dict(),
             "crossing_events": totals["crossing_events"], "violations": model.violations(),
             "objective": "⟨Ĉ⟩, Ĉ = Σ_i (n_i − t_i)² (sites off the target pattern)", "device": model.device.name}
    return {"history": hist, "final": final, "theta": driver.named(),
            "plot": {"kind": "inverse-design", "positions_before": model0.positions_um.tolist(),
                     "positions_after": model.positions_um.tolist(), "detunings_before": model0.detunings.tolist(),
                     "detunings_after": model.detunings.tolist(), "target": task.target.tolist(),
                     "device": model.device.name}}


def shot_count(task: InverseDesignTask) -> int | None:
    """Shots per step of ``task`` (None with exact expectations)."""
    if task.config.shots is None:
        return None
    return shots_per_step(task.method, len(task.parameter_names), int(task.config.shots))


def design_plot(results: dict):
    """Register before/after training: colour = local detuning δ_i, filled marker = target Rydberg (t_i = 1)."""
    import matplotlib.pyplot as plt

    d, f = results["plot"], results["final"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True, sharey=True)
    det_all = np.array(d["detunings_before"] + d["detunings_after"])
    vmin, vmax = float(det_all.min()), float(det_all.max())
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 1, vmax + 1
    target = np.array(d["target"])
    sc = None
    for ax, key, title in ((axes[0], "before", f"before: Z2 order {f['initial_z2_order']:.3f}"),
                           (axes[1], "after", f"after: Z2 order {f['z2_order']:.3f}")):
        pos, det = np.array(d[f"positions_{key}"]), np.array(d[f"detunings_{key}"])
        sc = ax.scatter(pos[:, 0], pos[:, 1], c=det, cmap="coolwarm", vmin=vmin, vmax=vmax, s=320,
                        edgecolors="k", linewidths=np.where(target > 0.5, 2.5, 0.5), zorder=3)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x (µm)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y (µm)")
    fig.colorbar(sc, ax=axes, label="local detuning δ_i (rad/µs)")
    fig.suptitle(f"inverse design ({f['method']}, P = {f['parameters']}) on {d['device']}: thick rim = target "
                 f"Rydberg site; cost {f['initial_cost']:.3f} → {f['cost']:.3f}", fontsize=9)
    return fig


register_section("design", validate_design_section)
