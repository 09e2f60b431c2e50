"""Phase-sensor training budget: the paper's settings against ours, over several seeds.

For each setting, runs ``protocols/phase_sensor.toml --full`` (idealised noise model: Gaussian
Var/M per observable, M = 10, exact error signal, symmetric nudging; the protocol's crossing policy) for
``--seeds`` seeds, then prints, for the *mean over seeds* of the max-choice test accuracy, the
batches, state preparations (PHYSICS.md §1 counting, mean per seed) and wall time needed to reach
0.9 and 0.94, the final mean / median / min, and the ratios paper ÷ ours.

    python bench/training_budget.py                      # 10 seeds × 2,000 batches × 2 settings (~40 min)
    python bench/training_budget.py --seeds 3 --steps 100 --eval-every 20    # a quick look
    python bench/training_budget.py --settings ours --first-seed 11 --out runs/more   # 10 more seeds
    python bench/training_budget.py --from-runs runs/study/ours_* runs/more/ours_*  # summarise finished runs

Settings: ``paper`` = Adam, constant lr 0.01, β = 0.4 (Wanjura–Marquardt), the last iterate, no
validation; ``ours`` = the protocol's ``--full`` (the same β and rate, plus validation selection: the
θ with the best measured accuracy on 200 held-out training points, scored every 50 batches; its
preparations are included). Both use the protocol's M, initialisation and crossing policy. At each
evaluation the test accuracy is that of the θ the setting would ship then (ours: the selected one).
Wall time to reach a level = (run wall time / batches) × batches to reach it.
Shot bill: every budget is also priced as shots → jobs, hours and cost at a stated HYPOTHETICAL rate (the
phase sensor is not a Rydberg array and no lab runs it): FRESNEL's 0.25 shots/s and 3.3 € a shot, ≤ 1,000
runs per job, from ``devices/fresnel_like.lab.json`` (``--rate-device`` picks another device's sidecar).
Jobs are ⌈shots / max_runs_per_job⌉, a lower bound (a job runs one sequence, and each sequence has only
M = 10 shots here, so a real lab would need one job per (sample, phase, setting): shots / M jobs).
Runs go through ``qep-analog train``, one Dask task per (setting, seed): on a local cluster of
``--workers`` processes (default 2), or on a running cluster with ``--scheduler tcp://host:8786``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols" / "phase_sensor.toml"
SETTINGS = {
    "paper": ["training.learning_rate=0.01", "training.schedule=constant", "gradient.beta=0.4",
              "training.validation=0"],
    "ours": [],
}
LEVELS = (0.9, 0.94)


def _run(task: tuple[str, int, int, int, str]) -> dict:
    from qep_analog.train import run_training

    setting, seed, steps, eval_every, out = task
    overrides = [*SETTINGS[setting], f"training.steps={steps}", f"training.eval_every={eval_every}",
                 "task.plot_resolution=4"]
    res = run_training(PROTOCOL, out_dir=out, seed=seed, full=True, overrides=overrides, progress=False)
    return {"setting": setting, "seed": seed, "history": res["history"], "wall_time_s": res["wall_time_s"],
            "final": res["final"]}


def load_run(directory: Path) -> dict:
    data = json.loads((Path(directory) / "results.json").read_text())
    return {"setting": str(directory), "seed": data["seed"], "history": data["history"],
            "wall_time_s": data["wall_time_s"], "final": data["final"]}


def bill(shots: float, rate_device: str = "fresnel_like", shots_per_sequence: int = 10) -> dict:
    """Shots → jobs (lower bound ⌈shots/max_runs⌉ and one job per sequence), hours, cost at the device's lab rate."""
    from qep_analog.device.lab import lab_metadata

    lab = lab_metadata(rate_device)
    if lab is None:
        raise SystemExit(f"device {rate_device!r} has no lab sidecar (devices/{rate_device}.lab.json)")
    runs = lab.max_runs_per_job or 1000
    return {"shots": float(shots), "jobs_min": int(np.ceil(shots / runs)),
            "jobs_one_per_sequence": int(np.ceil(shots / shots_per_sequence)),
            "hours": shots / lab.shot_rate_hz / 3600, "cost": shots * lab.price_per_shot, "currency": lab.currency,
            "rate": f"hypothetical: {rate_device} {lab.shot_rate_hz:g} shots/s, {lab.price_per_shot:g} "
                    f"{lab.currency}/shot, ≤ {runs} runs/job"}


def summarise(runs: list[dict], rate_device: str = "fresnel_like") -> dict:
    """Mean-over-seeds accuracy curve and the budget to reach each level."""
    steps = sorted(set.intersection(*[{r["step"] for r in run["history"] if "test_accuracy" in r}
                                      for run in runs]))
    acc = np.array([[next(r["test_accuracy"] for r in run["history"] if r["step"] == s) for s in steps]
                    for run in runs])
    preps = np.array([np.cumsum([r.get("preparations") or 0 for r in run["history"]]) for run in runs])
    per_batch_s = np.mean([run["wall_time_s"] / len(run["history"]) for run in runs])
    mean = acc.mean(axis=0)
    out = {"seeds": len(runs), "eval_steps": steps, "mean_curve": mean.tolist(),
           "final_mean": float(acc[:, -1].mean()), "final_median": float(np.median(acc[:, -1])),
           "final_min": float(acc[:, -1].min()), "final_max": float(acc[:, -1].max()),
           "best_mean": float(mean.max()), "best_mean_step": int(steps[int(np.argmax(mean))]),
           "seconds_per_batch": float(per_batch_s),
           "final_single_shot_mean": float(np.mean([run["final"].get("test_single_shot_accuracy", np.nan)
                                                    for run in runs])),
           "crossing_events_mean": float(np.mean([run["final"].get("crossing_events", 0) for run in runs])),
           "crossing_samples_mean": float(np.mean([run["final"].get("crossing_samples", np.nan) for run in runs])),
           "final_per_seed": acc[:, -1].tolist(),
           "selected_steps": [run["final"].get("selected_step") for run in runs],
           "validation_preparations_mean": float(np.mean([run["final"].get("validation_preparations", 0)
                                                          for run in runs]))}
    for level in LEVELS:
        hit = np.nonzero(mean >= level)[0]
        if hit.size:
            s = steps[int(hit[0])]
            out[f"to_{level}"] = {"batches": s, "preparations": float(preps[:, s - 1].mean()),
                                  "wall_s": float(per_batch_s * s),
                                  "bill": bill(float(preps[:, s - 1].mean()), rate_device)}
        else:
            out[f"to_{level}"] = None
    out["total_bill"] = bill(float(preps[:, -1].mean()), rate_device)
    return out


def _money(b: dict) -> str:
    return (f"{b['jobs_min']:,}–{b['jobs_one_per_sequence']:,} jobs, {b['hours']:,.0f} h, "
            f"{b['cost']:,.0f} {b['currency']}")


def _print(name: str, s: dict) -> None:
    print(f"[{name}] {s['seeds']} seeds: final max-choice accuracy mean {s['final_mean']:.3f}, median "
          f"{s['final_median']:.3f}, min {s['final_min']:.3f}, max {s['final_max']:.3f}; best mean "
          f"{s['best_mean']:.3f} at batch {s['best_mean_step']}; single-shot {s['final_single_shot_mean']:.3f}; "
          f"{s['seconds_per_batch']:.2f} s/batch; crossing events/run {s['crossing_events_mean']:.0f}, "
          f"training samples touched by the crossing policy/run {s['crossing_samples_mean']:.0f}")
    print(f"   per seed: {' '.join(f'{a:.3f}' for a in s['final_per_seed'])}")
    if any(step is not None for step in s["selected_steps"]):
        print(f"   validation-selected batches: {s['selected_steps']}; validation preparations/run "
              f"{s['validation_preparations_mean']:.3g} (included below)")
    for level in LEVELS:
        r = s[f"to_{level}"]
        print(f"   mean ≥ {level}: " + ("not reached" if r is None else
              f"{r['batches']} batches, {r['preparations']:.3g} preparations, {r['wall_s']:.0f} s; "
              f"on hardware: {_money(r['bill'])}"))
    print(f"   whole run per seed: {s['total_bill']['shots']:.3g} shots = {_money(s['total_bill'])} "
          f"({s['total_bill']['rate']})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=1, help="seeds run from here (default 1)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--workers", type=int, default=2, help="local Dask worker processes (one run each at a time)")
    p.add_argument("--scheduler", default=None, help="a running Dask scheduler instead, e.g. tcp://host:8786")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--from-runs", nargs="+", default=None, help="summarise finished run directories instead")
    p.add_argument("--json", default=None, help="also write the summary here")
    p.add_argument("--rate-device", default="fresnel_like",
                   help="device whose lab sidecar prices the shots (hypothetically; default fresnel_like)")
    p.add_argument("--out", default=None, help="keep the run directories here (default: a temporary directory)")
    args = p.parse_args(argv)
    if args.from_runs:
        runs = [load_run(Path(d)) for d in args.from_runs if (Path(d) / "results.json").is_file()]
        summary = {"runs": summarise(runs, args.rate_device)}
        _print("runs", summary["runs"])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(args.out) if args.out else Path(tmp)
            tasks = [(s, seed, args.steps, args.eval_every, str(base / f"{s}_{seed}"))
                     for s in args.settings for seed in range(args.first_seed, args.first_seed + args.seeds)]
            from qep_analog.distributed import DaskExecutor

            where = {"scheduler": args.scheduler} if args.scheduler else {"workers": args.workers}
            with DaskExecutor(**where) as pool:
                results = pool.map(_run, tasks)
        summary = {s: summarise([r for r in results if r["setting"] == s], args.rate_device) for s in args.settings}
        for s in args.settings:
            _print(s, summary[s])
        if {"paper", "ours"} <= set(summary):
            for level in LEVELS:
                a, b = summary["paper"][f"to_{level}"], summary["ours"][f"to_{level}"]
                if a and b:
                    print(f"ratio paper/ours to reach {level}: batches {a['batches'] / b['batches']:.2f}×, "
                          f"preparations {a['preparations'] / b['preparations']:.2f}×, "
                          f"wall time {a['wall_s'] / b['wall_s']:.2f}×")
                else:
                    print(f"ratio paper/ours to reach {level}: n/a (paper {'reached' if a else 'not reached'}, "
                          f"ours {'reached' if b else 'not reached'} within {args.steps} batches)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
