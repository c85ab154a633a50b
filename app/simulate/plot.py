"""``--plot``: a PNG of latency percentiles per queue, queue depths, CPU and the
controller's degradation ladder over time, one column per run (gamesched, and the
baseline when it ran)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.observe.recorder import Execution
from app.observe.stats import percentile
from app.protocol.queues import TASK_QUEUES
from app.simulate.runner import RunResult


def write_plot(path: Path, runs: list[tuple[str, RunResult]]) -> None:
    """Draw `runs` side by side into a PNG at `path`."""
    figure = Figure(figsize=(7.5 * len(runs), 13.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(4, len(runs), squeeze=False)
    for col, (label, run) in enumerate(runs):
        _latency(axes[0][col], label, run)
        _depths(axes[1][col], run)
        _cpu(axes[2][col], run)
        _ladder(axes[3][col], run)
    figure.savefig(path, dpi=90)


def latency_series(run: RunResult) -> dict[str, list[tuple[float, float, float]]]:
    """Per logical queue, per second of the run: (second, p50 ms, p99 ms) of the tasks that
    finished in that second."""
    bins: dict[str, dict[int, list[float]]] = {}
    for e in run.executions:
        queue = _queue(e)
        second = int(e.done - run.drive.started)
        bins.setdefault(queue, {}).setdefault(second, []).append(e.latency_ms)
    return {q: [(s + 0.5, percentile(v, 50), percentile(v, 99)) for s, v in sorted(b.items())]
            for q, b in sorted(bins.items())}


def _queue(e: Execution) -> str:
    return TASK_QUEUES[e.task].value if e.task in TASK_QUEUES else e.queue


def _latency(ax: Axes, label: str, run: RunResult) -> None:
    for queue, points in latency_series(run).items():
        xs = [p[0] for p in points]
        line = ax.plot(xs, [p[2] for p in points], label=f"{queue} p99")[0]
        ax.plot(xs, [p[1] for p in points], linestyle=":", color=line.get_color(),
                label=f"{queue} p50")
    ax.set_yscale("log")
    ax.set_title(f"{label}: latency, hand-off to applied")
    ax.set_ylabel("ms")
    ax.axvline(run.drive.elapsed_s, color="grey", linewidth=0.8)
    ax.legend(fontsize=7, ncol=2)


def _depths(ax: Axes, run: RunResult) -> None:
    names = sorted({n for s in run.samples for n in s.depths})
    for name in names:
        ax.plot([s.at for s in run.samples], [s.depths.get(name, 0) for s in run.samples],
                label=name)
    ax.set_title("queue depth (messages waiting)")
    ax.set_ylabel("messages")
    if names:
        ax.legend(fontsize=7)


def _cpu(ax: Axes, run: RunResult) -> None:
    at = [s.at for s in run.samples]
    ax.plot(at, [s.fleet_cpu for s in run.samples], label="workers")
    ax.plot(at, [s.simulator_cpu for s in run.samples], label="simulator")
    ax.plot(at, [s.services_cpu for s in run.samples], label="redis + postgres")
    ax.axhline(0.8, color="grey", linestyle="--", linewidth=0.8, label="80 % cap")
    ax.set_title("CPU (share of all cores)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)


TIER_LEVEL = {"full": 1.0, "reduced": 0.5, "minimal": 0.1}  # to draw the AI tier on 0..1


def _ladder(ax: Axes, run: RunResult) -> None:
    """The controller's rungs over time: background level, AI tier, physics detail."""
    decided = [s for s in run.samples if s.control]
    at = [s.at for s in decided]
    ax.step(at, [s.control.get("background_level", 1.0) for s in decided], where="post",
            label="background level")
    ax.step(at, [TIER_LEVEL.get(str(s.control.get("ai_tier")), 1.0) for s in decided],
            where="post", label="AI tier (full 1, reduced 0.5, minimal 0.1)")
    ax.step(at, [s.control.get("physics_detail", 1.0) for s in decided], where="post",
            label="physics detail (regions without players)")
    ax.set_title("degradation ladder (the controller's decision)")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylim(0, 1.05)
    if decided:
        ax.legend(fontsize=7)
