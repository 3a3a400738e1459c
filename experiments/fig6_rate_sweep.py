"""Figure 6 as the paper defines it: from a rate sweep (the trace replayed at each of ``time_scales``), the request
rate at which each policy saturates (its P95 TTFT crosses ``slo.ttft_ms``) and its output throughput there, with
their ratios to the baseline's; beside it, P95 TTFT and throughput against request rate, one line per policy.

    python experiments/fig6_rate_sweep.py 'time_scales=[3.0,1.5,1.0]' [trace=...] [figure_dir=...]

Writes ``fig6_saturation.{png,csv}`` (``experiments/metrics/saturation.py``: interpolated between the two points around
the crossing; ``bound`` says when the sweep does not bracket it) and ``fig6_rate_sweep.{png,csv}``.
"""
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.metrics import format_table
from experiments.metrics.saturation import LoadPoint, saturation
from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure
from experiments.plots.policy_bars import plot_policy_bars
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


SATURATION_COLUMNS = ("policy", "saturation_rate", "throughput_at_saturation", "bound", "saturation_rate_vs_fp",
                      "throughput_at_saturation_vs_fp")


def saturation_rows(points: Sequence[RateSweepPoint], slo_ttft_ms: float, baseline: str) -> list[dict]:
    """Each policy's saturation point and (when the baseline is among them) its ratios to the baseline's."""
    rows = []
    for policy in dict.fromkeys(p.policy for p in points):
        point = saturation([LoadPoint(p.request_rate, p.p95_ttft_ms, p.output_throughput)
                            for p in points if p.policy == policy], slo_ttft_ms)
        rows.append({"policy": policy, "saturation_rate": point.request_rate,
                     "throughput_at_saturation": point.output_throughput, "bound": point.bound})
    base = next((row for row in rows if row["policy"] == baseline), None)
    for row in rows if base is not None else []:
        row["saturation_rate_vs_fp"] = row["saturation_rate"] / base["saturation_rate"]
        row["throughput_at_saturation_vs_fp"] = row["throughput_at_saturation"] / base["throughput_at_saturation"]
    return rows


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
    rows = saturation_rows(points, cfg.slo.ttft_ms, cfg.baseline)
    print(format_table(rows, SATURATION_COLUMNS))
    bars = plot_policy_bars(rows, [("saturation_rate", "request rate at saturation (req/s)"),
                                   ("throughput_at_saturation", "output throughput there (tok/s)")],
                            Path(cfg.figure_dir), "fig6_saturation",
                            title=f"{cfg.model.name}: saturation = P95 TTFT above {cfg.slo.ttft_ms:.0f} ms")
    print(f"wrote {files.png}, {files.csv}, {bars.png} and {bars.csv}")


if __name__ == "__main__":
    main()
