"""Figure 6: P95 TTFT and output throughput against request rate (trace time scales), one line per policy.

    python experiments/fig6_rate_sweep.py 'time_scales=[3.0,1.5,1.0]' [trace=...] [figure_dir=...]
"""
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure
from experiments.replay.figures import register_schemas, run_policies
from experiments.workload import load_workload_trace, mean_request_rate


@dataclass(frozen=True, slots=True)
class RateSweepPoint:
    policy: str
    request_rate: float          # offered load, requests/s
    p95_ttft_ms: float
    output_throughput: float     # tokens/s


def plot_rate_sweep(points: Sequence[RateSweepPoint], out_dir: str | Path, title: str = "",
                    stem: str = "fig6_rate_sweep") -> FigureFiles:
    require_data(points, "points")
    figure, (ttft_axes, throughput_axes) = new_figure(num_axes=2)
    for policy in dict.fromkeys(p.policy for p in points):
        mine = sorted((p for p in points if p.policy == policy), key=lambda p: p.request_rate)
        rates = [p.request_rate for p in mine]
        style = {"color": policy_color(policy), "marker": "o", "label": policy}
        ttft_axes.plot(rates, [p.p95_ttft_ms for p in mine], **style)
        throughput_axes.plot(rates, [p.output_throughput for p in mine], **style)
    ttft_axes.set(xlabel="request rate (req/s)", ylabel="P95 TTFT (ms)", title=title)
    throughput_axes.set(xlabel="request rate (req/s)", ylabel="output throughput (tok/s)")
    ttft_axes.legend(fontsize="small")
    return save_figure(figure, [asdict(p) for p in points], out_dir, stem)


register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    points = []
    for scale in cfg.time_scales:
        cfg.trace.shaping.time_scale = scale
        rate = mean_request_rate(load_workload_trace(cfg.trace))
        results = run_policies(cfg)
        points += [RateSweepPoint(p, rate, r.row["p95_ttft_ms"], r.row["output_throughput"]) for p, r in results.items()]
    files = plot_rate_sweep(points, Path(cfg.figure_dir), title=cfg.model.name)
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
