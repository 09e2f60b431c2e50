"""Measurement harness (issue 17 part 1): ``qep-analog train`` for the Rydberg phase sensor with another read-out
code assignment than the task's gg = disordered, rg = Z2, gr = Z3.

    python bench/rydberg_phase_sensor_codes.py gg,rr,rg train protocols/rydberg_phase_sensor.toml --full --seed 1 \\
        --set training.validation=100 --set 'chain.sensor_offsets=[[-2.4, 1.8], [3.0, 1.8]]' \\
        --set 'device.detunings=[-1.4, -1.25]'

The first argument names the sensor bitstring (n_A n_B: g = 0, r = 1) of disordered, Z2 and Z3; the rest is the
CLI's command line. The task has no option for this yet (its module constant ``CODES``), so the harness replaces
``CODES`` and the ``scores`` function (max-choice over the three used outcomes; single-shot = probability of the
label's outcome) in the running process and then calls the CLI; it needs the serial executor (the default).

The trained objective stays ⟨Ĉ⟩ with Ĉ = Σ_s (n_s − c_s)² = Σ_s (1 − 2c_s) n_s + c_s², linear in n_s for any
binary code c, so the symmetric nudge is still a DMM detuning δ_s → δ_s ∓ β(1 − 2c_s): the gradient code reads
``CODES[label]`` and needs no other change. In ``results.json`` only ``grid_accuracy`` and the task's phase-map
figure assume outcome index = phase index; ``bench/rydberg_phase_sensor.py --figure RUN --codes …`` redraws the
map and recomputes the grid accuracy. Use it until the task takes a ``[chain] codes`` key (see
docs/notes/issue-17-part1-accuracy.md).
"""

from __future__ import annotations

import sys

import numpy as np

BITS = {"gg": (0.0, 0.0), "rg": (1.0, 0.0), "gr": (0.0, 1.0), "rr": (1.0, 1.0)}


def patch(codes: np.ndarray) -> None:
    """Make the task read out ``codes`` (3 × 2, rows = disordered, Z2, Z3)."""
    import qep_analog.tasks.rydberg_phases as task_module
    import qep_analog.tasks.rydberg_phases_run as run_module

    outcome = (codes[:, 0] + 2 * codes[:, 1]).astype(int)  # index into (gg, rg, gr, rr)

    def scores(probabilities, labels) -> dict:
        p = np.asarray(probabilities, dtype=float)
        labels = np.asarray(labels, dtype=int)
        named = p[:, outcome]
        n_a, n_b = p[:, 1] + p[:, 3], p[:, 2] + p[:, 3]
        code = codes[labels]
        cost = (1 - 2 * code[:, 0]) * n_a + code[:, 0] + (1 - 2 * code[:, 1]) * n_b + code[:, 1]
        return {"loss": float(np.mean(cost)), "accuracy": float(np.mean(np.argmax(named, axis=1) == labels)),
                "single_shot_accuracy": float(np.mean(named[np.arange(len(labels)), labels]))}

    task_module.CODES = codes
    task_module.scores = scores
    run_module.scores = scores


def main() -> int:
    names = sys.argv[1].split(",")
    if len(names) != 3 or len(set(names)) != 3 or not set(names) <= set(BITS):
        raise SystemExit(f"codes must be three distinct of {sorted(BITS)} (disordered, Z2, Z3), not {sys.argv[1]!r}")
    patch(np.array([BITS[c] for c in names]))
    from qep_analog.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
