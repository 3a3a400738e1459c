"""Figure 1 (motivation): one trace's load over time beside what each policy does with it: full precision's TTFT
spikes in the burst, static INT4's constant precision (and quality) loss, MorphServe's precision following the load.

    python experiments/fig1_motivation.py trace=azure_conv dataset=qmsum_goldspan \\
        'policies=[fp,static_int4,morph_accuracy]' figure_dir=results/figures/azure_conv

Four panels over the replay's time: (a) the arrival rate; (b) each request's TTFT at its arrival, with the SLO;
(c) the decoder layers running quantized; (d) each request's quality loss against the baseline's output, at its
arrival: 1 - its token agreement with the baseline (the share of its output from the first token that differs on);
on ``backend=sim``, whose model writes no text, the share of its tokens made with quantized layers instead (labelled
so). Writes ``fig1_motivation.{png,csv}`` (CSV: one row per plotted value, with its panel).
"""
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments.metrics import prefix_agreement
from experiments.plots.figure_files import FigureFiles, new_figure, policy_color, save_figure
from experiments.replay.figures import register_schemas, run_policies_with_baseline
from experiments.replay.run import ReplayResult

LOAD_BINS = 30


def arrival_rate(result: ReplayResult) -> tuple[np.ndarray, np.ndarray]:
    """Bin centers (s from the replay's start) ``[B]`` and arrivals per second in each bin ``[B]``."""
    arrivals = np.array([r.arrival_time - result.start_time for r in result.records])      # [N]
    counts, edges = np.histogram(arrivals, bins=LOAD_BINS)                                   # [B], [B + 1]
    width = edges[1] - edges[0] if edges[-1] > edges[0] else 1.0
    return (edges[:-1] + edges[1:]) / 2, counts / width


def quality_loss(result: ReplayResult, base: ReplayResult, simulated: bool) -> list[float]:
    """Per request: 1 - token agreement with the baseline's output, or (simulated) its share of quantized tokens."""
    if simulated:
        return [float(np.mean([k > 0 for k in r.token_quantized_layers])) if r.token_quantized_layers else 0.0
                for r in result.records]
    return [1 - prefix_agreement(b.output_token_ids, r.output_token_ids) for b, r in zip(base.records, result.records)]


def plot_motivation(results: dict[str, ReplayResult], baseline: str, slo_ttft_ms: float, out_dir: str | Path,
                    simulated: bool = False, title: str = "") -> FigureFiles:
    base = results[baseline]
    figure, (load, ttft, layers, loss) = new_figure(num_axes=4, width_in=8.0, height_in=2.2, stacked=True)
    centers, rate = arrival_rate(base)
    load.bar(centers, rate, width=centers[1] - centers[0] if len(centers) > 1 else 1.0, color="tab:gray")
    rows = [{"panel": "arrival_rate", "policy": "", "time_s": float(t), "value": float(v)}
            for t, v in zip(centers, rate)]
    for policy, result in results.items():
        color = policy_color(policy)
        arrivals = [r.arrival_time - result.start_time for r in result.records]
        ttfts = [(r.ttft_s or np.nan) * 1e3 for r in result.records]
        timeline = result.timeline
        losses = quality_loss(result, base, simulated)
        ttft.plot(arrivals, ttfts, ".", color=color, label=policy)
        layers.step(timeline.times_s, timeline.series["num_quantized_layers"], where="post", color=color, label=policy)
        loss.plot(arrivals, losses, ".", color=color, label=policy)
        rows += [{"panel": "ttft_ms", "policy": policy, "time_s": t, "value": v} for t, v in zip(arrivals, ttfts)]
        rows += [{"panel": "quantized_layers", "policy": policy, "time_s": float(t), "value": float(v)}
                 for t, v in zip(timeline.times_s, timeline.series["num_quantized_layers"])]
        rows += [{"panel": "quality_loss", "policy": policy, "time_s": t, "value": v} for t, v in zip(arrivals, losses)]
    ttft.axhline(slo_ttft_ms, color="tab:red", lw=1, ls="--", label="TTFT SLO")
    load.set(ylabel="arrivals (req/s)", title=title)
    ttft.set(ylabel="TTFT (ms)", yscale="log")
    layers.set(ylabel="quantized layers")
    loss.set(xlabel="time (s)", ylabel="quantized-token share\n(simulated)" if simulated else
             f"1 - agreement\nwith {baseline}")
    ttft.legend(fontsize="small", loc="upper left")
    return save_figure(figure, rows, out_dir, "fig1_motivation")


register_schemas()


@hydra.main(config_path="../configs", config_name="figure", version_base=None)
def main(raw: DictConfig) -> None:
    cfg = OmegaConf.to_object(raw)
    results = run_policies_with_baseline(cfg, "Figure 1 sets each policy beside")
    files = plot_motivation(results, cfg.baseline, cfg.slo.ttft_ms, Path(cfg.figure_dir),
                            simulated=cfg.backend.simulated, title=f"{cfg.model.name}, {cfg.trace.kind} trace")
    print(f"wrote {files.png} and {files.csv}")


if __name__ == "__main__":
    main()
