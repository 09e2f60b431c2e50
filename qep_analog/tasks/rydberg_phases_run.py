"""The protocol side of the Rydberg phase sensor (task ``rydberg-phases``): the ``[chain]`` section,
the data set, the run, and the phase-map figure. The task itself is :mod:`qep_analog.tasks.rydberg_phases`;
the chain and its labels are :mod:`qep_analog.tasks.rydberg_chain`.

Data (``[data]``, ``kind = "chain-phases"``): ``n_train + n_test`` points (Δ/Ω, R_b/a) uniform in the
box from ``seed``. With ``training.validation = n`` the last n training points are held out (never
trained on): the driver selects the θ of best validation accuracy from measured sensor outcomes
(``training.validation_shots``, default the gradient's shots), and the final θ is also scored exactly on
them (``validation_exact_*``), for choosing designs without the test set.

Large chains: with ``[backend] name = "mps"`` the labels come from DMRG ground states of the chain alone (the
same backend and options, in the chain's own site order) through ⟨n_j⟩ and ⟨n_j n_l⟩, and ``chain.n_atoms``
may reach 256 (e.g. 25, or the 51 atoms of Bernien et al. on MockDevice). ``[chain] label_cache = "dir"``
keeps the order parameters of each (chain, points, backend) in ``dir/chain_order_<hash>.npz`` so that seeds and
variants sharing a data set compute them once (DMRG labels cost ~0.5–7 s a point at N = 25–51).
``[chain] correlation_window = L`` labels by the block structure factor over blocks of L sites, which tolerates
the domain wall of a Z3 chain with N ≡ 0 mod 3 (e.g. 51; :mod:`~qep_analog.tasks.rydberg_chain`); absent: full chain.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from qep_analog.errors import QepValueError
from qep_analog.tasks.rydberg_chain import PHASES, ChainSpec
from qep_analog.tasks.rydberg_phases import DEFAULT_CODES, OUTCOMES, RydbergPhaseTask, code_bits, outcome_index, scores


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


def detuning_threshold_baseline(train_inputs, train_labels, test_inputs, test_labels) -> float:
    """Test accuracy of the best Δ/Ω-only rule with at most two thresholds (three intervals, each the majority
    label of its training points), both thresholds fitted on the training set (ties: the lower thresholds).

    A reader of Δ/Ω alone sees disordered below the ordered lobes and Z2 or Z3 above; unlike
    :func:`detuning_only_baseline` this rule does not split the training set into small bins, so it is the
    stronger "blind sensor" reference."""
    x = np.asarray(train_inputs, dtype=float)[:, 0]
    y = np.asarray(train_labels, dtype=int)
    if y.size == 0:
        raise QepValueError("detuning_threshold_baseline needs at least one training point")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    k = len(PHASES)
    cum = np.vstack([np.zeros(k), np.cumsum(np.eye(k)[y], axis=0)])  # (n + 1, k): class counts of x[:i]
    n = len(x)
    cut = np.flatnonzero(np.r_[True, x[1:] > x[:-1], True])  # split only between distinct Δ/Ω values
    tail = (cum[n] - cum[cut]).max(-1)
    best, lo, hi = -1.0, 0, 0
    for a, i in enumerate(cut):  # one row of (lower, upper) pairs at a time: memory O(n); first best pair wins
        row = cum[i].max() + (cum[cut[a:]] - cum[i]).max(-1) + tail[a:]
        b = int(np.argmax(row))
        if row[b] > best:
            best, lo, hi = row[b], i, cut[a + b]
    label = [int(np.argmax(cum[lo])), int(np.argmax(cum[hi] - cum[lo])), int(np.argmax(cum[n] - cum[hi]))]
    edges = [(x[lo - 1] + x[lo]) / 2 if 0 < lo < n else (-np.inf if lo == 0 else np.inf),
             (x[hi - 1] + x[hi]) / 2 if 0 < hi < n else (-np.inf if hi == 0 else np.inf)]
    t = np.asarray(test_inputs, dtype=float)[:, 0]
    pred = np.where(t < edges[0], label[0], np.where(t < edges[1], label[1], label[2]))
    return float(np.mean(pred == np.asarray(test_labels)))


# ----------------------------------------------------------------------------- protocol
CHAIN_KEYS = {"n_atoms": (int,), "detuning_over_omega": (list,), "rb_over_a": (list,), "z2_threshold": (int, float),
              "z3_threshold": (int, float), "sensor_offsets": (list,), "sensor_units": (str,),
              "label_cache": (str,), "codes": (list,), "correlation_window": (int,)}
_SENSOR_DEVICE_KEYS = ("name", "omega", "detunings", "train_positions", "position_learning_rate")


def validate_chain_section(section) -> None:
    """The ``[chain]`` section: ``n_atoms``, ``detuning_over_omega`` and ``rb_over_a`` ([low, high]),
    ``z2_threshold``, ``z3_threshold`` (see :class:`~qep_analog.tasks.rydberg_chain.ChainSpec`), and the
    sensor's initial ``sensor_offsets`` ([[x_A, y_A], [x_B, y_B]] from chain atom 0) in ``sensor_units``
    ("spacing": units of the chain spacing a, the default; "um": µm), and the read-out ``codes``: the sensor
    outcomes (A, B) that name disordered, Z2, Z3, three distinct of gg, rg, gr, rr (default gg, rg, gr)."""
    from qep_analog.tasks.common import check_section_types

    check_section_types(section, "chain", CHAIN_KEYS)
    for key, value in section.items():
        if key in ("detuning_over_omega", "rb_over_a") and (len(value) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)):
            raise QepValueError(f"'chain.{key}' must be [low, high], not {value!r}")
        if key == "sensor_offsets" and not all(
                isinstance(row, list) and len(row) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                and abs(v) < 1e3 for v in row) for row in value):
            raise QepValueError(f"'chain.sensor_offsets' must be [[x, y], …] with |x|, |y| < 1000, not {value!r}")
        if key == "codes":
            code_bits(value)  # three distinct outcomes of gg, rg, gr, rr (disordered, Z2, Z3)


def chain_spec(protocol, device) -> ChainSpec:
    c = protocol.section("chain")
    d = protocol.section("device")
    ground_states = "mps" if protocol.section("backend").get("name") == "mps" else "exact"
    opts = {"n_atoms": c.get("n_atoms", 7), "omega": float(d.get("omega", 1.6)), "c6": float(device.interaction_coeff),
            "ground_states": ground_states}
    for key, name in (("detuning_over_omega", "detuning_range"), ("rb_over_a", "rb_range")):
        if key in c:
            opts[name] = tuple(float(v) for v in c[key])
    for key in ("z2_threshold", "z3_threshold"):
        if key in c:
            opts[key] = float(c[key])
    if "correlation_window" in c:
        opts["correlation_window"] = c["correlation_window"]
    return ChainSpec(**opts)


def chain_points(spec: ChainSpec, n: int, seed: int) -> np.ndarray:
    """The data set's ``n`` points (Δ/Ω, R_b/a): training points first, then test points (``[data] seed``)."""
    return spec.sample(n, np.random.default_rng([seed, 17]))


def cached_chain_order(spec: ChainSpec, points, backend=None, cache: str | None = None) -> np.ndarray:
    """:func:`~qep_analog.tasks.rydberg_chain.chain_order`, read from / written to ``cache`` (a directory) when
    given: one ``.npz`` per (spec, points, backend options)."""
    from qep_analog.tasks.rydberg_chain import chain_order

    points = np.atleast_2d(np.asarray(points, dtype=float))
    if cache is None:
        return chain_order(spec, points, backend)
    solver = "exact" if spec.ground_states == "exact" or backend is None else repr(
        dataclasses.replace(backend, order="given", positions_um=None, model=None))
    key = hashlib.sha256(repr((spec, solver)).encode() + points.tobytes()).hexdigest()[:20]
    path = Path(cache) / f"chain_order_{key}.npz"
    if path.is_file():
        with np.load(path) as saved:
            if np.array_equal(saved["points"], points):
                return saved["order"]
    order = chain_order(spec, points, backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, points=points, order=order, spec=repr(spec), solver=solver)
    tmp.replace(path)
    return order


def _label_backend(protocol, spec: ChainSpec):
    """The protocol's ``mps`` backend for DMRG labels (None: exact labels)."""
    from qep_analog.tasks.build import build_backend

    return build_backend(protocol) if spec.ground_states == "mps" else None


def _data(ctx, spec: ChainSpec, n_val: int = 0):
    from qep_analog.tasks.common import require_int
    from qep_analog.tasks.rydberg_chain import chain_labels

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
    points = chain_points(spec, n_train + n_test, require_int(d, "seed", 0, 0, "data"))
    backend, cache = _label_backend(ctx.protocol, spec), ctx.protocol.section("chain").get("label_cache")
    # training and test points cached apart: runs with other n_train share the test set's labels
    order = np.vstack([cached_chain_order(spec, points[:n_train], backend, cache),
                       cached_chain_order(spec, points[n_train:], backend, cache)])
    labels = chain_labels(spec, points, order)
    if n_val >= n_train:
        raise QepValueError(f"'training.validation' must be smaller than 'data.n_train' = {n_train}, not {n_val}")
    k = n_train - n_val  # the last n_val training points are held out
    return (points[:k], labels[:k], points[n_train:], labels[n_train:], points[k:n_train], labels[k:n_train])


def run_rydberg_phases(ctx) -> dict:
    """``qep-analog train`` task ``rydberg-phases`` (protocol: protocols/rydberg_phase_sensor.toml)."""
    from qep_analog.device.devices import load_device
    from qep_analog.tasks.build import build_backend, build_gradient_config
    from qep_analog.tasks.common import drive, require_int
    from qep_analog.tasks.rydberg_chain import chain_labels

    dev = ctx.protocol.section("device")
    unused = sorted(set(dev) - set(_SENSOR_DEVICE_KEYS))
    if unused:
        raise QepValueError(f"key(s) {['device.' + k for k in unused]} do not apply to task 'rydberg-phases' "
                            f"(it uses {list(_SENSOR_DEVICE_KEYS)})")
    device = load_device(dev.get("name", "WeightedAnalogDevice"))
    spec = chain_spec(ctx.protocol, device)
    training = ctx.protocol.section("training")
    n_val = require_int(training, "validation", 0, 0, "training")
    x_train, y_train, x_test, y_test, x_val, y_val = _data(ctx, spec, n_val)
    chain = ctx.protocol.section("chain")
    gradient_config = build_gradient_config(ctx.protocol)
    task = RydbergPhaseTask(chain=spec, device=device, offsets=chain.get("sensor_offsets", [[-1.0, 0.0], [1.0, 1.0]]),
                            offset_units=chain.get("sensor_units", "spacing"),
                            detunings=dev.get("detunings", [0.0, 0.0]), backend=build_backend(ctx.protocol),
                            config=gradient_config, inputs=x_train, labels=y_train,
                            test_inputs=x_test, test_labels=y_test, validation_inputs=x_val, validation_labels=y_val,
                            validation_shots=training.get("validation_shots", gradient_config.shots),
                            train_positions=bool(dev.get("train_positions", True)),
                            codes=tuple(chain.get("codes", DEFAULT_CODES)), executor=ctx.executor)
    driver = drive(ctx, task, optimizer="adam", learning_rate=0.05, steps=60, batch_size=10,
                   learning_rates={"positions": float(dev.get("position_learning_rate", 0.3))})
    theta = driver.parameters_
    hist = driver.history_
    final = {**task.evaluate(theta), **driver.totals()}
    if len(y_val):
        scored = scores(task.outcome_probabilities(theta, x_val), y_val, task.codes)
        final.update({f"validation_exact_{k}": v for k, v in scored.items()})
    final.update({"initial_test_accuracy": hist[0].get("test_accuracy"),
                  "initial_test_single_shot_accuracy": hist[0].get("test_single_shot_accuracy"),
                  "detuning_only_baseline": detuning_only_baseline(x_train, y_train, x_test, y_test),
                  "detuning_threshold_baseline": detuning_threshold_baseline(x_train, y_train, x_test, y_test),
                  "class_fractions_test": np.bincount(y_test, minlength=3).astype(float) / len(y_test),
                  "blockade_radius_um": spec.blockade_radius_um, "spacing_range_um": list(spec.spacing_range_um),
                  "n_chain": spec.n_atoms, "device": device.name, "label_ground_states": spec.ground_states,
                  "objective": task.config.objective.name})
    res = require_int(ctx.protocol.section("task"), "plot_resolution", 12, 2, "task")
    d_axis = np.linspace(*spec.detuning_range, res)
    r_axis = np.linspace(*spec.rb_range, res)
    grid = np.array([[d, r] for r in r_axis for d in d_axis])
    probs = task.outcome_probabilities(theta, grid)
    order = cached_chain_order(spec, grid, _label_backend(ctx.protocol, spec), chain.get("label_cache"))
    exact = chain_labels(spec, grid, order)
    final["grid_accuracy"] = float(np.mean(np.argmax(probs[:, outcome_index(task.codes)], axis=1) == exact))
    offsets, detunings = task.split(theta)
    return {"history": hist, "final": final, "theta": driver.named(), **driver.last_iterate(),
            "plot": {"detuning_over_omega": d_axis.tolist(), "rb_over_a": r_axis.tolist(),
                     "outcome_probabilities": probs.tolist(), "labels": exact.tolist(), "order": order.tolist(),
                     "phases": list(PHASES), "outcomes": list(OUTCOMES), "codes": list(task.codes),
                     "n_chain": spec.n_atoms,
                     "thresholds": [spec.z2_threshold, spec.z3_threshold],
                     "sensor_offsets": offsets.tolist(), "sensor_detunings": detunings.tolist(),
                     "sensor_units": task.offset_units, "initial_offsets": task.offsets.tolist(),
                     "test_inputs": x_test.tolist(), "test_labels": y_test.tolist()}}


def phase_map_figure(results: dict):
    """Predicted phase (max-choice) over (Δ/Ω, R_b/a), the chain's order-parameter labels as contours,
    the blockade criterion R_b/a = 1, 2, 3 (nearest / next-nearest neighbours blockaded), and the literature
    points on the Z2–disordered line inside the box (stars, :mod:`qep_analog.tasks.rydberg_published`)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from qep_analog.tasks.rydberg_published import draw_published

    p = results["plot"]
    d, r = np.array(p["detuning_over_omega"]), np.array(p["rb_over_a"])
    probs = np.array(p["outcome_probabilities"]).reshape(len(r), len(d), 4)
    pred = np.argmax(probs[..., outcome_index(p.get("codes", DEFAULT_CODES))], axis=-1)  # the phase each outcome names
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
    published = draw_published(ax)  # qep_analog.tasks.rydberg_published: sources and conversions
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(3)] + published[:1]
    ax.legend(handles, [f"sensor says {ph}" for ph in p["phases"]] + [h.get_label() for h in published[:1]],
              loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=7)  # below: the map stays visible
    ax.set_xlabel("Δ/Ω")
    ax.set_ylabel("R_b/a")
    acc = results["final"].get("test_accuracy", float("nan"))
    single = results["final"].get("test_single_shot_accuracy", float("nan"))
    n_sensor = len(p["sensor_offsets"])
    window = results.get("config", {}).get("chain", {}).get("correlation_window")
    ax.set_title(f"N = {p['n_chain']} chain + {n_sensor}-atom sensor: test max-choice {acc:.3f}, "
                 f"single-shot {single:.3f}\n"
                 f"black: labels from m_Z2, m_Z3 ≥ {p['thresholds']} at N = {p['n_chain']}; dotted: R_b/a = 1, 2; "
                 "stars: literature points" + (f"; labels over blocks of {window} sites" if window else ""),
                 fontsize=8)
    return fig


def _register() -> None:
    from qep_analog.protocol import register_section

    register_section("chain", validate_chain_section)


_register()
