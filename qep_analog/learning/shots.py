"""Shots where they lower the gradient's error: allocation by measured variance and adaptive β (issue 17 part 4).

A step of symmetric QEP spends its shots on *legs*: the nudged phases (sample s, sign ±) of the batch. The
batch gradient is ĝ = Σ_j a_j ĥ_j with ĥ_j = ⟨A⟩ measured on leg j (a vector over the parameters) and
a_j = ±w_s / (2 β_s Σ_s' w_s') (w_s = 1 unless the preparation policy shrinks a sample). With m_j shots on
leg j its variance (trace over the parameters) is

    Var ĝ = Σ_j c_j² / m_j,     c_j = |a_j| σ_j,   σ_j² = Σ_k Var(A_k) on leg j (per shot).

**Allocation** (``gradient.shot_allocation``; a step's budget B = ``gradient.shot_budget``, by default the
uniform bill ``shots`` × samples × (output settings + 2 × derivative settings)):

* ``uniform`` (default): M = ``shots`` per (sample, phase, setting), the free phase included: unchanged.
* ``even``: a pilot of m₀ = ``pilot_shots`` per (sample, phase, setting), the free phase included (it gives the
  outputs and the loss record; cost-operator nudging does not need it for the gradient); the rest R of B split
  equally between the nudged legs. This is the ablation that isolates what moving shots off the free phase
  does.
* ``variance``: the same pilot, then the rest ∝ the pilot's measured c_j (Neyman allocation), which minimises
  Σ_j c_j²/m_j under Σ_j m_j = R: m_j = R c_j / Σ c (Var = (Σ c)²/R, against L Σ c²/R for an even split of L
  legs; equal only when every c_j is the same). The pilot shots are pooled with the rest (the pilot is the
  floor: every leg keeps ≥ m₀). Integer shots by largest remainder (ties to the lower index), so the
  allocation is a deterministic function of the measured pilot, itself seeded by (seed, step, sample, phase).

Counts are per derivative setting: a leg of m shots costs m × (derivative settings) preparations (one on a
Rydberg array). Legs share their settings' counts.

**Runs** (the bill's jobs): the pilot, the probe and the rest of a leg are separate runs of a sequence on the
device, i.e. separate submissions, each billed as ⌈m / max_runs_per_job⌉ jobs. Every result of a staged step
records the shots of each run it made (``runs``: pilot legs and the free phase m₀ each, probe legs m₀, the rest
m₁ > 0; one entry per setting), so a leg whose Neyman share is 0 makes no second run. Per sample and step with
one setting per phase: 5 runs (``even``/``variance``: 3 pilots + 2 rests), 7 with adaptive β's probe, 3 on the
uniform path (not recorded there: every run has ``shots``). :func:`sequence_runs` reads a training history.

**Adaptive β** (``gradient.adaptive_beta = true``): per step, a batch β* that balances the symmetric
estimator's bias b β² (b = h'''(0)/6, the third-order response) against its shot noise K/(β² R):

    MSE(β) = |b|² β⁴ + K / (β² R)   ⇒   β* = (K / (2 |b|² R))^{1/6},   clipped to [β_min, β_max].

β_max = ``gradient.beta``, lowered per sample by the crossing policy (the sample's β after its halvings is
its own ceiling); β_min = ``gradient.beta_min`` (default β_max / 2^max_halvings). The bias is measured, not
assumed: the pilot is taken at ±β₁ (the sample's β) and at ±β₁/2, and Richardson's difference
b̂_s = [ĝ_s(β₁) − ĝ_s(β₁/2)] / (¾ β₁²) is averaged over the batch; |b|² is estimated without its noise bias,
|b|² ≈ Σ_k (b̄_k² − se(b̄_k)²), and only when that excess is detected at 2σ (> 2√(2 Σ_k se(b̄_k)⁴)); an undetected
bias gives β* = β_max. So β never exceeds the configured β: set ``gradient.beta`` to the largest β worth
trying. K = β² Var ĝ · R from the pilot's σ_j under the chosen allocation ((Σ_j |a_j| β σ_j)² for
``variance``, L Σ_j (a_j β σ_j)² otherwise).
Legs at β* = β₁ (or β₁/2) pool the pilot (or probe) shots; others are prepared at β* (the crossing check is
repeated; a crossing falls back to β₁) and get at least m₀ shots. With ``adaptive_beta`` the allocation
``uniform`` splits the rest evenly (as ``even``).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from qep_analog.errors import QepValueError

ALLOCATIONS = ("uniform", "even", "variance")
_PROBE_STREAM = 2**20 + 1  # spawn-key tails of a sample's extra streams: the ±β₁/2 probe, the main shots
_MAIN_STREAM = 2**20 + 2


def allocate_shots(scales, total: int, *, floors=None, mode: str = "variance") -> np.ndarray:
    """Integer shots per leg summing exactly to ``total``: ``floors`` first, the rest ∝ ``scales``.

    ``mode = "variance"``: the rest ∝ scales (Neyman: scales = per-shot standard deviations c_j);
    ``"even"``: equal. Rounding by largest remainder, ties to the lower index; all-zero scales split evenly.
    """
    c = np.asarray(scales, dtype=float)
    floors = np.zeros(len(c), dtype=np.int64) if floors is None else np.asarray(floors, dtype=np.int64)
    if mode not in ("variance", "even"):
        raise QepValueError(f"allocation mode must be 'variance' or 'even', not {mode!r}")
    if len(c) == 0:
        if total:
            raise QepValueError(f"cannot allocate {total} shots to no leg")
        return np.zeros(0, dtype=np.int64)
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise QepValueError(f"allocation scales must be finite and ≥ 0, not {c.tolist()}")
    rest = int(total) - int(floors.sum())
    if rest < 0:
        raise QepValueError(f"the floors ({int(floors.sum())} shots) exceed the total ({total})")
    if mode == "even" or c.sum() == 0:
        c = np.ones(len(c))
    share = rest * c / c.sum()
    base = np.floor(share).astype(np.int64)
    left = rest - int(base.sum())
    order = np.lexsort((np.arange(len(c)), -(share - base)))  # largest fraction first, then lower index
    base[order[:left]] += 1
    return floors + base


def allocation_variance(scales, shots) -> float:
    """Σ_j c_j² / m_j: the variance (trace) of Σ_j a_j ĥ_j with m_j shots on leg j, c_j = |a_j| σ_j."""
    c, m = np.asarray(scales, dtype=float), np.asarray(shots, dtype=float)
    return float(np.sum(c**2 / m))


def adaptive_beta(bias_squared: float, noise: float, shots: float, *, beta_min: float, beta_max: float) -> float:
    """β* = (K / (2 |b|² R))^{1/6} minimising |b|² β⁴ + K/(β² R), clipped to [β_min, β_max].

    ``bias_squared`` = |b|² (the squared β² coefficient of the symmetric estimator's bias), ``noise`` = K (the
    batch variance times β² R), ``shots`` = R. No measurable bias (|b|² = 0) gives β_max.
    """
    if not 0 < beta_min <= beta_max:
        raise QepValueError(f"'beta_min' must lie in (0, beta_max = {beta_max}], not {beta_min}")
    if bias_squared <= 0 or shots <= 0:
        return float(beta_max)
    beta = (noise / (2.0 * bias_squared * shots)) ** (1.0 / 6.0)
    return float(min(max(beta, beta_min), beta_max))


def _pool(m0: int, mean0, se0, m1: int, mean1, se1):
    """Means of m0 and m1 shots pooled as one sample of m0 + m1 (exact for these linear estimators)."""
    m = m0 + m1
    return (m0 * mean0 + m1 * mean1) / m, np.sqrt((m0 * se0) ** 2 + (m1 * se1) ** 2) / m


def _stream(task, tail: int, leg: int) -> np.random.Generator:
    seq = task.seed
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, tail, leg)))


def check_budget(config, n_samples: int, output_settings: int, derivative_settings: int) -> int:
    """The step's budget B, refused (one line naming the keys) when the pilot and floors do not fit in it."""
    m0 = config.pilot_shots
    legs = 4 if config.adaptive_beta else 2
    per_sample = m0 * (output_settings + legs * derivative_settings)
    floors = 2 * m0 * derivative_settings if config.adaptive_beta else 0
    budget = config.shot_budget
    if budget is None:
        budget = config.shots * n_samples * (output_settings + 2 * derivative_settings)
    need = n_samples * (per_sample + floors)
    if budget < need:
        raise QepValueError(f"'gradient.shot_budget' = {budget} (per step) is below the {need} shots the pilot needs "
                            f"({n_samples} samples × pilot_shots = {m0} × {legs + output_settings} phase settings"
                            f"{' + the floors of the ±β* legs' if floors else ''}): lower 'gradient.pilot_shots' "
                            "or raise the budget")
    return int(budget)


def allocated_results(tasks: list, run_pilot, config) -> tuple[list[dict], float]:
    """The batch's per-sample results under ``config``'s allocation / adaptive β; (results, the step's β).

    ``run_pilot(pilot_tasks)`` runs the usual per-sample pipeline (free phase, ±β with the crossing policy,
    measurement) on tasks whose config has ``shots = pilot_shots``; each kept sample comes back with its
    measured legs. The probe, the choice of β* and the rest of the shots are done here, in this process, on
    streams seeded by each sample's seed: the result depends on (seed, step, sample, phase) only.
    """
    from qep_analog.learning.gradient import _Meter, measurement_plan

    h = tasks[0].hamiltonian
    plan = measurement_plan(h)
    n_out, n_der = len(plan.output_settings), len(plan.derivative_settings)
    budget = check_budget(config, len(tasks), n_out, n_der)
    m0 = config.pilot_shots
    pilot_cfg = replace(config, shots=m0)
    results = copy.deepcopy(run_pilot([replace(t, config=pilot_cfg) for t in tasks]))  # fresh, aligned arrays
    for r in results:  # the pilot: one run of m₀ shots per (phase, setting) measured
        r["runs"] = [m0] * (r["preparations"] // m0)
    kept = [i for i, r in enumerate(results) if not r["dropped"]]
    weights = {i: results[i].get("weight", 1.0) for i in kept}
    total_weight = sum(weights.values()) or 1.0

    def sigma(leg) -> float:  # per-shot standard deviation (trace over the parameters) of ⟨A⟩ on a leg
        return float(np.sqrt(leg["shots"] * np.sum(leg["se"] ** 2)))

    step_beta = config.beta
    probes: dict[int, dict] = {}
    if config.adaptive_beta:
        meter_cfg = replace(config, shots=m0)
        for i in kept:
            r, task = results[i], tasks[i]
            if [leg["sign"] for leg in r["legs"]] != [1, -1]:
                continue  # a one-sided fallback keeps its β₁: no probe
            half = r["beta"] / 2
            legs = []
            for j, sign in enumerate((1, -1)):
                state = task.backend.prepare(h, task.theta, task.x, r["direction"].scaled(sign * half),
                                             reference=r["free_state"])
                ok = (not state.flagged) and (not r["free_state"].is_pure
                                              or r["free_state"].overlap(state) >= config.overlap_threshold)
                meter = _Meter(h, meter_cfg, _stream(task, _PROBE_STREAM, j))
                mean, se = meter.derivatives(state)
                r["preparations"] += meter.preparations
                r["runs"] += [m0] * (meter.preparations // m0)
                legs.append(dict(sign=sign, beta=half, coef=sign / (2 * half), state=state, mean=mean, se=se,
                                 shots=m0, ok=ok))
            probes[i] = dict(legs=legs, ok=all(leg["ok"] for leg in legs))
        step_beta = _choose_beta(config, results, probes, weights, total_weight, budget, sigma, n_der)
    # the main legs: pilot legs (pooled), probe legs at β₁/2 (pooled), or new ones at β*
    legs_of: dict[int, list[dict]] = {}
    for i in kept:
        r, task = results[i], tasks[i]
        beta_i = min(step_beta, r["beta"])
        if not config.adaptive_beta or beta_i == r["beta"] or [leg["sign"] for leg in r["legs"]] != [1, -1]:
            legs_of[i] = r["legs"]
            continue
        if i in probes and probes[i]["ok"] and beta_i == r["beta"] / 2:
            legs_of[i] = probes[i]["legs"]
            continue
        new = []
        for pilot_leg in r["legs"]:
            state = task.backend.prepare(h, task.theta, task.x, r["direction"].scaled(pilot_leg["sign"] * beta_i),
                                         reference=r["free_state"])
            if state.flagged or (r["free_state"].is_pure
                                 and r["free_state"].overlap(state) < config.overlap_threshold):
                new = None  # a crossing below β₁ (rare): keep the pilot legs at β₁
                break
            new.append(dict(sign=pilot_leg["sign"], beta=beta_i, coef=pilot_leg["sign"] / (2 * beta_i), state=state,
                            mean=None, se=None, shots=0, sigma=sigma(pilot_leg)))
        legs_of[i] = new if new is not None else r["legs"]
    order = [(i, j) for i in kept for j in range(len(legs_of[i]))]
    spent = sum(r["preparations"] for r in results)
    rest = max(budget - spent, 0) // n_der
    floors = [m0 if legs_of[i][j]["shots"] == 0 else 0 for i, j in order]
    scales = [abs(legs_of[i][j]["coef"]) * weights[i] / total_weight
              * (legs_of[i][j]["sigma"] if legs_of[i][j]["shots"] == 0 else sigma(legs_of[i][j])) for i, j in order]
    mode = "variance" if config.shot_allocation == "variance" else "even"
    extra = allocate_shots(scales, rest, floors=floors, mode=mode) if order else np.zeros(0, dtype=np.int64)
    for (i, j), m1 in zip(order, extra, strict=True):
        leg = legs_of[i][j]
        if m1 == 0:
            continue
        meter = _Meter(h, replace(config, shots=int(m1)), _stream(tasks[i], _MAIN_STREAM, j))
        mean1, se1 = meter.derivatives(leg["state"])
        results[i]["preparations"] += meter.preparations
        results[i]["runs"] += [int(m1)] * (meter.preparations // int(m1))  # the rest: a run of its own
        if leg["shots"]:
            leg["mean"], leg["se"] = _pool(leg["shots"], leg["mean"], leg["se"], int(m1), mean1, se1)
        else:
            leg["mean"], leg["se"] = mean1, se1
        leg["shots"] += int(m1)
    for i in kept:
        r, legs = results[i], legs_of[i]
        r["gradient"] = sum(leg["coef"] * leg["mean"] for leg in legs)
        r["stderr"] = np.sqrt(sum(leg["coef"] ** 2 * leg["se"] ** 2 for leg in legs))
        r["beta"] = legs[0]["beta"]
        r["shots"] = [leg["shots"] for leg in legs]
    for r in results:  # states stay here: the estimate records numbers only
        for key in ("legs", "free_state", "direction"):
            r.pop(key, None)
    return results, step_beta


def sequence_runs(history, shots: int) -> list[int]:
    """Shots of each separate run of a sequence in a training ``history`` (the driver's records).

    A step's recorded ``runs`` (a staged allocation: pilot, probe and rest are separate runs) count as they are;
    the rest of its ``preparations`` (every preparation on the uniform path, validation outputs) are runs of
    ``shots`` each. The bill's jobs are then Σ ⌈m / max_runs_per_job⌉ over the runs.
    """
    if not shots or shots < 1:
        raise QepValueError(f"'gradient.shots' must be a positive integer to count runs, not {shots!r}")
    out: list[int] = []
    for record in history:
        runs = [int(m) for m in record.get("runs", ())]
        rest = int(record.get("preparations") or 0) - sum(runs)
        if rest < 0:
            raise QepValueError(f"step {record.get('step')}: 'runs' add up to {sum(runs)} shots, more than its "
                                f"{record.get('preparations')} preparations")
        out += runs + [int(shots)] * (rest // int(shots))
    return out


def _choose_beta(config, results, probes, weights, total_weight, budget, sigma, n_der) -> float:
    """β* of the step from the pilot (±β₁) and the probe (±β₁/2): the rule of the module docstring.

    With every sample at β₁ = β_max the closed form applies; when the crossing policy lowered some samples'
    β₁, sample s runs at min(β, β₁_s) and the same MSE(β) is minimised on a log grid of [β_min, β_max].
    """
    usable = [i for i, p in probes.items() if p["ok"]]
    beta_max = config.beta
    beta_min = config.beta_min if config.beta_min is not None else beta_max / 2**config.max_halvings
    if not usable:
        return float(beta_max)
    b, var_b = {}, {}
    for i in usable:
        r, p = results[i], probes[i]
        scale = 0.75 * r["beta"] ** 2
        g1 = sum(leg["coef"] * leg["mean"] for leg in r["legs"])
        s1 = sum(leg["coef"] ** 2 * leg["se"] ** 2 for leg in r["legs"])
        g2 = sum(leg["coef"] * leg["mean"] for leg in p["legs"])
        s2 = sum(leg["coef"] ** 2 * leg["se"] ** 2 for leg in p["legs"])
        b[i], var_b[i] = (g1 - g2) / scale, (s1 + s2) / scale**2
    spent = sum(r["preparations"] for r in results)
    rest = max(budget - spent, 0) // n_der
    # per leg: |a_j| β_s = w_s / (2 Σw) and σ_j from the pilot; the sample's cap β₁
    legs = [(weights[i] / (2 * total_weight) * sigma(leg), results[i]["beta"]) for i in weights
            for leg in results[i]["legs"]]
    variance_mode = config.shot_allocation == "variance"

    def noise(beta: float) -> float:  # K(β) = β² Var ĝ R under the allocation, with β_s = min(β, β₁_s)
        unit = np.array([u * beta / min(beta, cap) for u, cap in legs])
        return float(unit.sum() ** 2) if variance_mode else len(unit) * float(np.sum(unit**2))

    if all(results[i]["beta"] == beta_max for i in weights):
        b_mean = np.mean([b[i] for i in usable], axis=0)
        var_mean = np.sum([var_b[i] for i in usable], axis=0) / len(usable) ** 2
        bias_squared = _detected(b_mean, var_mean)
        return adaptive_beta(bias_squared, noise(beta_max), rest, beta_min=beta_min, beta_max=beta_max)
    if rest <= 0:
        return float(beta_max)
    grid = np.geomspace(beta_min, beta_max, 121)

    def mse(beta: float) -> float:
        caps = {i: min(beta, results[i]["beta"]) ** 2 for i in usable}
        bias = np.mean([b[i] * caps[i] for i in usable], axis=0)
        var = np.sum([var_b[i] * caps[i] ** 2 for i in usable], axis=0) / len(usable) ** 2
        return _detected(bias, var) + noise(beta) / (beta**2 * rest)

    return float(grid[int(np.argmin([mse(beta) for beta in grid]))])


def _detected(bias, variance) -> float:
    """|b|² ≈ Σ_k (b̄_k² − se_k²) when the bias is detected at 2σ, else 0.

    Under no bias Σ_k b̄_k² has mean Σ_k se_k² and standard deviation √(2 Σ_k se_k⁴) (Gaussian b̄_k); a plain
    positive part would read noise as bias half the time and pull β below β_max on an unbiased estimator.
    """
    bias, variance = np.asarray(bias, dtype=float), np.asarray(variance, dtype=float)
    excess = float(np.sum(bias**2 - variance))
    return excess if excess > 2.0 * np.sqrt(2.0 * np.sum(variance**2)) else 0.0
