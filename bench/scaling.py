"""Scale-out on Dask: serial against 1 and 2 local workers on one batch of independent work.

    python bench/scaling.py                 # phase-sensor, Rydberg (adiabatic, krylov), MPS batches, noisy bundle
    python bench/scaling.py --repeats 5 --cases phase-sensor

For each case, in one run: the wall time of one batch gradient serially (the baseline), on a
``DaskExecutor(workers=1)`` and on ``workers=2`` (after one warm-up map that ships the shared model
once per worker), the speed-up and parallel efficiency against serial, the per-task overhead
o = (T₁ − T_serial)/n (what one worker adds per task), the fraction of serial time spent pickling
the tasks, and whether every result is bitwise the serial one. It also measures L, the round trip of
one map of trivial tasks on the 2-worker cluster (submit, schedule, run, gather). A map of n samples in
chunks over P workers then costs about T(P) = L + ⌈n/P⌉·c, where c = (T₁ − L)/n is the cost of one sample
inside a worker (from the 1-worker column), so the predicted speed-up is

    S(P) = T_serial / (L + ⌈n/P⌉·c)

for this batch, and for a batch of 10·P samples the weak-scaling figure a cluster would see. L is
taken as constant, which is optimistic at large P (the scheduler handles P chunks per map). This
machine has 2 cores, so 2× is the measured ceiling.
"""

from __future__ import annotations

import argparse
import math
import pickle
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _phase_sensor(n: int):
    from qep_analog.learning.gradient import _SampleTask, estimate_gradient  # noqa: F401  (task type for pickling)
    from qep_analog.protocol import load_protocol
    from qep_analog.tasks.build import build_backend, build_data, build_gradient_config, build_model

    p = load_protocol(ROOT / "protocols" / "phase_sensor.toml")
    h, backend, config = build_model(p), build_backend(p), build_gradient_config(p)
    data = build_data(p, h)
    theta = 0.5 * np.random.default_rng(1).standard_normal(len(h.parameter_names))
    return lambda ex: estimate_gradient(h, backend, theta, data.inputs[:n], data.targets[:n], config, seed=3,
                                        executor=ex)


def _rydberg(n: int):
    from qep_analog.device.bundle import model_from, register_protocol_section, step_spec
    from qep_analog.device.devices import load_device
    from qep_analog.equilibrium.base import get_backend
    from qep_analog.learning.gradient import estimate_gradient
    from qep_analog.tasks.build import build_gradient_config
    from qep_analog.train import read_toml, resolve

    register_protocol_section()
    path = ROOT / "protocols" / "rydberg_classifier.toml"
    _, sections = resolve(read_toml(path), str(path), full=False)
    spec = step_spec(dict(sections, data={"inputs": [], "targets": []}))
    spec["device_object"] = load_device(spec["device"])
    model = model_from(spec).validate()
    backend = get_backend("adiabatic", model=model, emulator="krylov", duration_ns=spec["ramp"]["duration_ns"],
                          start_detuning=spec["ramp"]["start_detuning"], shape=spec["ramp"]["shape"])
    from qep_analog.protocol import Protocol

    config = build_gradient_config(Protocol(sections=sections, source=str(path)))
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, (n, len(model.input_atoms)))
    t = rng.integers(0, 2, (n, len(model.output_atoms))).astype(float)
    h = model.hamiltonian()
    return lambda ex: estimate_gradient(h, backend, model.theta(), x, t, config, seed=3, executor=ex)


def _mps(n: int, atoms: int = 24):
    from qep_analog.device.rydberg import RydbergModel
    from qep_analog.equilibrium.base import get_backend
    from qep_analog.learning.gradient import GradientConfig, estimate_gradient

    positions = [[6.0 * i, 0.0] for i in range(atoms)]  # AnalogDevice-like chain, C6 of MockDevice
    model = RydbergModel(positions_um=positions, device="MockDevice", omega=2 * np.pi, detunings=[3 * np.pi] * atoms,
                         input_atoms=(0,), output_atoms=(atoms - 1,), train_positions=False)
    h = model.hamiltonian()
    backend = get_backend("mps", max_bond=64, model=model)
    config = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=0.5, shots=None)
    rng = np.random.default_rng(4)
    x, t = rng.normal(0, 3, (n, 1)), rng.integers(0, 2, (n, 1)).astype(float)
    return lambda ex: estimate_gradient(h, backend, model.theta(), x, t, config, seed=3, executor=ex)


class _Counts:
    """Counts of every sequence, comparable like a gradient estimate (``.gradient``)."""

    def __init__(self, directory: Path):
        self.gradient = {p.name: p.read_text() for p in sorted(Path(directory).iterdir())}


def _noisy_bundle(n: int, trajectories: int = 100):
    import tempfile

    from qep_analog.device.bundle import export_protocol
    from qep_analog.device.bundle_io import read_bundle
    from qep_analog.device.bundle_lab import simulate_counts

    tmp = Path(tempfile.mkdtemp(prefix="qep_scaling_"))
    # the classifier's 6-atom qep_lab_device register with 4 inline inputs: 4 × 3 phases = 12 sequences
    text = (ROOT / "protocols" / "rydberg_classifier.toml").read_text(encoding="utf-8")
    head = text[:text.index("[data]")]
    step = (ROOT / "protocols" / "rydberg_qep_step.toml").read_text(encoding="utf-8")
    tail = step[step.index("[gradient]"):]
    data = ('[data]\nkind = "inline"\ninputs = [[1.0, -1.0], [-1.0, 1.0], [2.0, 0.5], [-0.5, -2.0]]\n'
            'targets = [[1.0], [0.0], [1.0], [0.0]]\n\n')
    (tmp / "p.toml").write_text(head + data + tail, encoding="utf-8")
    export_protocol(tmp / "p.toml", tmp / "b", drawings=False)
    noise = read_bundle(tmp / "b")["_device_object"].noise_model
    if noise is None:  # the bundle's device carries none: take qep_lab_device's full noise model
        from qep_analog.device.devices import load_device

        noise = load_device("qep_lab_device").noise_model
    calls = iter(range(10**6))

    def run(ex):
        out = tmp / f"c{next(calls)}"
        simulate_counts(tmp / "b", out, seed=1, noise_model=noise, n_trajectories=trajectories,
                        emulator="trajectories", executor=ex)
        return _Counts(out)

    return run


CASES = {"phase-sensor": (_phase_sensor, 10, "phase-sensor batch, 10 samples × 3 phases (exact Lanczos)"),
         "rydberg": (_rydberg, 8, "Rydberg classifier batch, 8 samples × 2 nudged ramps (adiabatic, krylov, 5 µs)"),
         "mps": (_mps, 8, "MPS batch, 24-atom chain at 6 µm, 8 samples × 3 phases (quimb DMRG2, χ ≤ 64)"),
         "mps-one": (_mps, 1, "MPS batch of ONE sample, 24-atom chain: one task per phase (the ±β phases "
                              "warm-start from the free phase's future, on both workers)"),
         "noisy-bundle": (_noisy_bundle, 0, "noisy bundle (the classifier's 6-atom register, 4 inputs: 12 "
                                            "sequences; qep_lab_device noise, 100 trajectories each), one task per "
                                            "sequence")}


class CapturingExecutor:
    """Runs serially and keeps the tasks, to measure what shipping them whole would cost."""

    def __init__(self):
        self.tasks = []

    def map(self, function, tasks):
        self.tasks = list(tasks)
        return [function(t) for t in self.tasks]


def _time(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    from qep_analog.distributed import DaskExecutor
    from qep_analog.executor import SerialExecutor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--repeats", type=int, default=3, help="best of this many batches per column")
    args = ap.parse_args(argv)
    for name in args.cases:
        build, n, label = CASES[name]
        run = build(n)
        if name == "noisy-bundle":
            capture = CapturingExecutor()
            run(capture)
            n = len(capture.tasks)
        run(SerialExecutor())  # warm caches (numba, Lanczos structure) before the baseline
        t_serial, ref = _time(lambda run=run: run(SerialExecutor()), args.repeats)
        capture = CapturingExecutor()
        run(capture)
        t0 = time.perf_counter()
        sizes = [len(pickle.dumps(t, protocol=pickle.HIGHEST_PROTOCOL)) for t in capture.tasks]
        t_pickle = time.perf_counter() - t0
        cpu_serial = time.process_time()
        run(SerialExecutor())
        cpu_serial = time.process_time() - cpu_serial
        rows, inside, cpu = {}, {}, {}
        for workers in (1, 2):
            with DaskExecutor(workers=workers) as ex:
                for _ in range(3 if t_serial < 1.0 else 1):  # ships the shared model once per worker; warms
                    run(ex)  # the workers' caches and sizes the chunks from a measured (not a cold) task cost
                rows[workers] = _time(lambda run=run, ex=ex: run(ex), args.repeats)
                inside[workers] = dict(ex._cost)  # seconds per task inside a worker, last map of each function
                # CPU per batch: this process (client, and the local scheduler's event loop) and the workers
                here, there = time.process_time(), ex.client.run(time.process_time)
                for _ in range(args.repeats):
                    run(ex)
                cpu[workers] = ((time.process_time() - here) / args.repeats,
                                sum(t - there[a] for a, t in ex.client.run(time.process_time).items()) / args.repeats)
                latency = _time(lambda ex=ex: ex.map(abs, range(2)), 5)[0]
        t1, t2 = rows[1][0], rows[2][0]
        same = all(rows[w][1].gradient == ref.gradient if isinstance(ref.gradient, dict)
                   else np.array_equal(rows[w][1].gradient, ref.gradient) for w in rows)
        t_task, overhead = t_serial / n, max(t1 - t_serial, 0.0) / n
        print(f"\n{label}")
        print(f"  serial (baseline) {t_serial * 1e3:8.1f} ms   ({t_task * 1e3:.1f} ms per task, {n} tasks)")
        for w in rows:
            print(f"  dask, {w} worker{'s' if w > 1 else ' '}   {rows[w][0] * 1e3:8.1f} ms   speed-up "
                  f"{t_serial / rows[w][0]:5.2f}×  efficiency {t_serial / rows[w][0] / w:5.2f}")
        print(f"  per-task overhead o = (T1 − T_serial)/n = {overhead * 1e3:.2f} ms; pickling the {n} tasks whole "
              f"({np.mean(sizes) / 1e6:.2f} MB each) takes {t_pickle * 1e3:.1f} ms = {t_pickle / t_serial:.1%} "
              "of the serial time (shared model shipped once per worker instead)")
        print(f"  bitwise equal to serial on 1 and 2 workers: {same}")
        print(f"  per-map round trip of the 2-worker cluster (2 trivial chunks): {latency * 1e3:.1f} ms")
        here, there = cpu[2]
        ceiling = 2 * cpu_serial / (here + there)
        print(f"  CPU of one batch: serial {cpu_serial * 1e3:.1f} ms; on 2 workers {there * 1e3:.1f} ms in the workers "
              f"+ {here * 1e3:.1f} ms in the client and scheduler. Even packed perfectly on this machine's 2 cores "
              f"that caps the speed-up at 2·CPU_serial/CPU_dask = {ceiling:.2f}×")
        for w, costs in inside.items():
            named = ", ".join(f"{k[1]} {v * 1e3:.1f} ms" for k, v in costs.items() if k[1] != "abs")
            print(f"  measured inside the workers ({w}), per task of the last map: {named or '(phase tasks)'}")
        if name == "mps-one":  # one sample: the parallelism is its ±β phases, not samples
            print(f"  measured at P=2: {t_serial / t2:.2f}× (ceiling (t_free + 2 t_nudged)/(t_free + t_nudged))")
            continue
        c = max(t1 - latency, 0.0) / n  # one sample inside a worker
        preds = []
        for p in (2, 8, 32, 128):
            s_fixed = t_serial / (latency + math.ceil(n / p) * c)
            s_weak = 10 * p * t_task / (latency + 10 * c)
            preds.append(f"P={p}: {s_fixed:.2f}× ({n} samples), {s_weak:.1f}× ({10 * p} samples)")
        print(f"  in-worker cost per sample c = (T1 − L)/n = {c * 1e3:.2f} ms (serial {t_task * 1e3:.2f} ms)")
        print("  predicted S(P) = T_serial/(L + ⌈n/P⌉·c): " + "; ".join(preds))
        print(f"  measured at P=2: {t_serial / t2:.2f}×")
    return 0


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # the serial baseline pinned like the CLI and the workers
        raise SystemExit(main())
