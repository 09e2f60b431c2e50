"""Run outputs of ``qep-analog train``: the results JSON, a short markdown report, PNG plots.

Everything is regenerated from the results dict alone (``results.json``), so a report can be
rebuilt later with :func:`write_outputs`. Plots use matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qep_analog.tasks.common import atomic_write_text, to_jsonable

PHASE_COLOURS = {"SPT": "#1b9e77", "FM": "#d95f02", "PM": "#7570b3"}


def write_outputs(out_dir: Path, results: dict) -> list[str]:
    """Write results.json, the plots and report.md into ``out_dir``; return the file names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = with_shot_bill(results)
    atomic_write_text(out_dir / "results.json", json.dumps(to_jsonable(results), indent=1, allow_nan=False))
    plots = make_plots(out_dir, results)
    atomic_write_text(out_dir / "report.md", markdown_report(results, plots))
    return ["results.json", "report.md", *plots]


def with_shot_bill(results: dict) -> dict:
    """``results`` with ``final.shot_bill``: the task's own (a Rydberg task bills its device's lab rate),
    else, when the task measures finite shots (``gradient.shots``; ``final.preparations`` counts them),
    a hypothetical bill at the FRESNEL-like rate (:func:`qep_analog.device.lab.reference_bill`).
    The input dict is not changed."""
    final = results.get("final") or {}
    shots = final.get("preparations")
    if "shot_bill" in final or not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
        return results
    gradient = (results.get("config") or {}).get("gradient") or {}
    if not gradient.get("shots"):  # exact expectations: preparations are not shots
        return results
    from qep_analog.device.lab import reference_bill

    return dict(results, final=dict(final, shot_bill=reference_bill(shots).as_dict()))


def _bill_lines(final: dict) -> list[str]:
    bill = final.get("shot_bill")
    if not isinstance(bill, dict) or "shots" not in bill:
        return []
    hours, cost = bill.get("hours"), bill.get("cost")
    lines = ["## Shot bill", "", "| total shots | jobs | hours | cost |", "|---|---|---|---|",
             f"| {bill['shots']:,} | {bill.get('jobs', 0):,} | "
             + (f"{hours:,.1f} | {cost:,.0f} {bill.get('currency')} |" if hours is not None else "— | — |"),
             "", f"Device {bill.get('device')}; max runs per job {bill.get('max_runs_per_job')}; "
             f"rate: {bill.get('rate_source')}.", ""]
    return lines


# ---------------------------------------------------------------------------------- markdown
def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "; ".join("(" + _fmt(v) + ")" for v in value)
    return str(value)


def markdown_report(results: dict, plots: list[str]) -> str:
    name = results.get("protocol_name") or results["task"]
    lines = [f"# {name}: {results['task']}", "",
             f"- protocol: `{results['source']}`{' (full size)' if results.get('full') else ' (reduced)'}",
             f"- seed: {results['seed']}; wall time: {results.get('wall_time_s', float('nan')):.1f} s; "
             f"qep_analog {results['versions'].get('qep_analog')}",
             f"- command: `{results.get('command', '')}`", ""]
    if results.get("description"):
        lines += [results["description"], ""]
    lines += ["## Final metrics", "", "| metric | value |", "|---|---|"]
    for key, value in results["final"].items():
        if key != "shot_bill":
            lines.append(f"| {key} | {_fmt(value)} |")
    lines += [""] + _bill_lines(results["final"])
    notes = results.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Configuration", "", "```json", json.dumps(to_jsonable(results["config"]), indent=1), "```",
              "", "## Plots", ""]
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- plots
def make_plots(out_dir: Path, results: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig = learning_curve(results)
    fig.savefig(out_dir / "learning_curve.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    names.append("learning_curve.png")
    task_plot = {"phase-sensor": phase_triangle, "classifier": classifier_map, "exploration": slice_trajectories,
                 "sensitivity": slice_trajectories, "oscillator-regression": oscillator_fit,
                 "rydberg-classifier": rydberg_register, "inverse-design": _inverse_design,
                 "rydberg-phases": _rydberg_phases}.get(results["task"])
    plot_data = results.get("plot")
    if task_plot is not None and plot_data:
        fig = task_plot(results)
        fname = f"{results['task']}.png"
        fig.savefig(out_dir / fname, dpi=110, bbox_inches="tight")
        plt.close(fig)
        names.append(fname)
    return names


def _inverse_design(results: dict):
    from qep_analog.tasks.inverse_design import design_plot

    return design_plot(results)


def _rydberg_phases(results: dict):
    from qep_analog.tasks.rydberg_phases_run import phase_map_figure

    return phase_map_figure(results)


def _ema(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    out, acc = np.empty_like(values), values[0]
    for i, v in enumerate(values):
        acc = weight * acc + (1 - weight) * v
        out[i] = acc
    return out


def learning_curve(results: dict):
    import matplotlib.pyplot as plt

    hist = results["history"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    if not hist:
        ax.text(0.5, 0.5, "no steps", ha="center")
        return fig
    steps = np.array([r["step"] for r in hist])
    if results["task"] in ("exploration", "sensitivity"):
        label = "⟨X₀X₄⟩" if results["task"] == "exploration" else "|Δ⟨X₀X₄⟩/Δg_X|"
        for key in sorted(k for k in hist[0] if k.startswith("value_")):
            ax.plot(steps, [r[key] for r in hist], label=f"start {key.split('_')[1]}")
        ax.set_ylabel(label)
        ax.set_xlabel("step")
        ax.legend()
        ax.set_title(f"{results['task']}: objective per step")
        return fig
    trained = [r for r in hist if "batch_loss" in r]  # a step-0 evaluation has no batch
    steps = np.array([r["step"] for r in trained])
    loss = np.array([r["batch_loss"] for r in trained], dtype=float)
    ax.plot(steps, loss, color="0.75", lw=0.8, label="batch loss")
    if len(loss) > 5:
        ax.plot(steps, _ema(loss), color="k", lw=1.2, label="batch loss (EMA)")
    if any("test_loss" in r for r in hist):
        ev = [r for r in hist if "test_loss" in r]
        ax.plot([r["step"] for r in ev], [r["test_loss"] for r in ev], "o-", color="tab:blue", ms=3,
                label="test loss")
    ax.set_xlabel("step (batch)")
    ax.set_ylabel("loss")
    if results["task"] == "oscillator-regression":
        ax.set_yscale("log")
    ax.legend(loc="upper left", fontsize=8)
    ev = [r for r in hist if "test_accuracy" in r]
    if ev:
        ax2 = ax.twinx()
        label = "test accuracy (max-choice)" if "test_single_shot_accuracy" in ev[0] else "test accuracy"
        if any(r.get("validation_accuracy") is not None for r in hist):
            label += ", selected θ"
        ax2.plot([r["step"] for r in ev], [r["test_accuracy"] for r in ev], "s-", color="tab:red", ms=3, label=label)
        if "test_single_shot_accuracy" in ev[0]:
            ax2.plot([r["step"] for r in ev], [r["test_single_shot_accuracy"] for r in ev], "^-",
                     color="tab:orange", ms=3, label="single-shot accuracy")
        val = [r for r in hist if r.get("validation_accuracy") is not None]
        if val:
            ax2.plot([r["step"] for r in val], [r["validation_accuracy"] for r in val], ".", color="tab:green",
                     ms=4, label="validation accuracy (measured, current θ)")
            ax2.axvline(val[-1]["selected_step"], color="tab:green", ls=":", lw=1, label="selected θ")
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("accuracy")
        ax2.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{results.get('protocol_name') or results['task']}: learning curve")
    return fig


def _triangle_xy(points: np.ndarray, total: float = 4.0) -> np.ndarray:
    """(g_ZXZ, g_ZZ, g_X) → plane: SPT corner (4,0,0) at (0,0), PM corner at (1,0), FM corner on top."""
    corners = np.array([[0.0, 0.0], [0.5, np.sqrt(3) / 2], [1.0, 0.0]])
    return np.asarray(points) @ corners / total


def phase_triangle(results: dict):
    import matplotlib.pyplot as plt

    d = results["plot"]
    grid, outputs, phases = np.array(d["grid"]), np.array(d["outputs"]), d["phases"]
    xy = _triangle_xy(grid)
    pred = np.argmax(outputs, axis=1)
    confidence = outputs[np.arange(len(pred)), pred]
    n_edge = int(round((np.sqrt(8 * len(grid) + 1) - 3) / 2))
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    for k, phase in enumerate(phases):
        sel = pred == k
        ax.scatter(xy[sel, 0], xy[sel, 1], c=_phase_colour(phase), s=90000 / max(n_edge, 1) ** 2,
                   marker="h", alpha=None, edgecolors="none", label=f"predicted {phase}")
        ax.scatter(xy[sel, 0], xy[sel, 1], c="white", s=90000 / max(n_edge, 1) ** 2 * (1 - confidence[sel]),
                   marker="h", edgecolors="none", alpha=0.5)
    # exact (thermodynamic-limit) boundaries: g_ZZ = 2 (FM) and g_ZXZ = g_X below it
    fm = _triangle_xy(np.array([[2.0, 2.0, 0.0], [0.0, 2.0, 2.0]]))
    spt_pm = _triangle_xy(np.array([[2.0, 0.0, 2.0], [1.0, 2.0, 1.0]]))
    for seg in (fm, spt_pm):
        ax.plot(seg[:, 0], seg[:, 1], "k-", lw=2)
    tri = _triangle_xy(np.array([[4, 0, 0], [0, 4, 0], [0, 0, 4], [4, 0, 0]], dtype=float))
    ax.plot(tri[:, 0], tri[:, 1], "k-", lw=0.8)
    ax.text(-0.04, -0.05, "g_ZXZ = 4\n(SPT)", ha="center", va="top", fontsize=8)
    ax.text(1.04, -0.05, "g_X = 4\n(PM)", ha="center", va="top", fontsize=8)
    ax.text(0.5, np.sqrt(3) / 2 + 0.02, "g_ZZ = 4 (FM)", ha="center", va="bottom", fontsize=8)
    ax.set_aspect("equal")
    ax.axis("off")
    acc = results["final"].get("test_accuracy")
    title = "phase sensor: predicted phase (faded = low confidence), exact boundaries in black"
    if acc is not None:
        single = results["final"].get("test_single_shot_accuracy", float("nan"))
        title += f"\ntest max-choice accuracy {acc:.3f}, single-shot {single:.3f}"
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=8, markerscale=0.5)
    return fig


def _phase_colour(phase: str) -> str:
    return PHASE_COLOURS.get(phase, "0.5")


def slice_trajectories(results: dict):
    import matplotlib.pyplot as plt

    d = results["plot"]
    maps = d["maps"]
    fig, axes = plt.subplots(1, len(maps), figsize=(6.2 * len(maps), 5.4), squeeze=False)
    for ax, grid in zip(axes[0], maps, strict=True):
        _slice_panel(fig, ax, d, grid)
    what = "maximise ⟨X₀X₄⟩" if d["kind"] == "exploration" else "maximise |Δ⟨X₀X₄⟩/Δg_X|"
    fig.suptitle(f"{results['task']} ({what}), g_ZXZ = {d['g_zxz']}, 10 open sites: trajectories "
                 "(o start, * end); phase boundaries dashed", fontsize=10)
    return fig


def _slice_panel(fig, ax, d: dict, grid: dict) -> None:
    g_x, g_zz, val = np.array(grid["g_x"]), np.array(grid["g_zz"]), np.array(grid["value"])
    g_zxz = d["g_zxz"]
    mesh = ax.pcolormesh(g_x, g_zz, val, shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="⟨X₀X₄⟩ (exact)")
    xs = np.linspace(g_x.min(), g_x.max(), 400)
    for sign in (1, -1):
        ax.plot(xs, sign * np.abs(xs + g_zxz), "w--", lw=1.3)
    ax.plot([g_zxz, g_zxz], [-2 * abs(g_zxz), 2 * abs(g_zxz)], "w--", lw=1.3, label="phase boundaries")
    colours = ["tab:red", "tab:orange", "magenta", "cyan"]
    for i, traj in enumerate(d["trajectories"]):
        t = np.array(traj)
        c = colours[i % len(colours)]
        if d["kind"] == "exploration":
            ax.plot(t[:, 0], t[:, 1], ".-", color=c, ms=3, lw=1, label=f"start {i}")
            ax.plot(*t[0], "o", color=c, mec="k")
            ax.plot(*t[-1], "*", color=c, mec="k", ms=12)
        else:
            ax.plot(t[:, 0], t[:, 2], ".-", color=c, ms=2, lw=0.8, label=f"start {i}: g_X⁽¹⁾")
            ax.plot(t[:, 1], t[:, 2], ".:", color=c, ms=2, lw=0.8, label=f"start {i}: g_X⁽²⁾")
            ax.plot([t[0, 0], t[0, 1]], [t[0, 2]] * 2, "o-", color=c, mec="k")
            ax.plot([t[-1, 0], t[-1, 1]], [t[-1, 2]] * 2, "*-", color=c, mec="k", ms=12)
    ax.set_xlim(g_x.min(), g_x.max())
    ax.set_ylim(g_zz.min(), g_zz.max())
    ax.set_xlabel("g_X")
    ax.set_ylabel("g_ZZ")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.12), ncol=3, facecolor="0.7")


def classifier_map(results: dict):
    import matplotlib.pyplot as plt

    d = results["plot"]
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    x = np.array(d["test_inputs"])
    y = np.array(d["test_targets"])
    if "grid_output" in d:
        mesh = ax.pcolormesh(d["grid_x0"], d["grid_x1"], d["grid_output"], shading="auto", cmap="RdBu",
                             vmin=-1, vmax=1)
        fig.colorbar(mesh, ax=ax, label="⟨Z_out⟩ of the trained network")
        ax.contour(d["grid_x0"], d["grid_x1"], d["grid_output"], levels=[0.0], colors="k", linewidths=1.5)
    ax.scatter(x[y > 0, 0], x[y > 0, 1], c="tab:blue", marker="o", edgecolors="k", s=20, label="class +1 (test)")
    ax.scatter(x[y <= 0, 0], x[y <= 0, 1], c="tab:red", marker="s", edgecolors="k", s=20, label="class −1 (test)")
    w = np.array(d["logistic_weights"])
    if len(w) == 3 and abs(w[1]) > 1e-12:
        xs = np.linspace(x[:, 0].min(), x[:, 0].max(), 50)
        ax.plot(xs, -(w[0] * xs + w[2]) / w[1], "g--", lw=1.5, label="logistic regression")
    f = results["final"]
    ax.set_title(f"QEP classifier test accuracy {f.get('test_accuracy', float('nan')):.3f}; "
                 f"logistic regression {f.get('logistic_test_accuracy', float('nan')):.3f}", fontsize=9)
    ax.set_xlabel("x₀ (input field)")
    ax.set_ylabel("x₁ (input field)")
    ax.legend(fontsize=7)
    return fig


def oscillator_fit(results: dict):
    import matplotlib.pyplot as plt

    d = results["plot"]
    t, p = np.array(d["targets"]), np.array(d["predictions"])
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    for k in range(t.shape[1]):
        ax.plot(t[:, k], p[:, k], "o", ms=3, label=f"output {k}")
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ideal")
    f = results["final"]
    ax.set_title(f"oscillator regression (test): mean loss {f['test_mean_loss']:.3g}, "
                 f"constrained optimum {f['optimum_test_mean_loss']:.3g}", fontsize=9)
    ax.set_xlabel("target output position")
    ax.set_ylabel("predicted mean position")
    ax.legend(fontsize=8)
    return fig


def rydberg_register(results: dict):
    """The register before and after training; colour = trained local detuning δ_i (rad/µs)."""
    import matplotlib.pyplot as plt

    d = results["plot"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True, sharey=True)
    det_all = np.array(d["detunings_before"] + d["detunings_after"])
    vmin, vmax = float(det_all.min()), float(det_all.max())
    for ax, key, title in ((axes[0], "before", "before training"), (axes[1], "after", "after training")):
        pos, det = np.array(d[f"positions_{key}"]), np.array(d[f"detunings_{key}"])
        sc = ax.scatter(pos[:, 0], pos[:, 1], c=det, cmap="coolwarm", vmin=vmin, vmax=vmax, s=500, edgecolors="k",
                        zorder=3)
        for i, (xx, yy) in enumerate(pos):
            role = "in" if i in d["input_atoms"] else ("out" if i in d["output_atoms"] else "")
            ax.annotate(f"q{i}\n{role}", (xx, yy), ha="center", va="center", fontsize=7, zorder=4)
        for i in range(len(pos)):
            for j in range(i + 1, len(pos)):
                r = np.linalg.norm(pos[i] - pos[j])
                if r < 10:
                    ax.plot(*zip(pos[i], pos[j], strict=True), "-", color="0.6", lw=3 * (7 / r) ** 3, zorder=1)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlabel("x (µm)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y (µm)")
    fig.colorbar(sc, ax=axes, label="local detuning δ_i (rad/µs)")
    f = results["final"]
    before = f.get("initial_test_accuracy", float("nan"))
    fig.suptitle(f"Rydberg classifier on {d['device']}: test accuracy {before:.3f}"
                 f" → {f.get('test_accuracy', float('nan')):.3f} (logistic regression "
                 f"{f.get('logistic_test_accuracy', float('nan')):.3f}); grey lines: pairs closer than 10 µm",
                 fontsize=9)
    return fig
