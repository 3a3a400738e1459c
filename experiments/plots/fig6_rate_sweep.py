"""Figure 6: P95 TTFT and output throughput against request rate, one line per policy."""
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, require_data, save_figure


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
