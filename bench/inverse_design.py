"""Inverse design on a Rydberg array: shots to reach the same cost, QEP against central finite differences, vs P.

Task (``qep_analog.tasks.inverse_design``, protocol ``protocols/inverse_design.toml``): atom positions and DMM
detunings whose ground state has the checkerboard (Z2) order, cost ⟨Ĉ⟩ = Σ_i ⟨(n_i − t_i)²⟩ (sites off the
pattern), on qep_lab_device (C6 = 865,723 rad/µs·µm⁶, Ω = 4 rad/µs fixed, 6 µm grid, every update projected on
the device limits). Shots are counted the same way for both methods (one shot = one preparation + one Z-basis
readout; M shots per estimate, 1 setting): QEP 3 × M per step (free, ±β), FD (2P + 1) × M per step.

Arrays (P = number of trained parameters):
* P = 10: 16 atoms (5 × 4 grid, 4 missing sites), the detunings of atoms 0–9; exact ground states (Lanczos);
* P = 30: same array, all 16 detunings + (x, y) of atoms 0–6;
* P = 48: same array, every x, y, δ;
* P = 108: 36 atoms (3 × 13 grid, 3 missing sites), every x, y, δ; ground states by the ``mps`` backend (DMRG).

Protocol of the measurement, per array: a noiseless reference (QEP with exact expectations, same β, same
learning rates) runs ``--ref-steps`` steps; the target is c* = c₀ − ``--fraction`` · (c₀ − c_ref), c_ref its final
cost. Each method then runs with shots (``--seeds`` seeds, each M in its list) until the exact cost of the
current θ (emulation only, no shots) reaches c*, or ``--max-steps``; shots-to-target = steps × shots per step.
The best M of each method (lowest mean shots-to-target) is compared. Runs go to a process pool (``--workers``),
one BLAS thread each. Run under the CPU lock::

    flock /tmp/qep_cpu.lock python bench/inverse_design.py

Prints the table; writes ``bench/results/inverse_design.json`` and ``bench/results/inverse_design.png``
(cost vs cumulative shots, both methods, every seed; mean ± std at each step).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SPACING = 6.0
OMEGA = 4.0


def grid(columns: int, rows: int, missing: set) -> np.ndarray:
    """Centred square grid of spacing 6 µm without the ``missing`` (column, row) sites."""
    sites = [(i, j) for i in range(columns) for j in range(rows) if (i, j) not in missing]
    return np.array([[SPACING * (i - (columns - 1) / 2), SPACING * (j - (rows - 1) / 2)] for i, j in sites])


ARRAYS = {
    "16": grid(5, 4, {(1, 1), (3, 2), (0, 3), (4, 0)}),
    "36": grid(13, 3, {(2, 1), (6, 0), (10, 2)}),
}
CONFIGS = {  # name: (array, trained positions, trained detunings, backend)
    "P10": ("16", (), tuple(range(10)), "exact"),
    "P30": ("16", tuple(range(7)), tuple(range(16)), "exact"),
    "P48": ("16", tuple(range(16)), tuple(range(16)), "exact"),
    "P108": ("36", tuple(range(36)), tuple(range(36)), "mps"),
}


def make_task(config: str, method: str, shots: int | None, beta: float, fd_step_um: float, fd_step_detuning: float):
    from qep_analog.device.rydberg import RydbergModel
    from qep_analog.equilibrium import get_backend
    from qep_analog.learning import GradientConfig
    from qep_analog.tasks.inverse_design import InverseDesignTask, checkerboard

    array, positions, detunings, backend_name = CONFIGS[config]
    pos = ARRAYS[array]
    model = RydbergModel(positions_um=pos, device="qep_lab_device", omega=OMEGA, detunings=np.zeros(len(pos)))
    if backend_name == "mps":
        backend = get_backend("mps", model=model, max_bond=32, cutoff=1e-8, energy_tol=1e-7, variance_tol=1e-4)
    else:
        backend = get_backend("exact", tol=1e-8)
    gradient = GradientConfig(estimator="symmetric", nudge="cost-operator", beta=beta, shots=shots)
    return InverseDesignTask(model=model, backend=backend, config=gradient, target=checkerboard(pos, SPACING),
                             positions=positions, detunings=detunings, method=method, fd_step_um=fd_step_um,
                             fd_step_detuning=fd_step_detuning)


class _Reached(Exception):
    pass


def run(job: dict) -> dict:
    """One training run (an error is returned as a record, not raised, so one failed run keeps the others)."""
    try:
        return _run(job)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return dict(job, error=f"{type(exc).__name__}: {exc}", cost=[], shots_cum=[], z2=[], parameters=None,
                    atoms=None, crossings=0, violations=[], wall_s=0.0)


def _run(job: dict) -> dict:
    """One training run; stops when the exact cost reaches ``job['target']`` (if given)."""
    from threadpoolctl import threadpool_limits

    from qep_analog.learning.driver import Driver, TrainingConfig

    task = make_task(job["config"], job["method"], job["shots"], job["beta"], job["fd_step_um"],
                     job["fd_step_detuning"])
    rates = {"positions": job["lr_positions"]} if task.positions else None
    cfg = TrainingConfig(optimizer="sgd", learning_rate=job["lr"], learning_rates=rates, steps=job["steps"],
                         seed=job["seed"], eval_every=1)
    target = job.get("target")

    def stop(driver, record):
        spent = sum(r.get("preparations") or 0 for r in driver.history_)
        print(f"  [{job['config']} {job['method']} M={job['shots']} seed {job['seed']}] step {record['step']}: "
              f"exact cost {record['cost']:.4f}, shots {spent:,}, {time.perf_counter() - start:.0f} s", flush=True)
        if target is not None and record["cost"] <= target:
            raise _Reached

    start = time.perf_counter()
    driver = Driver(task=task, config=cfg, callback=stop)
    with threadpool_limits(limits=1):
        try:
            driver.fit()
        except _Reached:
            pass
    hist = driver.history_
    preps = [r.get("preparations") or 0 for r in hist]
    return dict(job, parameters=len(task.parameter_names), atoms=task.model.n_atoms,
                cost=[r["cost"] for r in hist], z2=[r["z2_order"] for r in hist],
                shots_cum=np.cumsum(preps).tolist(), crossings=int(sum(r.get("crossings", 0) for r in hist)),
                violations=task.model_at(driver.theta_).violations(), wall_s=time.perf_counter() - start)


def shots_to_target(result: dict, target: float) -> int | None:
    for cost, shots in zip(result["cost"], result["shots_cum"], strict=True):
        if cost <= target:
            return int(shots)
    return None


def summarise(runs: list[dict], target: float) -> dict:
    """Per (method, M): shots to target over seeds; None entries = not reached within max steps."""
    out = {}
    for r in runs:
        key = (r["method"], r["shots"])
        out.setdefault(key, []).append(shots_to_target(r, target))
    return out


def fmt_shots(values: list) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    text = f"{np.mean(reached):,.0f} ± {np.std(reached):,.0f}" if len(reached) > 1 else f"{reached[0]:,}"
    return text + ("" if len(reached) == len(values) else f" ({len(reached)}/{len(values)} reached)")


def best(summary: dict, method: str) -> tuple[int | None, list]:
    """(M, values) of ``method`` with the lowest mean shots-to-target (unreached counted as ∞)."""
    options = [(m, v) for (meth, m), v in summary.items() if meth == method]
    if not options:
        return None, []

    def score(item):
        values = item[1]
        return (sum(v is None for v in values), np.mean([v for v in values if v is not None] or [np.inf]))

    return min(options, key=score)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["configs"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.0), squeeze=False)
    colours = {"qep": "tab:blue", "fd": "tab:red"}
    for ax, name in zip(axes[0], names, strict=True):
        c = results["configs"][name]
        for r in c["runs"]:
            if r["method"] == "ref":
                continue
            chosen = r["shots"] == c["best_shots"].get(r["method"])
            ax.plot(np.maximum(r["shots_cum"], 1), r["cost"], "-o" if chosen else ":", color=colours[r["method"]],
                    ms=2.5, lw=1.2 if chosen else 0.7, alpha=0.9 if chosen else 0.4)
        for method in ("qep", "fd"):
            m = c["best_shots"].get(method)
            if m is None:
                continue
            sel = [r for r in c["runs"] if r["method"] == method and r["shots"] == m]
            k = min(len(r["cost"]) for r in sel)
            mean = np.mean([r["cost"][:k] for r in sel], axis=0)
            std = np.std([r["cost"][:k] for r in sel], axis=0)
            ax.errorbar(np.maximum(sel[0]["shots_cum"][:k], 1), mean, yerr=std, color=colours[method], lw=2,
                        capsize=2, label=f"{method.upper()} M={m} ({len(sel)} seeds)")
        ax.axhline(c["target"], color="k", ls="--", lw=0.8, label="target c*")
        ax.set_xscale("log")
        ax.set_xlabel("cumulative shots")
        ax.set_title(f"{name}: {c['atoms']} atoms, P = {c['parameters']}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("exact cost ⟨Ĉ⟩ (sites off the checkerboard)")
    fig.suptitle("Inverse design for checkerboard order: QEP (3 M shots/step) vs central FD ((2P+1) M shots/step); "
                 "thin dotted: other M", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def fd_plan(args, config: str) -> list[tuple[int, list[int], int]]:
    """[(M, seeds, max steps)] of the FD runs on ``config``."""
    if args.fd_plan is None:
        return [(m, list(args.seeds), args.max_steps) for m in args.fd_shots]
    out = []
    for item in args.fd_plan:
        name, shots, seeds, steps = item.split(":")
        if name == config:
            out += [(int(m), [int(x) for x in seeds.split(",")], int(steps)) for m in shots.split(",")]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=["P10", "P30", "P108"], choices=list(CONFIGS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--qep-shots", type=int, nargs="*", default=[100, 400], help="none: FD runs only")
    ap.add_argument("--fd-shots", type=int, nargs="*", default=[100, 400], help="none: QEP runs only")
    ap.add_argument("--fd-seeds", type=int, nargs="+", default=None, help="seeds of the FD runs (default --seeds)")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--fd-step-um", type=float, default=0.2)
    ap.add_argument("--fd-step-detuning", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=2.0)
    ap.add_argument("--lr-positions", type=float, default=2.0)
    ap.add_argument("--ref-steps", type=int, default=6)
    ap.add_argument("--fraction", type=float, default=0.8)
    ap.add_argument("--max-steps", type=int, default=12)
    ap.add_argument("--fd-plan", nargs="+", default=None, metavar="CONFIG:M,M:SEED,SEED:MAXSTEPS",
                    help="FD runs per array, e.g. P10:25,100:1,2,3:12 P108:100:1:6 (default: every --configs "
                         "array with --fd-shots, --seeds, --max-steps)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "inverse_design"))
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="no runs: combine these result files into --out.json/.png and print the table")
    args = ap.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return
    common = dict(beta=args.beta, fd_step_um=args.fd_step_um, fd_step_detuning=args.fd_step_detuning, lr=args.lr,
                  lr_positions=args.lr_positions)
    results = {"configs": {}}
    started = time.time()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        refs = dict(zip(args.configs, pool.map(run, [dict(common, config=c, method="qep", shots=None, seed=0,
                                                          steps=args.ref_steps) for c in args.configs]),
                        strict=True))
        jobs = []
        for c in args.configs:
            ref = refs[c]
            target = ref["cost"][0] - args.fraction * (ref["cost"][0] - ref["cost"][-1])
            base = dict(common, config=c, steps=args.max_steps, target=target)
            jobs += [dict(base, method="qep", shots=m, seed=s) for m in args.qep_shots for s in args.seeds]
            for m, seeds, steps in fd_plan(args, c):
                jobs += [dict(base, method="fd", shots=m, seed=s, steps=steps) for s in seeds]
        # the longest (FD, large P) first, so that the pool's two workers finish together
        jobs.sort(key=lambda j: -(CONFIGS[j["config"]][0] == "36") * 1e6
                  - (j["method"] == "fd") * (2 * len(CONFIGS[j["config"]][1]) + len(CONFIGS[j["config"]][2])))
        done = list(pool.map(run, jobs))
    for c in args.configs:
        ref = refs[c]
        runs = [r for r in done if r["config"] == c]
        target = ref["cost"][0] - args.fraction * (ref["cost"][0] - ref["cost"][-1])
        results["configs"][c] = {"parameters": ref["parameters"], "atoms": ref["atoms"], "target": target,
                                 "reference": ref, "runs": runs, "args": vars(args),
                                 "wall_s": time.time() - started}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(results, indent=1, default=float))
    report(results, out)


def report(results: dict, out: Path) -> None:
    """Print the table (best M of each method per array) and write ``out``.png."""
    print("\nInverse design, checkerboard (Z2) target on qep_lab_device (per array: β, learning rates, FD steps h, "
          "target c* = c0 − fraction·(c0 − c_ref) with c_ref the noiseless-QEP cost after ref-steps; see the json)\n")
    head = ("| P | atoms | backend | c0 → c* (Z2 order m*) | QEP shots/step | FD shots/step | sequence ratio (2P+1)/3 "
            "| QEP shots to c* (best M) | FD shots to c* (best M) | measured FD/QEP |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    details = []
    for c, entry in results["configs"].items():
        ref, target = entry["reference"], entry["target"]
        runs = [r for r in entry["runs"] if "error" not in r]
        details += [f"    {c} {r['method']} M={r['shots']} seed {r['seed']}: FAILED {r['error']}"
                    for r in entry["runs"] if "error" in r]
        summary = summarise(runs, target)
        m_q, v_q = best(summary, "qep")
        m_f, v_f = best(summary, "fd")
        entry["best_shots"] = {"qep": m_q, "fd": m_f}
        entry["shots_to_target"] = {f"{k[0]}_M{k[1]}": v for k, v in summary.items()}
        p, n = ref["parameters"], ref["atoms"]
        rq = [v for v in v_q if v is not None]
        rf = [v for v in v_f if v is not None]
        spent = max((r["shots_cum"][-1] for r in runs if r["method"] == "fd" and r["shots"] == m_f), default=0)
        ratio = (f"{np.mean(rf) / np.mean(rq):.1f}" if rq and rf else f"> {spent / np.mean(rq):.1f} (FD not reached)"
                 if rq and spent else "—")
        fd_text = fmt_shots(v_f)
        if v_f and not rf:  # none reached: say how far each run went
            steps = max(len(r["cost"]) - 1 for r in runs if r["method"] == "fd" and r["shots"] == m_f)
            fd_text = f"not reached in {steps} steps ({spent:,} shots, {len(v_f)} seed{'s' * (len(v_f) > 1)})"
        print(f"| {p} | {n} | {CONFIGS[c][3]} | {ref['cost'][0]:.2f} → {target:.2f} ({1 - 2 * target / n:.3f}) | 3·M "
              f"| {2 * p + 1}·M | {(2 * p + 1) / 3:.1f} | {fmt_shots(v_q)} (M={m_q}) | {fd_text} (M={m_f}) "
              f"| {ratio} |")
        for (method, m), values in sorted(summary.items()):
            walls = [r["wall_s"] for r in runs if r["method"] == method and r["shots"] == m]
            details.append(f"    {c} {method} M={m}: shots to c* per seed {values} "
                           f"(wall per run {np.mean(walls):.0f} s)")
    for c, entry in results["configs"].items():
        for m in entry.get("merged", []):
            details.append(f"    {c}: runs {m['runs']} merged from {m['file']} (its own noiseless reference: c* = "
                           f"{m['target']:.4f}; counted here against c* = {entry['target']:.4f})")
        for r in entry["runs"]:
            if r["method"] == "fd" and "error" not in r:
                details.append(f"    {c} fd M={r['shots']} seed {r['seed']}: exact cost per step "
                               + " → ".join(f"{v:.2f}" for v in r["cost"]))
    print("\n".join(details))
    plot(results, Path(f"{out}.png"))
    print(f"\nwrote {out}.png")


def _key(run: dict) -> tuple:
    return run["method"], run["shots"], run["seed"]


def merge(paths: list[str], out: str) -> None:
    """Combine result files (one bench invocation per array, or more runs of an array) into one table and figure.

    An array met again keeps the first file's reference and target c*; the later file's runs are added, and
    replace the runs of the same (method, M, seed) (e.g. an FD run continued to the target). Shots to c* are
    counted against the kept c*; the later file's own reference and c* are recorded under ``merged``.
    """
    results = {"configs": {}}
    for path in paths:
        for name, entry in json.loads(Path(path).read_text())["configs"].items():
            kept = results["configs"].get(name)
            if kept is None:
                results["configs"][name] = entry
                continue
            new = {_key(r) for r in entry["runs"]}
            kept["runs"] = [r for r in kept["runs"] if _key(r) not in new] + [dict(r, merged_from=str(path))
                                                                                 for r in entry["runs"]]
            kept.setdefault("merged", []).append({"file": str(path), "target": entry["target"],
                                                  "reference_cost": entry["reference"]["cost"],
                                                  "runs": sorted(new, key=str), "wall_s": entry.get("wall_s")})
    order = [c for c in CONFIGS if c in results["configs"]]
    results["configs"] = {c: results["configs"][c] for c in order}
    Path(f"{out}.json").write_text(json.dumps(results, indent=1, default=float))
    report(results, Path(out))


if __name__ == "__main__":
    main()
