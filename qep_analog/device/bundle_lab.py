"""The lab loop of a bundle: counts → QEP gradient → update → the next bundle, and an emulated lab.

``update`` reads the lab's counts (``COUNTS_DIR/<id>.json`` = {bitstring: count}, '1' = Rydberg, leftmost =
q0), estimates ∂⟨Ĉ⟩/∂θ_k ≈ mean over samples of [⟨A_k⟩_{+β} − ⟨A_k⟩_{−β}]/(2β) with A = ∂H/∂θ_k from the
Z-basis bitstrings, applies Δθ = −η ĝ projected onto the device limits, and writes the next bundle
(:func:`qep_analog.device.bundle.write_bundle`, atomic). ``lab-counts`` (:func:`simulate_counts`) plays
the lab: every sequence emulated from its JSON, noiseless or with the device's noise, and sampled.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pulser

from qep_analog.device import limits
from qep_analog.device.bundle import write_bundle
from qep_analog.device.bundle_io import (
    PHASES,
    _dumps,
    atomic_directory,
    confined,
    model_from,
    read_bundle,
    read_counts,
    read_verified,
    refuse_overlap,
    spec_from_manifest,
)
from qep_analog.device.limits import check_number
from qep_analog.device.rydberg import RydbergModel
from qep_analog.errors import QepValueError
from qep_analog.measurement.estimate import estimate_products
from qep_analog.measurement.observables import derivative_structure
from qep_analog.measurement.sampling import ReadoutError, counts_to_bits
from qep_analog.models.pauli import PauliProduct


def gradient_from_bits(manifest: dict, bits: dict[str, np.ndarray], readout=None) -> dict:
    """QEP gradient, standard errors and loss from the bitstrings of every sequence.

    ``readout`` (a measurement-layer ReadoutError) mitigates known readout flips by inverting the
    per-qubit confusion matrix (unbiased means, larger standard errors)."""
    model = model_from(spec_from_manifest(manifest))
    h = model.hamiltonian()
    if list(h.parameter_names) != manifest["parameters"]["names"]:
        raise QepValueError("manifest parameters do not match its model")
    products, coef = derivative_structure(h)  # no 2^N table: any register size
    by_sample: dict[int, dict] = {}
    for entry in manifest["sequences"]:
        by_sample.setdefault(entry["sample"], {})[entry["phase"]] = entry
    grads, variances, losses = [], [], []
    for k in sorted(by_sample):
        phases = by_sample[k]
        if set(phases) != set(PHASES):
            raise QepValueError(f"sample {k} lacks phases {sorted(set(PHASES) - set(phases))}")
        beta = phases["plus"]["beta"]
        m_plus, s_plus = estimate_products(bits[phases["plus"]["id"]], products, readout)
        m_minus, s_minus = estimate_products(bits[phases["minus"]["id"]], products, readout)
        grads.append(coef @ (m_plus - m_minus) / (2 * beta))
        variances.append((coef**2) @ (s_plus**2 + s_minus**2) / (2 * beta) ** 2)
        t = np.asarray(phases["free"]["target"])
        outs = [PauliProduct.parse(f"n{ell}", model.n_atoms) for ell in model.output_atoms]
        n_out, _ = estimate_products(bits[phases["free"]["id"]], outs, readout)
        losses.append(float(np.sum(n_out * (1 - 2 * t) + t**2)))
    grad = np.mean(grads, axis=0)
    stderr = np.sqrt(np.sum(variances, axis=0)) / len(grads)
    return {"names": list(h.parameter_names), "gradient": grad, "stderr": stderr, "loss": float(np.mean(losses))}


def apply_update(model: RydbergModel, gradient, *, learning_rate: float, position_learning_rate: float,
                 ) -> RydbergModel:
    """θ ← θ − η ĝ for local detunings, r ← r − η_r ∂L/∂r for positions, projected on the device."""
    grad_pos, grad_det = model.split_gradient(gradient)
    if not model.device.dmm_channels:  # one global Δ = δ_i for all i: ∂L/∂Δ = Σ_i ∂L/∂δ_i
        grad_det = np.full_like(grad_det, grad_det.sum())
    det = model.detunings - learning_rate * grad_det
    pos = model.positions_um - (position_learning_rate * grad_pos if model.train_positions else 0.0)
    return model.project(positions_um=pos, detunings=det)


def update_bundle(bundle_dir: str | Path, counts_dir: str | Path, out_dir: str | Path | None = None, *,
                  expected_device: str | None = None, force: bool = False, drawings: bool = True,
                  readout: ReadoutError | None = None) -> dict:
    """``qep-analog update``: counts → gradient → new parameters → the next bundle (atomic).

    ``readout="device"`` mitigates with the SPAM rates of the bundle's device noise model."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        refuse_overlap(out, bundle=bundle_dir, **{"counts directory": counts_dir})
    manifest = read_bundle(bundle_dir, expected_device=expected_device)
    bits = read_counts(manifest, counts_dir)
    if readout == "device":
        nm = manifest["_device_object"].noise_model
        if nm is None or "SPAM" not in nm.noise_types:
            raise QepValueError(f"readout mitigation: device {manifest['device']['name']!r} has no SPAM noise model")
        readout = ReadoutError(p_false_pos=float(nm.p_false_pos), p_false_neg=float(nm.p_false_neg))
    result = gradient_from_bits(manifest, bits, readout)
    for key in ("gradient", "stderr"):
        bad = [name for name, v in zip(result["names"], result[key], strict=True) if not np.isfinite(v)]
        if bad:
            raise QepValueError(f"the {key} is not finite for {bad} (too few shots?); nothing written")
    spec = spec_from_manifest(manifest)
    model = model_from(spec)
    training = manifest["training"]
    new_model = apply_update(model, result["gradient"], learning_rate=training["learning_rate"],
                             position_learning_rate=training["position_learning_rate"])
    spec["model"] = dict(spec["model"], positions_um=new_model.positions_um.tolist(),
                         detunings=new_model.detunings.tolist())
    step = manifest["step"] + 1
    if out is None:
        out = Path(f"{Path(bundle_dir).resolve()}_step{step}")
        refuse_overlap(out, bundle=bundle_dir, **{"counts directory": counts_dir})
    report = {"from_bundle": str(Path(bundle_dir).resolve()), "from_step": manifest["step"],
              "names": result["names"], "gradient": result["gradient"].tolist(),
              "stderr": result["stderr"].tolist(), "loss": result["loss"],
              "readout_mitigation": None if readout is None else [readout.p_false_pos, readout.p_false_neg],
              "positions_um": new_model.positions_um.tolist(), "detunings": new_model.detunings.tolist(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # the next bundle's device is the verified device.json, never a name or path read from the manifest
    spec["device"] = spec.pop("device_object")
    spec["device_spec"] = manifest["device"].get("spec", manifest["device"]["name"])
    write_bundle(spec, out, step=step, force=force, drawings=drawings,
                 extra_files={"gradient.json": _dumps(report, indent=1)})
    return dict(report, out_dir=str(out))


def simulate_counts(bundle_dir: str | Path, counts_dir: str | Path, *, seed: int = 0, shots: int | None = None,
                    noise_model=None, n_trajectories: int | None = None, force: bool = False,
                    emulator: str | None = None, progress=None, executor=None) -> None:
    """Play the lab: run every bundle sequence (loaded from its JSON) in pulser-simulation and write
    counts sampled from the final state with a seeded Generator (atomic write). A noise model's SPAM
    readout flips (p_false_pos, p_false_neg) are applied to the sampled bits, as a detector would.

    ``shots`` (default: the manifest's) must lie where ``update`` accepts it: in
    [⌈SHOT_TOLERANCE·shots⌉, shots] of the manifest; the register may have at most MAX_EMULATED_ATOMS atoms.

    ``emulator``: "trajectories" (our quantum-jump trajectories, the default with a noise model and
    ``n_trajectories``; shots are spread evenly over the trajectories, each trajectory's shots drawn from its
    own state, as pulser's per-trajectory BitStrings are) or "pulser" (the default otherwise).
    ``progress(done, total)`` is called after each sequence (serially) or once at the end (with an
    ``executor``: one task per sequence, e.g. a :class:`~qep_analog.distributed.DaskExecutor`). Sequence k
    samples from ``default_rng([seed, k])``, so the counts do not depend on where it ran."""
    from qep_analog.measurement.sampling import ReadoutError

    check_number(seed, "seed", low=0, high=limits.MAX_SEED, integer=True)
    if shots is not None:
        check_number(shots, "shots", low=1, high=limits.MAX_SHOTS, integer=True)
    if n_trajectories is not None:
        check_number(n_trajectories, "trajectories", low=1, high=limits.MAX_TRAJECTORIES, integer=True)
    if emulator not in (None, "pulser", "trajectories"):
        raise QepValueError(f"'emulator' must be 'pulser' or 'trajectories', not {emulator!r}")
    readout = None
    if noise_model is not None and "SPAM" in noise_model.noise_types:
        readout = ReadoutError(p_false_pos=float(noise_model.p_false_pos), p_false_neg=float(noise_model.p_false_neg))

    refuse_overlap(counts_dir, bundle=bundle_dir)
    manifest = read_bundle(bundle_dir)
    n = len(manifest["register"]["qubit_ids"])
    if n > limits.MAX_EMULATED_ATOMS:
        raise QepValueError(f"lab-counts emulates the full state vector: at most {limits.MAX_EMULATED_ATOMS} atoms, "
                            f"this bundle has {n}")
    if shots is not None:
        for entry in manifest["sequences"]:
            low = math.ceil(limits.SHOT_TOLERANCE * entry["shots"])
            if not low <= shots <= entry["shots"]:
                raise QepValueError(f"'--shots' = {shots}: update accepts {low} to {entry['shots']} shots for "
                                    f"sequence {entry['id']!r} (the manifest's shots, less up to 10 % lost)")
    use_trajectories = emulator == "trajectories" or (emulator is None and noise_model is not None
                                                       and bool(n_trajectories))
    tasks = [_SequenceRun(text=read_verified(bundle_dir, manifest, entry["file"]).decode("utf-8"),
                          shots=int(shots or entry["shots"]), n_qubits=n, seed=(seed, k), noise_model=noise_model,
                          n_trajectories=n_trajectories, trajectories=use_trajectories, readout=readout)
             for k, entry in enumerate(manifest["sequences"])]
    executor = executor if executor is not None else _ProgressExecutor(progress)
    with atomic_directory(counts_dir, force=force) as tmp:
        results = executor.map(_emulate_counts, tasks)
        if not isinstance(executor, _ProgressExecutor) and progress is not None:
            progress(len(tasks), len(tasks))
        for entry, counts in zip(manifest["sequences"], results, strict=True):
            confined(tmp, f"{entry['id']}.json", "counts file").write_text(_dumps(counts), encoding="utf-8")


@dataclass(frozen=True, kw_only=True)
class _SequenceRun:
    """One bundle sequence to emulate and sample (a picklable task for an executor)."""

    text: str
    shots: int
    n_qubits: int
    seed: tuple[int, int]
    noise_model: object
    n_trajectories: int | None
    trajectories: bool
    readout: object


def _emulate_counts(task: _SequenceRun) -> dict:
    """Counts of one sequence: emulate it, sample ``shots`` bitstrings, apply the readout errors."""
    from qep_analog.equilibrium.adiabatic import emulate_pulser
    from qep_analog.measurement.sampling import bits_to_counts

    rng = np.random.default_rng(list(task.seed))
    seq = pulser.Sequence.from_abstract_repr(task.text)
    if task.trajectories:
        from qep_analog.equilibrium.emulators.trajectories import run_trajectories

        result = run_trajectories(seq, task.noise_model, n_trajectories=int(task.n_trajectories or 1),
                                  seed=task.seed[0])
        per = np.abs(result.states) ** 2
        split = np.full(per.shape[0], task.shots // per.shape[0])
        split[: task.shots % per.shape[0]] += 1
        hits = sum(rng.multinomial(int(m), p / p.sum()) for m, p in zip(split, per, strict=True))
    else:
        state = emulate_pulser(seq, noise_model=task.noise_model, n_trajectories=task.n_trajectories)
        probs = np.abs(state) ** 2 if state.ndim == 1 else np.clip(np.real(np.diag(state)), 0, None)
        hits = rng.multinomial(task.shots, probs / probs.sum())
    counts = {format(i, f"0{task.n_qubits}b"): int(c) for i, c in enumerate(hits) if c}
    if task.readout is not None:
        counts = bits_to_counts(task.readout.apply(counts_to_bits(counts, task.n_qubits), rng))
    return counts


class _ProgressExecutor:
    """The serial map, calling ``progress(done, total)`` after each sequence."""

    def __init__(self, progress):
        self.progress = progress

    def map(self, function, tasks):
        tasks, out = list(tasks), []
        for task in tasks:
            out.append(function(task))
            if self.progress is not None:
                self.progress(len(out), len(tasks))
        return out
