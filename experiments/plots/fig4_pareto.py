"""Figure 4: latency-accuracy Pareto plot, P95 TTFT against output quality, one point per policy/config."""
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure


@dataclass(frozen=True, slots=True)
class ParetoPoint:
    policy: str
    p95_ttft_ms: float
    quality: float       # Rouge-L or F1; higher is better


def pareto_frontier(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """Points no other point beats on both axes (lower TTFT and higher quality), by increasing TTFT."""
    frontier = []
    for point in sorted(points, key=lambda p: (p.p95_ttft_ms, -p.quality)):
        if not frontier or point.quality > frontier[-1].quality:
            frontier.append(point)
    return frontier


def plot_pareto(points: Sequence[ParetoPoint], out_dir: str | Path, quality_name: str = "Rouge-L",
                title: str = "", stem: str = "fig4_pareto") -> FigureFiles:
    require_data(points, "points")
    figure, (axes,) = new_figure()
    for policy in dict.fromkeys(p.policy for p in points):
        mine = [p for p in points if p.policy == policy]
        axes.scatter([p.p95_ttft_ms for p in mine], [p.quality for p in mine], label=policy,
                     color=policy_color(policy), s=40)
    frontier = pareto_frontier(points)
    axes.plot([p.p95_ttft_ms for p in frontier], [p.quality for p in frontier], "k--", lw=1, label="Pareto frontier")
    axes.set(xlabel="P95 TTFT (ms)", ylabel=quality_name, title=title)
    axes.legend(fontsize="small")
    on_frontier = set(frontier)
    rows = [{**asdict(p), "on_frontier": p in on_frontier} for p in points]
    return save_figure(figure, rows, out_dir, stem)
