"""QEP gradient estimators over a batch, with shots, settings, crossings and preparations.

For a sample (x, t) and parameters θ, with A_k = ∂H/∂θ_k and h_k(β) = ⟨A_k⟩ in the eigenstate
of H(θ, x) + β D (D the nudge direction of the objective, see :mod:`objectives`):

* ``one-sided`` (Scellier eq. 6/8):  ĝ_k = [h_k(β) − h_k(0)] / β,          bias O(β)
* ``symmetric`` (Massar–Mognetti eq. 28): ĝ_k = [h_k(β) − h_k(−β)] / (2β),  bias O(β²)
* ``exact``: the β → 0 linear response 2 Re⟨ψ|A_k (E₀ − H)⁺ (D − ⟨D⟩)|ψ⟩
* ``finite-difference``: central differences of the objective, 2 evaluations per parameter.

Measurement (``measurement=``):

* ``"grouped"`` (default, honest): M shots per (phase, setting); settings are qubit-wise
  commuting groups; the free phase's outputs, hence the error signal, come from shots;
  preparations per sample = Σ_phases Σ_settings M.
* ``"gaussian"`` — *the authors' idealisation* (Wanjura–Marquardt's code): exact ⟨A_k⟩ plus
  Gaussian noise of variance Var(A_k)/M, no grouping (one setting per observable), an exact,
  noise-free error signal.
* ``shots=None``: exact expectation values (no shot noise, no preparations counted).

Shot allocation and adaptive β (:mod:`qep_analog.learning.shots`, symmetric estimator, grouped measurement):
``shot_allocation = "uniform"`` (default) spends ``shots`` on every (sample, phase, setting). ``"even"`` and
``"variance"`` measure a pilot of ``pilot_shots`` per (sample, phase, setting), then spend the rest of the step's
``shot_budget`` (default: the uniform bill) on the nudged phases, evenly or ∝ each phase's measured standard
deviation of its contribution to the gradient (Neyman). ``adaptive_beta = true`` picks the step's β from a
measured bias–variance balance, β* = (K/(2|b|²R))^{1/6}, within [``beta_min``, ``beta``] and the crossing policy.

Crossing policy (PHYSICS.md §1): after preparing a nudged phase we compare it with the free
state; if |⟨ψ₀|ψ_{±β}⟩| < ``overlap_threshold`` the nudge crossed a level. With
``crossing_policy="shrink"`` the sample's β is halved (up to ``max_halvings`` times) and the
phases are prepared again; if the overlap still fails, or with ``crossing_policy="drop"``, the
sample is dropped and counted. With ``crossing_policy="one-sided"`` (symmetric estimator only), a
sample where exactly one of ±β crosses keeps the full β and uses the one-sided estimate from the
uncrossed side, g = s(⟨A⟩_{sβ} − ⟨A⟩₀)/β, paying one measured free phase instead of the 2^k noise
amplification of k halvings; when both sides cross it shrinks as above. Every event is recorded
in ``crossings``. Exactly degenerate free ground states are flagged (``"degenerate"``) — no
finite-β estimator can repair them. A nudged phase the backend flags as uncertified (``state.flagged``,
e.g. an MPS whose energy variance exceeds its tolerance) is treated like a crossing (recorded with
overlap 0); a flagged free phase is recorded as ``"flagged"``. The overlap is an emulation diagnostic
(a lab cannot measure it): no shots are spent or counted on a rejected attempt.

Preparation policy (issue 14): a backend that estimates how well it prepared the free state without knowing
the exact one (the adiabatic backend's second-ramp check) reports a failed preparation as
``info["preparation_flag"] = {"distance": d, "threshold": d₀, ...}``. That is not a level crossing (no smaller β
repairs a non-adiabatic ramp) and is recorded separately, in ``preparation_flags``. ``preparation_policy``:
"keep" (default; recorded only), "shrink" (the sample's weight in the batch mean becomes w = d₀/d < 1:
ĝ = Σ w_i ĝ_i / Σ w_i, stderr √(Σ w_i² σ_i²)/Σ w_i) or "drop" (the sample is dropped before its nudged
phases are prepared, and counted in ``samples_dropped``).

Every state is read through the state interface (``expect``, ``sample``, ``overlap``), so dense and
matrix-product states feed the same estimators; only ``estimator="exact"`` needs a dense state vector.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from qep_analog.equilibrium.base import EquilibriumBackend, EquilibriumState
from qep_analog.equilibrium.dense import StateVector
from qep_analog.errors import QepValueError
from qep_analog.executor import Executor, SerialExecutor
from qep_analog.learning.meter import (  # noqa: F401  (measure_outputs, objective_value: the public API here too)
    MeasurementPlan,
    _Meter,
    _outputs_from_products,
    measure_outputs,
    measurement_plan,
    objective_value,
)
from qep_analog.learning.objectives import Objective
from qep_analog.learning.reference import linear_response_gradient
from qep_analog.measurement.grouping import group_qubitwise
from qep_analog.measurement.observables import output_expectations
from qep_analog.measurement.sampling import ReadoutError
from qep_analog.models.hamiltonian import Hamiltonian

ESTIMATORS = ("one-sided", "symmetric", "exact", "finite-difference")
MEASUREMENTS = ("grouped", "gaussian")
POLICIES = ("shrink", "drop", "one-sided")
PREPARATION_POLICIES = ("keep", "shrink", "drop")


@dataclass(frozen=True, kw_only=True)
class GradientConfig:
    """How to estimate a gradient (validated on creation; change with dataclasses.replace)."""

    estimator: str = "symmetric"
    nudge: str = "error-signal"
    loss: str = "mse"
    loss_scale: float = 1.0
    beta: float = 0.1
    shots: int | None = None
    measurement: str = "grouped"
    readout: ReadoutError | None = None
    mitigate_readout: bool = False
    overlap_threshold: float = 0.9
    crossing_policy: str = "shrink"
    max_halvings: int = 3
    fd_step: float = 1e-3
    preparation_policy: str = "keep"
    shot_allocation: str = "uniform"
    pilot_shots: int | None = None
    shot_budget: int | None = None
    adaptive_beta: bool = False
    beta_min: float | None = None

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise QepValueError(f"'estimator' must be one of {ESTIMATORS}, not {self.estimator!r}")
        if self.measurement not in MEASUREMENTS:
            raise QepValueError(f"'measurement' must be one of {MEASUREMENTS}, not {self.measurement!r}")
        if self.crossing_policy not in POLICIES:
            raise QepValueError(f"'crossing_policy' must be one of {POLICIES}, not {self.crossing_policy!r}")
        if not (np.isfinite(self.beta) and self.beta > 0):
            raise QepValueError(f"'beta' must be a positive finite number, not {self.beta}")
        if self.shots is not None and (not isinstance(self.shots, (int, np.integer)) or self.shots < 1):
            raise QepValueError(f"'shots' must be a positive integer or None, not {self.shots!r}")
        if not 0 <= self.overlap_threshold <= 1:
            raise QepValueError(f"'overlap_threshold' must lie in [0, 1], not {self.overlap_threshold}")
        if not (np.isfinite(self.fd_step) and self.fd_step > 0):
            raise QepValueError(f"'fd_step' must be a positive finite number, not {self.fd_step}")
        if self.preparation_policy not in PREPARATION_POLICIES:
            raise QepValueError(f"'preparation_policy' must be one of {PREPARATION_POLICIES}, "
                                f"not {self.preparation_policy!r}")
        if self.max_halvings < 0:
            raise QepValueError(f"'max_halvings' must be ≥ 0, not {self.max_halvings}")
        Objective(kind=self.nudge, loss=self.loss, scale=self.loss_scale)
        self._check_allocation()

    def _check_allocation(self) -> None:
        """The shot-allocation keys (:mod:`qep_analog.learning.shots`), refused in one line when inconsistent."""
        from qep_analog.learning.shots import ALLOCATIONS

        if self.shot_allocation not in ALLOCATIONS:
            raise QepValueError(f"'shot_allocation' must be one of {ALLOCATIONS}, not {self.shot_allocation!r}")
        if not isinstance(self.adaptive_beta, bool):
            raise QepValueError(f"'adaptive_beta' must be true or false, not {self.adaptive_beta!r}")
        staged = self.shot_allocation != "uniform" or self.adaptive_beta
        for key in ("pilot_shots", "shot_budget"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
                                      or value < 1):
                raise QepValueError(f"'{key}' must be a positive integer, not {value!r}")
            if value is not None and not staged:
                raise QepValueError(f"'{key}' = {value} applies only with shot_allocation 'even' | 'variance' or "
                                    "adaptive_beta = true")
        if self.beta_min is not None:
            if not self.adaptive_beta:
                raise QepValueError(f"'beta_min' = {self.beta_min} applies only with adaptive_beta = true")
            if not (np.isfinite(self.beta_min) and 0 < self.beta_min <= self.beta):
                raise QepValueError(f"'beta_min' must lie in (0, beta = {self.beta}], not {self.beta_min}")
        if not staged:
            return
        what = (f"shot_allocation = {self.shot_allocation!r}" if self.shot_allocation != "uniform"
                else "adaptive_beta = true")
        if self.estimator != "symmetric" or self.measurement != "grouped" or self.shots is None:
            raise QepValueError(f"{what} needs estimator 'symmetric', measurement 'grouped' and finite 'shots' "
                                f"(not {self.estimator!r}, {self.measurement!r}, shots = {self.shots!r})")
        if self.pilot_shots is None:
            raise QepValueError(f"{what} needs 'pilot_shots' (shots per sample, phase and setting before the rest "
                                "is allocated)")

    @property
    def objective(self) -> Objective:
        return Objective(kind=self.nudge, loss=self.loss, scale=self.loss_scale)


@dataclass(frozen=True, kw_only=True)
class GradientEstimate:
    """A batch gradient estimate and everything needed to judge it."""

    parameter_names: tuple[str, ...]
    gradient: np.ndarray
    stderr: np.ndarray
    objective: str
    estimator: str
    nudge: str
    beta: float
    settings: int
    preparations: int | None
    crossings: tuple[dict, ...]
    samples_used: int
    samples_dropped: int
    loss: float
    outputs: np.ndarray
    state_kinds: tuple[str, ...] = ()
    per_sample: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    preparation_flags: tuple[dict, ...] = ()
    runs: tuple[int, ...] = ()  # shots of each run made, when a staged allocation splits phases (learning/shots.py)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("per_sample")
        if not self.runs:  # the uniform path: every run has ``shots``
            d.pop("runs")
        for key in ("gradient", "stderr", "outputs"):
            d[key] = np.asarray(d[key]).tolist()
        d["parameter_names"] = list(self.parameter_names)
        d["crossings"] = list(self.crossings)
        d["preparation_flags"] = list(self.preparation_flags)
        return d


@dataclass(frozen=True)
class _SampleTask:
    hamiltonian: Hamiltonian
    backend: EquilibriumBackend
    theta: np.ndarray
    x: np.ndarray
    target: np.ndarray
    config: GradientConfig
    seed: np.random.SeedSequence
    index: int


@dataclass
class _FreePhase:
    """A sample's free phase, prepared and measured: what its nudged phases and their judgement need."""

    state: EquilibriumState
    y: np.ndarray | None
    direction: object | None  # the nudge direction D (None when the sample was dropped)
    crossings: list
    rng: np.random.Generator  # the sample's stream after the free phase's shots
    preparations: int
    weight: float
    preparation_flags: list
    h_free: np.ndarray | None = None  # one-sided: ⟨A_k⟩ of the free phase and its standard errors
    se_free: np.ndarray | None = None
    result: dict | None = None  # final already: the preparation policy dropped the sample


def _signs(cfg: GradientConfig) -> tuple[int, ...]:
    return (1,) if cfg.estimator == "one-sided" else (1, -1)


def _free_phase(task: _SampleTask) -> _FreePhase:
    h, cfg = task.hamiltonian, task.config
    meter = _Meter(h, cfg, np.random.default_rng(task.seed))
    obj = cfg.objective
    free = task.backend.prepare(h, task.theta, task.x)
    crossings = []
    if free.info.get("degenerate"):
        crossings.append(dict(sample=task.index, phase="free", kind="degenerate", gap=free.gap))
    if free.flagged:  # recorded, not dropped: no β can repair an uncertified free phase
        crossings.append(dict(sample=task.index, phase="free", kind="flagged", flags=list(free.info["flags"])))
    weight, prep_flags = _preparation_weight(task.index, free, cfg.preparation_policy)
    if weight == 0.0:  # "drop": no nudged phase is prepared, no shot spent on them
        result = dict(dropped=True, crossings=crossings, preparations=meter.preparations, y=meter.outputs(free),
                      loss=objective_value(obj, h, free, task.target), kind=free.kind,
                      preparation_flags=prep_flags)
        return _FreePhase(free, None, None, crossings, meter.rng, meter.preparations, weight, prep_flags,
                          result=result)
    h_free = se_free = None
    if cfg.estimator == "one-sided":
        h_free, se_free, y = meter.derivatives_and_outputs(free)
    else:
        y = meter.outputs(free)
    return _FreePhase(free, y, obj.nudge_direction(h, y, task.target), crossings, meter.rng, meter.preparations,
                      weight, prep_flags, h_free, se_free)


def _nudged_phase(task: _SampleTask, free: _FreePhase, sign: int, beta: float) -> EquilibriumState | None:
    """The eigenstate of H + sign·β·D, warm-started from the free state (None for a dropped sample)."""
    if free.result is not None:
        return None
    return task.backend.prepare(task.hamiltonian, task.theta, task.x, free.direction.scaled(sign * beta),
                                reference=free.state)


def _judge(task: _SampleTask, free: _FreePhase, phases: dict, beta: float, attempt: int,
           crossings: list) -> tuple[dict | None, list]:
    """(the sample's result, or None to halve β and prepare its nudged phases again; the crossings so far).

    Compares each nudged phase with the free state (the crossing policy), then measures the kept ones with
    the sample's own stream, continued from the free phase.
    """
    if free.result is not None:
        return free.result, crossings
    h, cfg = task.hamiltonian, task.config
    obj, fs, one_sided = cfg.objective, free.state, cfg.estimator == "one-sided"
    crossings = list(crossings)
    overlaps = {s: fs.overlap(st) for s, st in phases.items()}
    # a level crossing is a ground-state (pure) pathology; Gibbs and steady states vary smoothly at T > 0.
    # A phase the backend could not certify (e.g. MPS energy variance above tolerance) counts as one.
    bad = ({s: (0.0 if phases[s].flagged else o) for s, o in overlaps.items()
            if o < cfg.overlap_threshold or phases[s].flagged} if fs.is_pure else {})
    side = None  # the sign of the one side kept by the "one-sided" policy
    if bad:
        fall_back = cfg.crossing_policy == "one-sided" and len(bad) == 1 and len(phases) == 2
        last = not fall_back and (cfg.crossing_policy == "drop" or attempt == cfg.max_halvings)
        for s, o in bad.items():
            crossings.append(dict(sample=task.index, phase=f"{'+' if s > 0 else '-'}beta", kind="crossing",
                                  overlap=float(o), beta=beta, gap_free=float(fs.gap),
                                  nudge_norm=float(beta * np.sum(np.abs(free.direction.coefficients))),
                                  action="one-sided" if fall_back else "dropped" if last else "shrunk"))
        if last:
            return dict(dropped=True, crossings=crossings, preparations=free.preparations, y=free.y,
                        loss=objective_value(obj, h, fs, task.target), kind=fs.kind), crossings
        if not fall_back:
            return None, crossings
        side = -next(iter(bad))
        phases = {side: phases[side]}
    meter = _Meter(h, cfg, copy.deepcopy(free.rng))  # a copy: judging twice draws the same shots
    meter.preparations = free.preparations
    measured = {s: meter.derivatives(st) for s, st in phases.items()}
    legs = None  # the measured legs, kept when the rest of the shots is allocated later (learning/shots.py)
    if one_sided:
        g = (measured[1][0] - free.h_free) / beta
        se = np.sqrt(measured[1][1] ** 2 + free.se_free**2) / beta
    elif side is not None:  # the uncrossed side against a measured free phase: bias O(β) instead of O(β²)
        h_free, se_free = meter.derivatives(fs)
        g = side * (measured[side][0] - h_free) / beta
        se = np.sqrt(measured[side][1] ** 2 + se_free**2) / beta
        legs = [(side, side / beta, phases[side], *measured[side]), (0, -side / beta, fs, h_free, se_free)]
    else:
        g = (measured[1][0] - measured[-1][0]) / (2 * beta)
        se = np.sqrt(measured[1][1] ** 2 + measured[-1][1] ** 2) / (2 * beta)
        legs = [(s, s / (2 * beta), phases[s], *measured[s]) for s in (1, -1)]
    result = dict(dropped=False, gradient=g, stderr=se, crossings=crossings, preparations=meter.preparations,
                  y=free.y, beta=beta, loss=objective_value(obj, h, fs, task.target), kind=fs.kind,
                  overlaps={str(s): float(o) for s, o in overlaps.items()}, weight=free.weight,
                  preparation_flags=free.preparation_flags)
    if cfg.shot_allocation != "uniform" or cfg.adaptive_beta:
        result.update(free_state=fs, direction=free.direction,
                      legs=[dict(sign=s, beta=beta, coef=c, state=st, mean=m, se=e, shots=cfg.shots)
                            for s, c, st, m, e in legs])
    return result, crossings


def _qep_sample(task: _SampleTask) -> dict:
    """One sample in one process: free phase, ±β phases (β halved on a crossing), measurement."""
    free = _free_phase(task)
    beta, crossings = task.config.beta, free.crossings
    for attempt in range(task.config.max_halvings + 1):
        phases = {s: _nudged_phase(task, free, s, beta) for s in _signs(task.config)}
        result, crossings = _judge(task, free, phases, beta, attempt, crossings)
        if result is not None:
            return result
        beta /= 2
    raise AssertionError("unreachable: the last attempt returns a result")  # pragma: no cover


def _judge_graph(task: _SampleTask, free: _FreePhase, beta: float, attempt: int, crossings: list | None,
                 *states) -> tuple[dict | None, list]:
    phases = dict(zip(_signs(task.config), states, strict=True))
    return _judge(task, free, phases, beta, attempt, free.crossings if crossings is None else crossings)


def _qep_phase_graph(tasks: list[_SampleTask], executor) -> list[dict]:
    """One task per (sample, phase) on an executor that keeps results where they were made (Dask).

    Every free phase is a task; each nudged phase is a task that takes its free phase as an argument (a
    future: the free state stays on the cluster and warm-starts the nudged one there); a third task per
    sample judges the overlaps and measures. Samples whose β is halved go round again with only their
    nudged phases. The functions are those of the one-process path, run in the same order on the same
    stream, so the results are bitwise those of ``_qep_sample``.
    """
    cfg = tasks[0].config
    frees = executor.submit_each(_free_phase, tasks)
    results: list[dict | None] = [None] * len(tasks)
    pending: dict[int, tuple[float, list | None]] = {i: (cfg.beta, None) for i in range(len(tasks))}
    for attempt in range(cfg.max_halvings + 1):
        index = list(pending)
        sub, free, betas = [tasks[i] for i in index], [frees[i] for i in index], [pending[i][0] for i in index]
        states = [executor.submit_each(_nudged_phase, sub, free, [s] * len(index), betas) for s in _signs(cfg)]
        verdicts = executor.gather(executor.submit_each(
            _judge_graph, sub, free, betas, [attempt] * len(index), [pending[i][1] for i in index], *states))
        for i, (result, crossings) in zip(index, verdicts, strict=True):
            if result is None:
                pending[i] = (pending[i][0] / 2, crossings)
            else:
                results[i] = result
                del pending[i]
        if not pending:
            break
    return results


def _preparation_weight(index: int, free: EquilibriumState, policy: str) -> tuple[float, list[dict]]:
    """(weight of the sample in the batch mean, its preparation-flag records) under ``policy``."""
    flag = free.info.get("preparation_flag")
    if not flag:
        return 1.0, []
    distance, threshold = float(flag["distance"]), float(flag["threshold"])
    weight = {"keep": 1.0, "shrink": min(1.0, threshold / distance) if distance > 0 else 1.0, "drop": 0.0}[policy]
    action = {"keep": "kept", "shrink": "shrunk", "drop": "dropped"}[policy]
    return weight, [dict(sample=index, kind="preparation", distance=distance, threshold=threshold, weight=weight,
                         action=action)]


def _exact_sample(task: _SampleTask) -> dict:
    h, cfg = task.hamiltonian, task.config
    obj = cfg.objective
    free = task.backend.prepare(h, task.theta, task.x)
    if not isinstance(free, StateVector):
        raise QepValueError("the 'exact' estimator needs a dense pure eigenstate (e.g. backend 'exact'); use "
                            "'finite-difference' for mixed or matrix-product states")
    y = output_expectations(h, free)
    direction = obj.nudge_direction(h, y, task.target)
    g = linear_response_gradient(h, task.theta, task.x, free, direction)
    crossings = ([dict(sample=task.index, phase="free", kind="degenerate", gap=free.gap)]
                 if free.info.get("degenerate") else [])
    return dict(dropped=False, gradient=g, stderr=np.zeros_like(g), crossings=crossings, preparations=0,
                y=y, beta=0.0, loss=objective_value(obj, h, free, task.target), kind=free.kind)


def _fd_sample(task: _SampleTask) -> dict:
    h, cfg, backend = task.hamiltonian, task.config, task.backend
    rng = np.random.default_rng(task.seed)
    meter = _Meter(h, cfg, rng)
    obj = cfg.objective

    # the cost operator and its settings depend on the target only: build them once per sample
    measure_cost = cfg.shots is not None and obj.kind == "cost-operator" and cfg.measurement == "grouped"
    if measure_cost:
        cost = obj.cost_operator(h, task.target)
        cost_settings = group_qubitwise(cost.products, h.n_qubits)

    def value(theta) -> float:
        state = backend.prepare(h, theta, task.x)
        if measure_cost:
            means, _ = meter.products(state, cost.products, cost_settings)
            return float(cost.constant + cost.coefficients @ means)
        if cfg.shots is not None and obj.kind == "error-signal":
            return obj.loss_of_outputs(meter.outputs(state), task.target)
        # exact expectations, or the gaussian idealisation, which has no shot model for ⟨Ĉ⟩
        return objective_value(obj, h, state, task.target)

    g = np.empty(len(task.theta))
    for k in range(len(task.theta)):
        step = np.zeros_like(task.theta)
        step[k] = cfg.fd_step
        g[k] = (value(task.theta + step) - value(task.theta - step)) / (2 * cfg.fd_step)
    free = backend.prepare(h, task.theta, task.x)
    return dict(dropped=False, gradient=g, stderr=np.full_like(g, np.nan), crossings=[],
                preparations=meter.preparations, y=output_expectations(h, free), beta=0.0,
                loss=objective_value(obj, h, free, task.target), kind=free.kind)


_RUNNERS = {"one-sided": _qep_sample, "symmetric": _qep_sample, "exact": _exact_sample,
            "finite-difference": _fd_sample}


def estimate_gradient(
    hamiltonian: Hamiltonian,
    backend: EquilibriumBackend,
    theta,
    inputs,
    targets,
    config: GradientConfig,
    *,
    seed: int | np.random.SeedSequence = 0,
    executor: Executor | None = None,
) -> GradientEstimate:
    """Batch-mean gradient of ``config.objective`` over samples (inputs[i], targets[i]).

    Each sample runs as an independent task with its own spawned seed.
    """
    theta = hamiltonian.theta_vector(theta)
    inputs = np.atleast_2d(np.asarray(inputs, dtype=float)) if hamiltonian.input_names else None
    targets = np.atleast_2d(np.asarray(targets, dtype=float))
    n = len(targets)
    if inputs is not None and len(inputs) != n:
        raise QepValueError(f"'inputs' has {len(inputs)} samples but 'targets' has {n}")
    obj = config.objective
    seeds = (seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)).spawn(n)
    tasks = [
        _SampleTask(hamiltonian, backend, theta,
                    hamiltonian.input_vector(inputs[i] if inputs is not None else None),
                    obj.check_targets(hamiltonian, targets[i]), config, seeds[i], i)
        for i in range(n)
    ]
    executor = executor or SerialExecutor()
    runner = _RUNNERS[config.estimator]
    phase_tasks = getattr(executor, "phase_tasks", None)  # an executor that can chain tasks (Dask) may ask

    def run(batch: list[_SampleTask]) -> list[dict]:
        if runner is _qep_sample and phase_tasks is not None and phase_tasks(n):
            return _qep_phase_graph(batch, executor)
        return executor.map(runner, batch)

    step_beta = config.beta
    if config.shot_allocation != "uniform" or config.adaptive_beta:  # pilot, then the rest where it counts
        from qep_analog.learning.shots import allocated_results

        results, step_beta = allocated_results(tasks, run, config)
    else:
        results = run(tasks)
    kept = [r for r in results if not r["dropped"]]
    if kept:
        per_sample = np.array([r["gradient"] for r in kept])
        weights = np.array([r.get("weight", 1.0) for r in kept])  # < 1: a flagged preparation, shrunk
        if np.all(weights == 1.0):  # the plain mean, bit for bit as before
            gradient = per_sample.mean(axis=0)
            stderr = np.sqrt(np.sum([r["stderr"] ** 2 for r in kept], axis=0)) / len(kept)
        else:
            gradient = weights @ per_sample / weights.sum()
            stderr = np.sqrt(np.sum([w**2 * r["stderr"] ** 2 for w, r in zip(weights, kept, strict=True)],
                                    axis=0)) / weights.sum()
    else:
        per_sample = np.zeros((0, len(theta)))
        gradient, stderr = np.zeros(len(theta)), np.full(len(theta), np.inf)
    plan = measurement_plan(hamiltonian)
    settings = len(plan.derivative_settings)
    if config.measurement == "gaussian" and config.shots is not None:
        settings = len(plan.derivative_products)
    return GradientEstimate(
        parameter_names=hamiltonian.parameter_names, gradient=gradient, stderr=stderr,
        objective=obj.name, estimator=config.estimator, nudge=config.nudge,
        beta=step_beta if config.estimator in ("one-sided", "symmetric") else 0.0,
        settings=settings,
        preparations=None if config.shots is None else int(sum(r["preparations"] for r in results)),
        crossings=tuple(c for r in results for c in r["crossings"]),
        samples_used=len(kept), samples_dropped=n - len(kept),
        loss=float(np.mean([r["loss"] for r in results])),
        outputs=np.array([r["y"] for r in results]), per_sample=per_sample,
        state_kinds=tuple(sorted({r["kind"] for r in results})),
        preparation_flags=tuple(f for r in results for f in r.get("preparation_flags", ())),
        runs=tuple(int(m) for r in results for m in r.get("runs", ())),
    )
