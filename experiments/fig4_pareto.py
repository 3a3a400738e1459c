"""Figure 4: latency-accuracy Pareto plot, P95 TTFT against output quality (Rouge-L), one point per policy.

    python experiments/fig4_pareto.py dataset=qmsum_goldspan [figure_dir=...]   (needs an eval set)

Quality cannot be simulated: with ``backend=sim`` the quality axis is the share of output tokens made with every
layer at full precision (1 - the share with any quantized layer), labelled so.
"""
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure
from experiments.replay.figures import register_schemas, run_policies


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


MARKERS = ("o", "s", "^", "D", "v", "P")     # with the colour, tells apart more series than the palette has colours


def plot_pareto(points: Sequence[ParetoPoint], out_dir: str | Path, quality_name: str = "Rouge-L",
                title: str = "", stem: str = "fig4_pareto") -> FigureFiles:
    require_data(points, "points")
    figure, (axes,) = new_figure()
    for i, policy in enumerate(dict.fromkeys(p.policy for p in points)):
        mine = [p for p in points if p.policy == policy]
        axes.scatter([p.p95_ttft_ms for p in mine], [p.quality for p in mine], label=policy,
                     color=policy_color(policy), marker=MARKERS[i % len(MARKERS)], s=40)
    frontier = pareto_frontier(points)
    axes.plot([p.p95_ttft_ms for p in frontier], [p.quality for p in frontier], "k--", lw=1, label="Pareto frontier")
    axes.set(xlabel="P95 TTFT (ms)", ylabel=quality_name, title=title)
    axes.legend(fontsize="small")
    on_frontier = set(frontier)
    rows = [{**asdict(p), "on_frontier": p in on_frontier} for p in points]
    return save_figure(figure, rows, out_dir, stem)


register_schemas()


SIMULATED_QUALITY = "share of tokens at full precision (simulated: no text)"


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    simulated = cfg.backend.simulated
    if cfg.dataset.name is None and not simulated:
        raise SystemExit("Figure 4 scores output quality: choose an eval set, e.g. dataset=qmsum_goldspan")
    results = run_policies(cfg)
    points = [ParetoPoint(p, r.row["p95_ttft_ms"], 1 - r.row["share_tokens_quantized"] if simulated else r.row["rouge_l"])
              for p, r in results.items()]
    files = plot_pareto(points, Path(cfg.figure_dir), quality_name=SIMULATED_QUALITY if simulated else "Rouge-L",
                        title=f"{cfg.model.name}, {cfg.hardware.name if simulated else cfg.dataset.name}")
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
